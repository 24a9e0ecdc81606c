"""At-risk pupils (seed 000 §一.3: 学困生, 贫困生, 留守儿童): transparent watch-list rules.

A rule is data in the policy file (``[[risk.rules]]``): an id, a Chinese label, one condition and
the preventive duties it creates. There is no score: a pupil is on the watch list because named
rules fired, and :func:`evaluate` says which rule fired with which numbers.

Conditions (``when.kind``):

- ``flag``: the pupil carries one of ``flags`` (from the roster: 学困生 ``learning_difficulty``,
  家庭经济困难 ``poor``, 留守儿童 ``left_behind``, …);
- ``absences_rising``: unexcused absences per week over the last ``weeks`` weeks never fall, end
  higher than they began, and the last week has at least ``min_last`` of them;
- ``relapse``: a case opened within the last ``within_days`` days is a relapse (the pupil had
  returned and is absent again, ``relapse_of``).

Pure: the store hands in the numbers (:class:`PupilInputs`), nothing here reads a clock.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from machines.vocabulary import RISK_DUTY_LABELS as DUTY_LABELS, SPECIAL_GROUP_LABELS, RiskDuty


FLAG_LABELS = SPECIAL_GROUP_LABELS  # the roster's flags are the special groups (machines.vocabulary)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FlagCondition(_Strict):
    kind: Literal["flag"] = "flag"
    flags: list[str] = Field(min_length=1, description="any of these roster flags")


class RisingAbsences(_Strict):
    kind: Literal["absences_rising"] = "absences_rising"
    weeks: int = Field(4, ge=2, le=12, description="weeks looked at, the last one ending on the day of the refresh")
    min_last: int = Field(2, ge=1, description="unexcused absences the last week must have at least")
    min_weeks: int = Field(2, ge=1, description="weeks with at least one unexcused absence (one bad week is not a trend)")


class Relapse(_Strict):
    kind: Literal["relapse"] = "relapse"
    within_days: int = Field(60, ge=1, description="the relapse case was opened at most this many days ago")


Condition = Union[FlagCondition, RisingAbsences, Relapse]


class RiskDutySpec(_Strict):
    action: RiskDuty
    role: str = Field("helper", description="'helper' = the pupil's 帮扶责任人, else a policy role")
    due_days: int = Field(7, ge=0, description="calendar days after the pupil is put on the watch list")


class RiskRule(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str
    when: Condition = Field(discriminator="kind")
    duties: list[RiskDutySpec] = []


DEFAULT_RULES = (
    RiskRule(id="learning_difficulty", label="学困生：学业辅导", when=FlagCondition(flags=["learning_difficulty"]),
             duties=[RiskDutySpec(action=RiskDuty.tutoring, due_days=7)]),
    RiskRule(id="poor", label="贫困生：核查资助政策落实", when=FlagCondition(flags=["poor"]),
             duties=[RiskDutySpec(action=RiskDuty.subsidy_check, due_days=14)]),
    RiskRule(id="left_behind", label="留守儿童：心理关爱与家校联系", when=FlagCondition(flags=["left_behind"]),
             duties=[RiskDutySpec(action=RiskDuty.psychological_support, due_days=14),
                     RiskDutySpec(action=RiskDuty.home_contact, due_days=14)]),
    RiskRule(id="absences_rising", label="近四周无故缺勤逐周增多", when=RisingAbsences(weeks=4, min_last=2, min_weeks=2),
             duties=[RiskDutySpec(action=RiskDuty.home_contact, due_days=2),
                     RiskDutySpec(action=RiskDuty.psychological_support, due_days=7)]),
    RiskRule(id="relapse", label="复学后再次缺勤（反弹）", when=Relapse(within_days=60),
             duties=[RiskDutySpec(action=RiskDuty.home_contact, due_days=1),
                     RiskDutySpec(action=RiskDuty.tutoring, due_days=7)]),
)


class RiskPolicy(_Strict):
    """``[risk]`` of a policy file: the helper's role and the rules (defaults: the five above)."""

    helper_role: str = Field("head_teacher", description="role of the named helper (帮扶责任人): 班主任 unless the policy names another (包抓教师)")
    min_days: int = Field(28, ge=0, description="days a pupil stays on the list after being added, even if no rule fires")
    rules: list[RiskRule] = list(DEFAULT_RULES)

    @model_validator(mode="after")
    def _unique_ids(self) -> "RiskPolicy":
        ids = [r.id for r in self.rules]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"risk rule ids must be unique, repeated: {dup}")
        return self

    def roles_used(self) -> list[str]:
        return [self.helper_role] + [d.role for r in self.rules for d in r.duties if d.role != "helper"]

    @property
    def max_weeks(self) -> int:
        return max([r.when.weeks for r in self.rules if isinstance(r.when, RisingAbsences)], default=0)

    @property
    def max_relapse_days(self) -> int:
        return max([r.when.within_days for r in self.rules if isinstance(r.when, Relapse)], default=0)


# -- evaluation ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PupilInputs:
    """What the store read for one pupil on ``day``."""

    pupil_id: int
    day: date
    flags: frozenset[str] = frozenset()
    weekly_absences: tuple[int, ...] = ()   # oldest week first; the last week ends on ``day``
    relapse_opened: tuple[date, ...] = ()   # opening days of the pupil's relapse cases


@dataclass(frozen=True)
class Fired:
    rule_id: str
    label: str
    why: str                     # the explanation, with the numbers
    numbers: dict = field(default_factory=dict)


def rising(counts: tuple[int, ...], min_last: int, min_weeks: int = 1) -> bool:
    """Never falls week on week, ends higher than it began, the last week reaches ``min_last`` and at
    least ``min_weeks`` weeks have an absence."""
    return (len(counts) >= 2 and all(b >= a for a, b in zip(counts, counts[1:])) and counts[-1] > counts[0]
            and counts[-1] >= min_last and sum(1 for n in counts if n) >= min_weeks)


def check(rule: RiskRule, x: PupilInputs) -> Fired | None:
    """``rule`` on one pupil's inputs: the firing with its explanation, or None."""
    c = rule.when
    if isinstance(c, FlagCondition):
        hit = sorted(set(c.flags) & x.flags)
        if not hit:
            return None
        names = "、".join(FLAG_LABELS.get(f, f) for f in hit)
        return Fired(rule.id, rule.label, f"花名册标记：{names}", {"flags": hit})
    if isinstance(c, RisingAbsences):
        counts = tuple(x.weekly_absences[-c.weeks:])
        counts = (0,) * (c.weeks - len(counts)) + counts
        if not rising(counts, c.min_last, c.min_weeks):
            return None
        return Fired(rule.id, rule.label,
                     f"近{c.weeks}周每周无故缺勤 {'→'.join(map(str, counts))} 次（逐周不减、末周≥{c.min_last}、"
                     f"至少{c.min_weeks}周有缺勤）",
                     {"weekly_absences": list(counts), "weeks": c.weeks, "min_last": c.min_last, "min_weeks": c.min_weeks})
    if isinstance(c, Relapse):
        recent = sorted(d for d in x.relapse_opened if 0 <= (x.day - d).days <= c.within_days)
        if not recent:
            return None
        return Fired(rule.id, rule.label,
                     f"复学后再次缺勤：{recent[-1].isoformat()} 再次立案（{c.within_days}天内）",
                     {"relapse_opened": [d.isoformat() for d in recent], "within_days": c.within_days})
    raise TypeError(f"unknown condition {c!r}")  # pragma: no cover - the model forbids it


def evaluate(policy: RiskPolicy, x: PupilInputs) -> list[Fired]:
    """Every rule of ``policy`` that fires for the pupil, in the policy's order."""
    return [f for rule in policy.rules if (f := check(rule, x)) is not None]


def explain(policy: RiskPolicy, x: PupilInputs) -> list[dict]:
    """Each rule, fired or not, with the numbers it looked at: for `baoxue risk explain`."""
    out = []
    for rule in policy.rules:
        fired = check(rule, x)
        out.append({"rule": rule.id, "label": rule.label, "condition": rule.when.model_dump(mode="json"),
                    "fired": fired is not None, "why": fired.why if fired else _not_why(rule, x),
                    "duties": [d.action.value for d in rule.duties]})
    return out


def _not_why(rule: RiskRule, x: PupilInputs) -> str:
    c = rule.when
    if isinstance(c, FlagCondition):
        return f"无标记 {'、'.join(FLAG_LABELS.get(f, f) for f in c.flags)}"
    if isinstance(c, RisingAbsences):
        counts = tuple(x.weekly_absences[-c.weeks:])
        counts = (0,) * (c.weeks - len(counts)) + counts
        return (f"近{c.weeks}周每周无故缺勤 {'→'.join(map(str, counts))} 次，未呈上升"
                f"（须逐周不减、末周≥{c.min_last}、至少{c.min_weeks}周有缺勤）")
    return f"{c.within_days}天内无复学后再次缺勤"
