"""A jurisdiction's escalation policy as data (DOMAIN.md §6).

The ladder days, roles, duties, documents, report dates and thresholds of one jurisdiction.
Loaded from ``deploy/policies/*.toml`` by ``store.policy_files``; this module only validates.
"""
from __future__ import annotations

from datetime import time
from functools import cached_property
from typing import Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from machines.census import CensusRules, HandoffRules
from machines.policy_helpers import HelperRules
from machines.policy_followup import FollowUpDuty, ReferralSpec
from machines.policy_notices import NoticeRules, check_ladder, notice_wait
from machines.policy_accountability import AccountabilityRules
from machines.policy_leave import LeaveRules, TransferRules
from machines.risk import RiskPolicy
from machines.states import LADDER, Action, CaseState, OutsideReason
from machines.truancy import GateRules, TruancyRules


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DutySpec(_Strict):
    """A named person's action with a due time, created when the case enters the step."""

    action: Action
    role: str
    due_school_days: int = Field(0, ge=0, description="0 = the school day the step is reached")
    due_time: time = time(17, 0)


class StepRequirement(_Strict):
    """What must be on the case's record, besides the day count, before the step is reached
    (seed 000 §二.5: 经学校2次劝返后，学生仍无故旷课达一周以上 → 名单报教育中心). Until it is, the case
    stays on its step; the missing actions are the step's own overdue duties (责任追究)."""

    actions: list[Action] = Field(min_length=1, description="the actions that count (e.g. 劝返: home visit, collective visit)")
    count: int = Field(1, ge=1, description="how many of them, in all")
    label: str = Field("", description="the condition in the seed's words")

    def met(self, done: Mapping[str, int] | None) -> bool:
        return sum((done or {}).get(a.value, 0) for a in self.actions) >= self.count


class StepSpec(_Strict):
    state: CaseState
    day: int = Field(ge=1, description="consecutive unexcused school days that reach this step")
    label: str
    roles: list[str] = Field(min_length=1)
    duties: list[DutySpec] = []
    documents: list[str] = Field([], description="document kinds produced on entering the step")
    requires: StepRequirement | None = None

    @field_validator("state")
    @classmethod
    def _ladder_state(cls, v: CaseState) -> CaseState:
        if v not in LADDER or v is CaseState.absent:
            raise ValueError(f"{v.value} is not a ladder step (family_contacted … judicial_notice)")
        return v


class ActionSpec(_Strict):
    documents: list[str] = []
    role: str | None = None


class OutsideRule(_Strict):
    """When a case may leave the school's hands (escalate_outside)."""

    reason: OutsideReason
    from_state: CaseState = Field(description="earliest ladder state the rule applies from")
    notify: list[str] = Field(min_length=1)
    documents: list[str] = []


class ReportCalendar(_Strict):
    class_weekday: int = Field(0, ge=0, le=6, description="weekly class count, 0 = Monday")
    school_due_day: int = Field(23, ge=1, le=28)
    township_due_day: int = Field(25, ge=1, le=28)
    # the county's report is due at month end and the 季查 is quarterly (seed 003): the flows' schedules
    # (deploy/specs.py), not policy settings; term_reports: seed 002's 学期初、学期末报告 are filed (flows.term_report)
    term_reports: bool = True
    spot_check_sample: float = Field(0.2, gt=0, le=1)


class Policy(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    version: int = Field(ge=1)
    label: str
    jurisdiction: str
    source: str = ""
    escalation_time: time = Field(time(9, 0), description="the morning check is over: today's absence counts")
    roles: dict[str, str] = Field(description="role id → Chinese label")
    steps: list[StepSpec] = Field(min_length=1)
    actions: dict[Action, ActionSpec] = {}
    outside: list[OutsideRule] = []
    helpers_required: int = Field(3, ge=0, description="三帮一: named helpers assign_helpers needs (seed 000 §三.1)")
    standard_dropout_rate: float = Field(0.006, gt=0, lt=1)
    special_groups: dict[str, str] = {}
    reports: ReportCalendar = ReportCalendar()
    leave: LeaveRules = LeaveRules()          # 请假/免学 approval routing (machines/policy_leave.py)
    transfer: TransferRules = TransferRules()  # 转学 confirmation, 放学未回家 (machines/policy_leave.py)
    risk: RiskPolicy = RiskPolicy()  # at-risk pupils' watch-list rules (machines/risk.py)
    census: CensusRules = CensusRules()        # 排查: school ages, the 失学 track's duties
    handoffs: HandoffRules = HandoffRules()    # 送达回证: receipts of papers sent to outside bodies
    truancy: TruancyRules = TruancyRules()     # 旷课分级 (seed 001 第六条), machines/truancy.py
    gate: GateRules = GateRules()              # 住校生出入校门登记 (seed 000 §二.3)
    three_helpers: HelperRules = HelperRules()  # 三帮一: the roles the helpers must cover (machines/policy_helpers.py)
    referral: dict[OutsideReason, ReferralSpec] = {}  # 移交后跟踪至复学 (machines/policy_followup.py)
    notices: NoticeRules = NoticeRules()       # addressees and compliance periods (machines/policy_notices.py)
    accountability: AccountabilityRules = AccountabilityRules()  # 包保, 责任书, 约谈, ranking (policy_accountability.py)

    @model_validator(mode="after")
    def _coherent(self) -> "Policy":
        order = [LADDER.index(s.state) for s in self.steps]
        if order != sorted(set(order)):
            raise ValueError("steps must follow the ladder order, each state once")
        days = [s.day for s in self.steps]
        if days != sorted(set(days)):
            raise ValueError(f"step days must strictly increase, got {days}")
        stray = sorted(r.value for r in self.referral if r not in {o.reason for o in self.outside})
        if stray:
            raise ValueError(f"[referral] for {stray} without an [[outside]] rule")
        for where, roles in self._role_uses():
            unknown = sorted(set(roles) - set(self.roles))
            if unknown:
                raise ValueError(f"{where}: unknown role(s) {unknown}; declare them under [roles]")
        if "notices" in self.model_fields_set:  # a policy stored before [notices] keeps its ladder as it was
            check_ladder(self)
        return self

    def _role_uses(self):
        for s in self.steps:
            yield f"step {s.state.value}", s.roles + [d.role for d in s.duties]
        for r in self.outside:
            yield f"outside {r.reason.value}", r.notify
        for reason, spec in self.referral.items():
            yield f"referral {reason.value}", [d.role for d in spec.duties]
        for a, spec in self.actions.items():
            if spec.role:
                yield f"action {a.value}", [spec.role]
        yield "risk", self.risk.roles_used()
        yield "census duties", [d.role for d in self.census.duties]
        yield "truancy tiers", [t.role for t in self.truancy.tiers] + [self.gate.alert_role]
        yield "three_helpers", self.three_helpers.roles
        if "notices" in self.model_fields_set:
            yield "notices", self.notices.roles_used()
        yield "accountability", self.accountability.roles_used()

    # -- questions the machine and the store ask --------------------------------------------
    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    @cached_property
    def _by_state(self) -> dict[CaseState, StepSpec]:
        return {s.state: s for s in self.steps}

    def step(self, state: CaseState) -> StepSpec | None:
        return self._by_state.get(CaseState(state))

    def next_step(self, state: CaseState) -> StepSpec | None:
        """The policy step that follows ``state`` (steps the policy leaves out are skipped)."""
        here = LADDER.index(CaseState(state))
        return next((s for s in self.steps if LADDER.index(s.state) > here), None)

    def escalation_due(self, state: CaseState, streak: int, done: Mapping[str, int] | None = None,
                       waited: Mapping[str, int] | None = None) -> StepSpec | None:
        """The step a case in ``state`` moves to once its absence streak is ``streak`` days and, if the
        step ``requires`` it, ``done`` (action → times recorded on the case) meets its condition, and, if
        the step waits on an earlier one (:meth:`waits_for`), ``waited`` (state → school days passed since
        the case actually entered it) has reached the period."""
        if CaseState(state) not in LADDER:
            return None
        nxt = self.next_step(state)
        if nxt is None or streak < nxt.day:
            return None
        if nxt.requires is not None and not nxt.requires.met(done):
            return None
        wait = self.waits_for(nxt.state)
        if wait is not None and (waited or {}).get(wait[0].value, -1) < wait[1]:
            return None
        return nxt

    def waits_for(self, target: CaseState) -> tuple[CaseState, int] | None:
        """(earlier step, school days) the step ``target`` waits after the case's actual entry into that step
        (the legal notice after the return notice's period: ``machines.policy_notices.notice_wait``)."""
        return notice_wait(self, target)

    def outside_allowed(self, state: CaseState, reason: OutsideReason) -> bool:
        state = CaseState(state)
        return state in LADDER and any(
            r.reason == reason and LADDER.index(state) >= LADDER.index(r.from_state) for r in self.outside
        )

    def referral_spec(self, reason: OutsideReason | str | None) -> ReferralSpec:
        """The follow-up of a case referred for ``reason`` (none: no papers, no recurring duty)."""
        return self.referral.get(reason, ReferralSpec()) if reason in OutsideReason.__members__ else ReferralSpec()

    def follow_up_duties(self, reason: OutsideReason | str | None) -> list[FollowUpDuty]:
        return list(self.referral_spec(reason).duties)

    def action_documents(self, action: Action) -> list[str]:
        spec = self.actions.get(Action(action))
        return list(spec.documents) if spec else []

    def role_label(self, role: str) -> str:
        return self.roles.get(role, role)
