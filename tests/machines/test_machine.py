"""The case machine on plain objects: every allowed and forbidden transition, guards, finality."""
from __future__ import annotations

import tomllib
from types import SimpleNamespace

import pytest
from hypothesis import given, settings, strategies as st

from machines.case_machine import EVENTS, CaseMachine, ForbiddenEvent, allowed_events, bind, escalation_pairs
from machines.policy import Policy
from machines.states import FINAL_STATES, LIVE_STATES, Action, CaseState
from store.policy_files import SHIPPED_POLICIES

POLICIES = {p.stem: Policy.model_validate(tomllib.loads(p.read_text())) for p in SHIPPED_POLICIES.glob("*.toml")}
DEFAULT = POLICIES["default"]

# state → events the machine must allow there (guards aside). Everything else must be refused.
ALLOWED = {
    CaseState.absent: {"escalate", "record_phone_call", "record_home_visit", "assign_helpers", "record_reason", "mark_returned",
                       "excuse", "escalate_outside"},
    CaseState.family_contacted: {"escalate", "record_phone_call", "record_home_visit", "assign_helpers", "record_reason",
                                 "mark_returned", "excuse", "escalate_outside"},
    CaseState.visited: {"escalate", "record_phone_call", "record_home_visit", "assign_helpers", "record_reason", "mark_returned",
                        "excuse", "escalate_outside"},
    CaseState.collective_visit: {"escalate", "record_phone_call", "record_home_visit", "assign_helpers", "record_reason",
                                 "record_collective_visit", "mark_returned", "excuse", "escalate_outside"},
    CaseState.township_notice: {"escalate", "record_phone_call", "record_home_visit", "assign_helpers", "record_reason",
                                "record_collective_visit", "serve_township_notice", "mark_returned", "excuse",
                                "escalate_outside"},
    CaseState.judicial_notice: {"record_phone_call", "record_home_visit", "assign_helpers", "record_reason", "record_collective_visit",
                                "serve_township_notice", "serve_legal_notice", "mark_returned", "excuse",
                                "escalate_outside", "record_class_record", "serve_parent_notice", "report_parent_notice"},
    # referred (移交跟踪): tracked until return — its follow-up and any duty still open may be recorded
    CaseState.escalated: {"record_phone_call", "record_home_visit", "assign_helpers", "record_collective_visit",
                          "serve_township_notice", "serve_legal_notice", "record_follow_up", "record_police_search",
                          "record_guardian_persuasion", "record_employer_persuasion", "record_judicial_progress",
                          "record_reason", "record_class_record", "serve_parent_notice", "report_parent_notice",
                          "mark_returned", "excuse"},
    CaseState.returned: set(), CaseState.excused: set(),
}


def case(state: CaseState, case_id: int = 7) -> SimpleNamespace:
    return SimpleNamespace(id=case_id, state=state.value)


def facts_for(event: str, state: CaseState) -> dict:
    if event == "escalate":
        return {"policy": DEFAULT, "streak": 99, "waited": {"township_notice": 99}}
    if event == "excuse":
        return {"policy": DEFAULT, "reason": "sick_leave"}
    if event == "escalate_outside":
        return {"policy": DEFAULT, "reason": "working_away" if state is not CaseState.judicial_notice else "refusal_after_notice"}
    return {"policy": DEFAULT}


def test_the_table_of_allowed_events_is_what_the_class_declares():
    for state, expected in ALLOWED.items():
        assert set(allowed_events(state)) == expected, state


@pytest.mark.parametrize("state", list(CaseState))
@pytest.mark.parametrize("event", sorted(EVENTS))
def test_every_event_in_every_state_is_applied_or_refused_loudly(state, event):
    model = case(state)
    machine = bind(model)
    permitted = event in ALLOWED[state]
    if state in (CaseState.absent, CaseState.family_contacted) and event == "escalate_outside":
        permitted = False  # default policy: working away only from `visited` on
    if not permitted:
        with pytest.raises(ForbiddenEvent) as info:
            machine.fire(event, **facts_for(event, state))
        assert "case 7" in str(info.value) and f"'{state.value}'" in str(info.value) and f"'{event}'" in str(info.value)
        assert model.state == state.value
        return
    after = machine.fire(event, **facts_for(event, state))
    if event in {a.value for a in Action}:
        assert after is state, "a recorded action keeps the case on its step"
    elif event == "escalate":
        assert after is DEFAULT.next_step(state).state
    elif event == "mark_returned":
        assert after is CaseState.returned
    elif event == "excuse":
        assert after is CaseState.excused
    else:
        assert after is CaseState.escalated


def test_an_unknown_event_is_refused_naming_case_state_and_event():
    with pytest.raises(ForbiddenEvent, match=r"case 3: event 'dance' is not allowed in state 'visited'"):
        bind(case(CaseState.visited, 3)).fire("dance")


def test_escalation_waits_for_the_streak_to_reach_the_next_step():
    m = bind(case(CaseState.family_contacted))
    with pytest.raises(ForbiddenEvent):
        m.fire("escalate", policy=DEFAULT, streak=1)
    assert m.fire("escalate", policy=DEFAULT, streak=2) is CaseState.visited


def test_escalation_moves_one_step_at_a_time_even_after_a_long_gap():
    m = bind(case(CaseState.absent))
    assert m.fire("escalate", policy=DEFAULT, streak=9) is CaseState.family_contacted
    assert m.fire("escalate", policy=DEFAULT, streak=9) is CaseState.visited


@pytest.mark.parametrize("name", ["default", "wutaishan"])
def test_the_legal_notice_waits_for_the_return_notices_period_from_the_actual_entry(name):
    """issue 16 §2: the 督促送子女入学通知书 comes only once the 返校通知书's period has run — counted from the
    day the case really entered the township step (wutaishan's 经学校2次劝返 can put that after its day)."""
    policy = POLICIES[name]
    period = policy.notices.return_notice_days
    assert policy.waits_for(CaseState.judicial_notice) == (CaseState.township_notice, period)
    assert policy.waits_for(CaseState.township_notice) is None
    m = bind(case(CaseState.township_notice))
    for refused in (None, {}, {"township_notice": period - 1}):
        with pytest.raises(ForbiddenEvent):  # the streak alone is not enough
            m.fire("escalate", policy=policy, streak=30, waited=refused)
    assert m.fire("escalate", policy=policy, streak=30, waited={"township_notice": period}) is CaseState.judicial_notice
    legacy = Policy.model_validate(policy.model_dump(mode="json", exclude={"notices"}))  # stored before [notices]
    assert legacy.waits_for(CaseState.judicial_notice) is None


def test_jingbian_has_no_judicial_step():
    jb = POLICIES["jingbian"]
    m = bind(case(CaseState.township_notice))
    with pytest.raises(ForbiddenEvent):
        m.fire("escalate", policy=jb, streak=30)
    assert [t for _, t, _ in escalation_pairs(jb)][-1] is CaseState.township_notice


def test_a_referred_case_is_tracked_until_it_returns_and_never_climbs_the_ladder_again():
    m = bind(case(CaseState.visited))
    assert m.fire("escalate_outside", policy=DEFAULT, reason="working_away") is CaseState.escalated
    assert not CaseState.escalated.is_final
    with pytest.raises(ForbiddenEvent):
        m.fire("escalate", policy=DEFAULT, streak=99)
    assert m.fire("record_employer_persuasion", policy=DEFAULT) is CaseState.escalated
    assert m.fire("mark_returned", policy=DEFAULT) is CaseState.returned
    for follow_up in ("record_follow_up", "record_police_search", "record_judicial_progress"):
        with pytest.raises(ForbiddenEvent):  # only a referred case is followed up
            bind(case(CaseState.judicial_notice)).fire(follow_up, policy=DEFAULT)


def test_outside_escalation_follows_the_policy():
    with pytest.raises(ForbiddenEvent):  # refusal after legal notice needs the legal notice
        bind(case(CaseState.collective_visit)).fire("escalate_outside", policy=DEFAULT, reason="refusal_after_notice")
    assert bind(case(CaseState.visited)).fire("escalate_outside", policy=DEFAULT,
                                              reason="whereabouts_unknown") is CaseState.escalated
    # 五台山: whereabouts unknown is reported to township and police from the first day on
    assert bind(case(CaseState.family_contacted)).fire(
        "escalate_outside", policy=POLICIES["wutaishan"], reason="whereabouts_unknown") is CaseState.escalated


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_escalation_pairs_are_read_off_the_machine_for_each_policy(name):
    policy = POLICIES[name]
    pairs = escalation_pairs(policy)
    chain = [CaseState.absent] + [s.state for s in policy.steps]
    assert [(s, t) for s, t, _ in pairs] == list(zip(chain, chain[1:]))
    assert [d for _, _, d in pairs] == [s.day for s in policy.steps]


def test_the_diagram_is_generated_from_the_class_and_committed_up_to_date():
    from pathlib import Path
    from deploy.diagram import actions_table, mermaid
    docs = Path(__file__).resolve().parents[2] / "docs"
    assert (docs / "case_machine.mmd").read_text(encoding="utf-8") == mermaid()
    assert (docs / "case_actions.md").read_text(encoding="utf-8") == actions_table()
    assert "judicial_notice --> returned" in mermaid()
    assert mermaid().rstrip() in (docs.parent / "README.md").read_text(encoding="utf-8")


events = st.sampled_from(sorted(EVENTS))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(events, st.integers(0, 12), st.sampled_from(["sick_leave", "working_away", "whereabouts_unknown",
                                                                          "refusal_after_notice", "transfer"])), max_size=25),
       st.sampled_from(sorted(POLICIES)))
def test_a_final_case_never_reopens(steps, policy_name):
    policy = POLICIES[policy_name]
    model = case(CaseState.absent)
    machine = bind(model)
    final_at = None
    for event, streak, reason in steps:
        before = CaseState(model.state)
        try:
            machine.fire(event, policy=policy, streak=streak, reason=reason)
        except ForbiddenEvent:
            assert CaseState(model.state) is before
            continue
        if final_at is not None:
            pytest.fail(f"{event} moved a final case out of {final_at}")
        if CaseState(model.state) in FINAL_STATES:
            final_at = model.state
        else:
            assert CaseState(model.state) in LIVE_STATES
