"""The dropout-case state machine: the single source of truth for what may happen to a case.

The machine reads no clock and does no I/O. The absence streak, the policy and the facts of an
action arrive as event arguments; the current state lives on a model object (a plain object in
tests, an ORM row in the store). The bulk advance in ``store.cases.advance`` derives its set-based SQL
from :func:`escalation_pairs`, so the SQL path can never allow a move this class forbids.
"""
from __future__ import annotations

from typing import Any, Mapping

from statemachine import State, StateMachine
from statemachine.exceptions import TransitionNotAllowed
from statemachine.states import States

from machines.policy import Policy
from machines.states import LADDER, Action, CaseState, OutsideReason


class ForbiddenEvent(Exception):
    """An event the case's current state (or policy) does not allow. Never silently ignored."""

    def __init__(self, case_id: Any, state: str, event: str, why: str = ""):
        self.case_id, self.state, self.event = case_id, state, event
        detail = f": {why}" if why else ""
        label = CaseState(state).label if state in CaseState.__members__ else state
        super().__init__(
            f"case {case_id}: event '{event}' is not allowed in state '{state}'{detail} "
            f"(案件 {case_id} 当前状态「{label}」不允许此操作)"
        )


class CaseMachine(StateMachine):
    """一人一案: absent → family_contacted → visited → collective_visit → township_notice →
    judicial_notice, and from any open step → returned | excused | escalated (referred outside the
    school: 移交跟踪). A referred case is tracked (回访, 查找, 劝返, 司法程序) until it returns or is excused."""

    s = States.from_enum(
        CaseState,
        initial=CaseState.absent,
        final=[CaseState.returned, CaseState.excused],
    )

    # -- the ladder: timers move the case to the policy's next step ---------------------------
    escalate = (
        s.absent.to(s.family_contacted, s.visited, s.collective_visit, s.township_notice, s.judicial_notice, cond="next_step_due")
        | s.family_contacted.to(s.visited, s.collective_visit, s.township_notice, s.judicial_notice, cond="next_step_due")
        | s.visited.to(s.collective_visit, s.township_notice, s.judicial_notice, cond="next_step_due")
        | s.collective_visit.to(s.township_notice, s.judicial_notice, cond="next_step_due")
        | s.township_notice.to(s.judicial_notice, cond="next_step_due")
    )

    # -- what staff record: the case stays on its step, the step's duty is done ---------------
    record_phone_call = (
        s.absent.to.itself(internal=True) | s.family_contacted.to.itself(internal=True)
        | s.visited.to.itself(internal=True) | s.collective_visit.to.itself(internal=True)
        | s.township_notice.to.itself(internal=True) | s.judicial_notice.to.itself(internal=True)
        | s.escalated.to.itself(internal=True)
    )
    record_home_visit = (
        s.absent.to.itself(internal=True) | s.family_contacted.to.itself(internal=True)
        | s.visited.to.itself(internal=True) | s.collective_visit.to.itself(internal=True)
        | s.township_notice.to.itself(internal=True) | s.judicial_notice.to.itself(internal=True)
        | s.escalated.to.itself(internal=True)
    )
    assign_helpers = (
        s.absent.to.itself(internal=True) | s.family_contacted.to.itself(internal=True)
        | s.visited.to.itself(internal=True) | s.collective_visit.to.itself(internal=True)
        | s.township_notice.to.itself(internal=True) | s.judicial_notice.to.itself(internal=True)
        | s.escalated.to.itself(internal=True)
    )
    record_reason = (  # 查明辍学原因: the reason class is recorded or reclassified, the case stays on its step
        s.absent.to.itself(internal=True) | s.family_contacted.to.itself(internal=True)
        | s.visited.to.itself(internal=True) | s.collective_visit.to.itself(internal=True)
        | s.township_notice.to.itself(internal=True) | s.judicial_notice.to.itself(internal=True)
        | s.escalated.to.itself(internal=True)  # a referred case's reason is still investigated
    )
    record_collective_visit = (
        s.collective_visit.to.itself(internal=True) | s.township_notice.to.itself(internal=True)
        | s.judicial_notice.to.itself(internal=True) | s.escalated.to.itself(internal=True)
    )
    serve_township_notice = (s.township_notice.to.itself(internal=True) | s.judicial_notice.to.itself(internal=True)
                             | s.escalated.to.itself(internal=True))
    serve_legal_notice = s.judicial_notice.to.itself(internal=True) | s.escalated.to.itself(internal=True)
    # 辍学书面通报 (seed 002): the school fills it in, the parent signs (or refuses), a copy goes to the bureau;
    # a case referred after the legal notice (refusal) still completes the paper
    record_class_record = s.judicial_notice.to.itself(internal=True) | s.escalated.to.itself(internal=True)
    serve_parent_notice = s.judicial_notice.to.itself(internal=True) | s.escalated.to.itself(internal=True)
    report_parent_notice = s.judicial_notice.to.itself(internal=True) | s.escalated.to.itself(internal=True)

    # -- the follow-up of a referred case: recorded while it is tracked (policy [referral]) ---------
    record_follow_up = s.escalated.to.itself(internal=True)
    record_police_search = s.escalated.to.itself(internal=True)
    record_guardian_persuasion = s.escalated.to.itself(internal=True)
    record_employer_persuasion = s.escalated.to.itself(internal=True)
    record_judicial_progress = s.escalated.to.itself(internal=True)

    # -- leaving the ladder ---------------------------------------------------------------------
    mark_returned = (
        s.absent.to(s.returned) | s.family_contacted.to(s.returned) | s.visited.to(s.returned)
        | s.collective_visit.to(s.returned) | s.township_notice.to(s.returned) | s.judicial_notice.to(s.returned)
        | s.escalated.to(s.returned)  # 复学: the referred pupil is back (action or morning check), 台账销号
    )
    excuse = (
        s.absent.to(s.excused) | s.family_contacted.to(s.excused) | s.visited.to(s.excused)
        | s.collective_visit.to(s.excused) | s.township_notice.to(s.excused) | s.judicial_notice.to(s.excused)
        | s.escalated.to(s.excused)  # e.g. found enrolled elsewhere (转学), 病假
    )
    escalate_outside = (
        s.absent.to(s.escalated, cond="outside_allowed") | s.family_contacted.to(s.escalated, cond="outside_allowed")
        | s.visited.to(s.escalated, cond="outside_allowed") | s.collective_visit.to(s.escalated, cond="outside_allowed")
        | s.township_notice.to(s.escalated, cond="outside_allowed") | s.judicial_notice.to(s.escalated, cond="outside_allowed")
    )

    # -- guards (pure: everything they need is an argument) -----------------------------------
    def next_step_due(self, source: State, target: State, policy: Policy, streak: int,
                      done: Mapping[str, int] | None = None, waited: Mapping[str, int] | None = None) -> bool:
        step = policy.escalation_due(CaseState(source.value), streak, done, waited)
        return step is not None and step.state.value == target.value

    def outside_allowed(self, source: State, policy: Policy, reason: OutsideReason | str | None = None) -> bool:
        return reason in OutsideReason.__members__ and policy.outside_allowed(CaseState(source.value), OutsideReason(reason))

    # -- the one way in --------------------------------------------------------------------------
    def fire(self, event: str, **kwargs: Any) -> CaseState:
        """Send ``event``; raise :class:`ForbiddenEvent` naming case, state and event if refused."""
        before = self.current_state_value
        if event not in EVENTS:
            raise ForbiddenEvent(getattr(self.model, "id", None), str(before), event, "unknown event")
        try:
            self.send(event, **kwargs)
        except TransitionNotAllowed as exc:
            raise ForbiddenEvent(getattr(self.model, "id", None), str(before), event) from exc
        return CaseState(self.current_state_value)


ACTION_EVENTS = frozenset(a.value for a in Action)
EVENTS = frozenset(e.id for e in CaseMachine.events)


def bind(model: Any) -> CaseMachine:
    """A machine driving ``model`` (any object with ``state`` and ``id``)."""
    return CaseMachine(model=model, state_field="state")


def escalation_pairs(policy: Policy) -> list[tuple[CaseState, CaseState, int]]:
    """(source, target, day) of every escalation the machine allows under ``policy``.

    Read off the machine's own ``escalate`` transitions, filtered by the machine's guard
    (the policy's next step), so the bulk SQL in the store cannot drift from the class. A target
    step's ``requires`` (what must be recorded first) is the guard's other half: the bulk path
    reads it from the same ``policy.step(target)`` (``store.cases.advance.due_cases_query``), and so is the
    wait after an earlier step's actual entry (``policy.waits_for(target)``: the legal notice only after the
    return notice's period).
    """
    pairs = []
    for t in _transitions("escalate"):
        src, dst = CaseState(t.source.value), CaseState(t.target.value)
        step = policy.next_step(src)
        if step is not None and step.state is dst:
            pairs.append((src, dst, step.day))
    return sorted(pairs, key=lambda p: LADDER.index(p[0]))


def _transitions(event: str):
    return [t for st in CaseMachine.states for t in st.transitions if event in {str(e) for e in t.events}]


def unguarded_target(event: str, state: CaseState | str, case_id: Any = None) -> CaseState:
    """Where ``event`` takes a case in ``state`` when the transition has no guard (returns,
    excuses, recorded actions): read off the class, so set-based paths cannot disagree with it."""
    for t in _transitions(event):
        if t.source.value == CaseState(state).value:
            if list(t.cond):
                raise ValueError(f"'{event}' is guarded: fire it through the machine")
            return CaseState(t.target.value)
    raise ForbiddenEvent(case_id, CaseState(state).value, event)


def allowed_events(state: CaseState | str) -> list[str]:
    """Events the machine has a transition for from ``state`` (guards aside)."""
    st = CaseMachine.states_map[CaseState(state)]
    return sorted({str(e) for t in st.transitions for e in t.events})
