"""Every policy field changes behaviour (issue 16 item 6): a table of field → probe.

A probe changes one field of a shipped policy and asks a production function (the machine, the
store, the documents' facts, a flow's task) a question whose answer must change. The fields are read
off the pydantic model, so a new field with no probe — and no entry in the list below — fails
:func:`test_every_policy_field_has_a_probe`.

- ``PROBE_PENDING``: fields read by production code whose probe needs a fixture this file does not
  build yet (named reader and why): to be written, not forgotten.
"""
from __future__ import annotations

from datetime import date, datetime, time
from typing import Any, Callable

import pytest
from pydantic import BaseModel

from machines.case_machine import escalation_pairs
from machines.census import check_row
from machines.identity import id_check_digit
from machines.payloads import PayloadInvalid
from machines.policy import Policy
from machines.risk import PupilInputs, evaluate
from machines.states import Action, CaseState, OutsideReason
from machines.truancy import count_truancies
from machines.vocabulary import special_group_label
from store.policy_files import policy_files, read_policy_file
from tests.engine_helpers import THREE_HELPERS

POLICIES = {p.stem: read_policy_file(p)[0] for p in policy_files()}
DAY = date(2026, 11, 16)


def leaves(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every field path of the policy model (sub-models opened, lists and dicts as one field)."""
    out = []
    for name, f in model.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += leaves(ann, prefix + name + ".")
        else:
            out.append(prefix + name)
    return out


class Also:
    """A probe value that also changes other fields, where one field alone cannot change and stay valid
    (the return notice's period needs the judicial step a day later)."""

    def __init__(self, value: Any, **others: Any):
        self.value, self.others = value, others


def changed(policy: Policy, path: str, value: Any) -> Policy:
    """``policy`` with the field at ``path`` (a.b) set to ``value`` (validated like a policy file)."""
    data = policy.model_dump(mode="python")
    paths = {path: value.value, **value.others} if isinstance(value, Also) else {path: value}
    for where, new in paths.items():
        here = data
        *parents, last = where.split(".")
        for p in parents:
            here = here[p]
        here[last] = new(here[last]) if callable(new) else new
    return Policy.model_validate(data)


def _later_judicial(steps: list[dict]) -> list[dict]:
    return [{**st, "day": st["day"] + 1} if st["state"] == "judicial_notice" else st for st in steps]


def _notice(p: Policy, kind: str) -> dict:
    """The notice facts a ``kind`` paper of a case at the judicial step prints (documents/addressing.py)."""
    from datetime import timedelta
    from documents.addressing import notice_facts
    facts = {"county": {"name": "宁安县"}, "township": {"name": "城关镇", "short": "城关"}, "village": {"name": "石门村"},
             "school": {"name": "城关小学"},
             "events": [{"event": "escalate", "to_state": "township_notice", "at": "2026-11-19T09:00:00"},
                        {"event": "escalate", "to_state": "judicial_notice", "at": "2026-11-20T09:00:00"}]}
    out = notice_facts(p, kind, facts, issued_on=DAY, add_school_days=lambda d, n: d + timedelta(days=n))
    return {k: out[k] for k in ("addressees", "cc", "copies", "return_deadline", "legal_deadline", "judicial_office",
                                "parent_notice_to")}


def _helpers(p: Policy) -> str:
    from store.cases.actions import checked_helpers
    try:
        return repr(checked_helpers(p, {"helpers": THREE_HELPERS[:2] + [{"name": "帮扶丁", "role": "principal"}]}))
    except PayloadInvalid as exc:
        return str(exc)


def _census_row(p: Policy) -> tuple:
    first17 = "11010120200901123"  # born 2020-09-01: five, six or not on the reference date
    row = {"name": "某某", "id_number": first17 + id_check_digit(first17), "birth_date": "2020-09-01"}
    r = check_row(row, p.census, 2026)
    return r.age, r.school_age


def _truancy(p: Policy) -> tuple:
    t = p.truancy
    return (t.school_year(date(2026, 8, 20)), [(n, x.tier) for n, x in t.actions_due(6)],
            count_truancies([1, 2, 3, 7], mode=t.count))


def _gate(p: Policy, db) -> dict:
    from store.prevention.gate import _policy_grace
    return {k: sorted(v) for k, v in _policy_grace(db.session, db.ctx(p)).items()}


def _watch_helper(p: Policy, db) -> list:
    from sqlalchemy import select
    from store.models.risk import WatchEntry
    from store.prevention.risk import refresh_watch_list
    with db.trial(p) as s:
        refresh_watch_list(s, as_of=datetime(2026, 11, 16, 20, 0))
        return sorted(s.scalars(select(WatchEntry.helper_id)).all(), key=str)


def _term_reports(p: Policy, db) -> bool:
    from tasks.reports import term_reports_filed
    with db.patched(p):
        return term_reports_filed.fn()


def _spot_sample(p: Policy, db) -> float:
    from tasks.reports import spot_check_fraction
    with db.patched(p):
        return spot_check_fraction.fn()


def _truancy_enabled(p: Policy, db) -> list:
    from store.prevention.truancy import _schools_by_policy
    return [rules.enabled for _, rules, _ in _schools_by_policy(db.session, db.ctx(p)).values()]


def _dropout_standard(p: Policy, db) -> Any:
    from sqlalchemy import select
    from store.models import School
    from store.reporting import reports as rp
    with db.trial(p) as s:
        school = s.scalar(select(School).where(School.code == db.code))
        filing, _ = rp.file_report(s, policy=p, level="school", scope=rp.ReportScope("school", db.code, school.name, (school.id,)),
                                   period=rp.month_period(2026, 11), as_of=datetime(2026, 11, 30, 20), actor="t")
        return filing.figures["standard_rate"]


NOW = datetime(2026, 11, 16, 20, 0)


def _chain(p: Policy, db) -> list:
    """The first pupil's 包保 chain as the policy's roles order it (store/accountability/chain.py)."""
    from sqlalchemy import select
    from store.accountability.chain import chain_of, fill_defaults
    from store.models import Pupil
    with db.trial(p) as s:
        fill_defaults(s, school_ids=None, actor="t", now=NOW)
        return [(m["role"], m["person"]) for m in chain_of(s, s.scalar(select(Pupil.id).order_by(Pupil.id)))]


def _pledges(p: Policy, db) -> list:
    """The 责任书 issued for the year: who signs, the title, the signature duty's deadline (store/accountability/pledges.py)."""
    from store.accountability.chain import fill_defaults
    from store.accountability.pledges import issue_year, pledges
    with db.trial(p) as s:
        fill_defaults(s, school_ids=None, actor="t", now=NOW)
        issue_year(s, year=2026, now=NOW)
        return sorted((r["role"], r["title"], r["due_at"], r["pupils"]) for r in pledges(s, year=2026))


def _talk_followup(p: Policy, db):
    """The follow-up duty's deadline of a 约谈 at the school (store/accountability/talks.py)."""
    from store.accountability.talks import TalkForm, record_talk
    with db.trial(p) as s:
        form = TalkForm(interviewee="某校长", school_code=db.code, held_at=datetime(2026, 11, 2, 10), subject="控辍不力",
                        items=["整改"], deadline=date(2026, 11, 20))
        talk, _ = record_talk(s, form, level="county", interviewer="县教育局", interviewer_id=None, actor="t", now=NOW)
        from sqlalchemy import select
        from store.models.accountability import TalkDuty
        return s.scalar(select(TalkDuty.due_at).where(TalkDuty.interview_id == talk.id))


def _ranking(p: Policy, db) -> tuple:
    """The township ranking (store/reporting/accountability.py): asked at all, and each township's place."""
    from store.reporting.accountability import township_ranking
    from store.reporting.reports import month_period
    with db.trial(p) as s:
        r = township_ranking(s, month_period(2026, 11), NOW)
        return r["asked"], [(t["code"], t["rank"], t["bottom"], t["talk_due"]) for t in r["rows"]]


def _ranking_bottom(p: Policy, db) -> tuple:
    """The bottom places marked where the ranking is asked for (a policy without a ranking names none)."""
    return _ranking(changed(p, "accountability.ranking", True), db)


def _veto(p: Policy, db) -> list:
    """The 评优一票否决 list of a school whose submitted 月报 hid a dropout (store/reporting/accountability.py)."""
    from sqlalchemy import select
    from store.models import School
    from store.models.reconcile import SubmittedReport
    from store.reporting.accountability import veto_list
    with db.trial(p) as s:
        school_id = s.scalar(select(School.id).where(School.code == db.code))
        s.add(SubmittedReport(  # as reconcile_period leaves a submission with fewer dropouts than the ledger
            school_id=school_id, period="2026-10", figures={"dropouts": 0}, submitted_by="t",
            submitted_at=datetime(2026, 11, 3, 9), status="submitted", reconciled_at=datetime(2026, 11, 3, 9),
            hides_open_cases=True, differences=[{"field": "dropouts", "label": "辍学人数", "submitted": 0, "ledger": 1,
                                                 "diff": -1, "hides": True, "cases": []}]))
        s.flush()
        return [(r["name"], r["reasons"]) for r in veto_list(s, 2026, NOW)["rows"]]


def _requests(p: Policy, db) -> list:
    """Who decides a leave of 1–5 school days, a 免学/缓学 and a 转出, and by when (store/cases/leave.py)."""
    from datetime import timedelta
    from sqlalchemy import select
    from store.cases.leave import apply_for
    from store.models import Pupil
    with db.trial(p) as s:
        pupil = s.scalar(select(Pupil.id).order_by(Pupil.id))
        ctx, out = db.ctx(p), []
        for i, (kind, days) in enumerate([("sick_leave", 1), ("sick_leave", 2), ("personal_leave", 3), ("sick_leave", 4),
                                          ("personal_leave", 5), ("exemption", 1), ("transfer", 1)]):
            first = DAY + timedelta(weeks=i)  # one pupil, a request a week (Monday on)
            r = apply_for(s, ctx, pupil_id=pupil, kind=kind, first_day=first, last_day=first + timedelta(days=days - 1),
                          source="teacher", actor="t", now=datetime(2026, 11, 16, 8), reason="probe",
                          to_school_name="别县某校" if kind == "transfer" else None)
            out.append((kind, r.days, r.role, r.due_at))
        return out


def _requests_with_office(p: Policy, db) -> list:
    """:func:`_requests` where the policy declares an academic office (教导处): a policy without one routes
    every leave past the head teacher to the principal, so its principal_over_days decides nothing."""
    return _requests(changed(p, "roles", lambda r: {"academic_office": "教导处", **r}), db)


def _after_school(p: Policy, db):
    """The due time of the school's 放学未回家 duty (store/cases/lessons.py)."""
    from sqlalchemy import select
    from store.cases.lessons import report_not_home
    from store.models import Pupil
    from store.models.prevention import PreventionDuty
    with db.trial(p) as s:
        report, _ = report_not_home(s, db.ctx(p), pupil_id=s.scalar(select(Pupil.id).order_by(Pupil.id)), day=DAY,
                                    parent_name="家长", parent_phone=None, note="", actor="t",
                                    now=datetime(2026, 11, 16, 16, 30))
        return s.scalar(select(PreventionDuty.due_at).where(PreventionDuty.id == report.duty_id))


def _weekly(p: Policy, db) -> list:
    """The days of the week of 2026-11-16 on which the weekly count (周查表) opens duties (store/reporting/people.py)."""
    from datetime import timedelta
    from store.reporting.people import open_weekly
    with db.trial(p) as s:
        return [d for d in range(7)
                if open_weekly(s, day=DAY + timedelta(days=d), now=NOW, policy_of=lambda _name: p)]


# field → (new value or function of the old one, observe(policy) or observe(policy, db))
Probe = tuple[Any, Callable]
PROBES: dict[str, Probe] = {
    "name": ("other", lambda p: p.key),
    "version": (lambda v: v + 1, lambda p: p.key),
    "label": ("改名", lambda p: _meta(p)["label"]),
    "jurisdiction": ("别处", lambda p: _meta(p)["jurisdiction"]),
    "source": ("seed 999", lambda p: _meta(p)["source"]),
    "escalation_time": (time(7, 0), lambda p: _effective(p)),
    "roles": (lambda r: {**r, "head_teacher": "班主任（改）"}, lambda p: p.role_label("head_teacher")),
    "steps": (lambda s: s[:-1], lambda p: escalation_pairs(p)),
    "actions": ({}, lambda p: p.action_documents(Action.record_phone_call)),
    # every rule from the last step only: the reasons allowed from the first step change (a referral keeps its rule)
    "outside": (lambda o: [{**r, "from_state": "judicial_notice"} for r in o],
                lambda p: [r for r in OutsideReason if p.outside_allowed(p.steps[1].state, r)]),
    "helpers_required": (4, _helpers),
    "notices.return_notice_days": (Also(lambda v: v + 1, steps=_later_judicial), lambda p: _notice(p, "legal_notice")),
    "notices.legal_notice_days": (lambda v: v + 1, lambda p: _notice(p, "legal_notice")),
    "notices.addressees": (lambda a: {**a, "return_notice": ["police"]}, lambda p: _notice(p, "return_notice")),
    "notices.cc": ({}, lambda p: _notice(p, "return_notice")),
    "notices.copies": (lambda c: {**c, "parent_notice": ["police"]}, lambda p: _notice(p, "parent_notice")),
    "notices.bodies": (lambda b: {**b, "judicial_office": "{township}法律服务所"}, lambda p: _notice(p, "legal_notice")),
    "referral": ({}, lambda p: [(r.value, [d.action for d in p.referral_spec(r.value).duties],
                                 p.referral_spec(r.value).legal_measure) for r in OutsideReason]),
    "three_helpers.roles": (["head_teacher", "principal"], _helpers),
    "special_groups": (lambda g: {**g, "left_behind": "留守学生（改）"},
                       lambda p: special_group_label("left_behind", p.special_groups)),
    "standard_dropout_rate": (0.5, _dropout_standard),
    "reports.school_due_day": (20, lambda p: _due(p, "school")),
    "reports.township_due_day": (21, lambda p: _due(p, "township")),
    "reports.term_reports": (lambda v: not v, _term_reports),
    "reports.spot_check_sample": (0.9, _spot_sample),
    "risk.helper_role": ("principal", _watch_helper),
    "risk.rules": ([], lambda p: [f.rule_id for f in evaluate(p.risk, PupilInputs(1, DAY, frozenset({"poor", "left_behind"})))]),
    "census.min_age": (5, _census_row),
    "census.max_age": (10, lambda p: check_row({"name": "某", "id_number": _id("20141001"), "birth_date": "2014-10-01"},
                                               p.census, 2026).school_age),
    "census.reference_date": ("09-30", _census_row),
    "handoffs.recipients": (lambda r: {**r, "legal_notice": ["police"]}, lambda p: _recipients(p, "legal_notice")),
    "handoffs.outside_bodies": (lambda v: not v, lambda p: _outside_recipients(p)),
    "handoffs.ack_school_days": (5, lambda p: _expected(p)),
    "handoffs.ack_time": (time(12, 0), lambda p: _expected(p)),
    "truancy.enabled": (False, _truancy_enabled),
    "truancy.count": (lambda v: "day" if v == "episode" else "episode", _truancy),
    "truancy.year_start_month": (8, _truancy),
    "truancy.repeat_last_tier": (lambda v: not v, _truancy),
    "truancy.tiers": (lambda t: t[:2], _truancy),
    "gate.enabled": (False, _gate),
    "gate.grace_minutes": (5, _gate),
    "gate.alert_role": ("principal", _gate),
    "gate.alert_due_minutes": (15, _gate),
    "gate.require_fetcher": (lambda v: not v, _gate),
    "accountability.chain_roles": (lambda r: r[:1], _chain),
    "accountability.pledge_roles": ([], _pledges),
    "accountability.pledge_due_month": (lambda m: 11 if m == 10 else 10, _pledges),
    "accountability.pledge_due_day": (lambda d: d - 1 if d > 1 else 2, _pledges),
    "accountability.pledge_title": ("控辍保学目标责任书（改）", _pledges),
    "accountability.talk_followup_days": (lambda d: d + 3 if d < 27 else d - 3, _talk_followup),
    "accountability.ranking": (lambda v: not v, _ranking),
    "accountability.ranking_bottom": (lambda b: 0 if b else 1, _ranking_bottom),
    "accountability.veto_hidden_dropouts": (lambda v: not v, _veto),
    "leave.office_over_days": (lambda v: v + 1, _requests),
    "leave.principal_over_days": (lambda v: v + 1, _requests_with_office),
    "leave.approval_school_days": (lambda v: v + 1, _requests),
    "leave.approval_time": (time(12, 0), _requests),
    "leave.exemption_decision_school_days": (lambda v: v + 1, _requests),
    "transfer.confirm_school_days": (lambda v: v + 1, _requests),
    "transfer.confirm_time": (time(12, 0), _requests),
    "transfer.after_school_due_hours": (lambda h: h + 1 if h < 6 else h - 1, _after_school),
    "reports.class_weekday": (lambda d: (d + 1) % 5 if d < 5 else 0, _weekly),
}
PROBE_PENDING = {  # read by production code; the probe needs a census import or two refreshes weeks apart
    "census.duties": "store.prevention.census.open_cases: the 失学 track's duties (needs a census import)",
    "census.documents": "store.prevention.census.open_cases: the 入学通知书 (needs a census import)",
    "risk.min_days": "store.prevention.risk.refresh_watch_list: a pupil stays listed min_days (needs two refreshes)",
}


def _meta(p: Policy) -> dict:
    from documents.facts import policy_meta
    return policy_meta(p)


def _effective(p: Policy):
    from store.cases.context import effective_day
    return effective_day(p, datetime(2026, 11, 16, 8, 30))


def _due(p: Policy, level: str):
    from store.reporting.reports import due_on, month_period
    return due_on(p, level, month_period(2026, 11))


def _id(birth: str) -> str:
    first17 = "110101" + birth + "123"
    return first17 + id_check_digit(first17)


def _recipients(p: Policy, kind: str):
    from store.duties.handoffs import recipients_for
    return recipients_for(p, kind)


def _outside_recipients(p: Policy):
    from store.duties.handoffs import recipients_for
    return [recipients_for(p, d, outside_reason=r.reason.value) for r in p.outside for d in r.documents] or \
        recipients_for(changed(changed(p, "referral", {}), "outside", [{"reason": "whereabouts_unknown", "from_state": "visited",
                                                "notify": ["police"], "documents": ["report_to_township"]}]),
                       "report_to_township", outside_reason="whereabouts_unknown")


def _expected(p: Policy):
    from store.calendars import calendars
    return p.handoffs.expected_by(calendars()["default"], DAY)


def test_every_policy_field_has_a_probe():
    fields = set(leaves(Policy))
    listed = set(PROBES) | set(PROBE_PENDING)
    assert not fields - listed, f"policy fields with no probe (make them change behaviour, or remove them): {sorted(fields - listed)}"
    assert not listed - fields, f"probes of fields the policy no longer has: {sorted(listed - fields)}"
    assert not set(PROBES) & set(PROBE_PENDING)


class _Db:
    """One small county for the probes that ask the store; policies are swapped in through the registry."""

    def __init__(self, session):
        from tests.engine_helpers import setup_store
        self.session = session
        self.code, _ = setup_store(session, pupils_per_class=3)
        from sqlalchemy import update
        from store.models import Pupil
        session.execute(update(Pupil).values(special_groups=["poor"]))  # every pupil on the watch list
        session.flush()

    def patched(self, policy: Policy):
        from contextlib import contextmanager, nullcontext
        from store.policy_files import PolicyRegistry

        @contextmanager
        def cm():
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(PolicyRegistry, "get", lambda reg, name, version=None: policy)
                mp.setattr("tasks.reports.store", lambda: None)  # the task's unit of work: this test's session
                mp.setattr("tasks.reports.transaction", lambda _factory: nullcontext(self.session))
                yield
        return cm()

    def ctx(self, policy: Policy):
        from store.cases.context import CaseContext
        ctx = CaseContext(self.session)
        ctx.policies.get = lambda name, version=None: policy
        return ctx

    def trial(self, policy: Policy):
        from contextlib import contextmanager

        @contextmanager
        def cm():
            nested = self.session.begin_nested()
            try:
                with self.patched(policy):
                    yield self.session
            finally:
                nested.rollback()
        return cm()


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_each_field_of_each_shipped_policy_changes_behaviour(name, session):
    import inspect
    policy, db = POLICIES[name], None
    flat = []
    for field, (value, observe) in PROBES.items():
        needs_db = len(inspect.signature(observe).parameters) == 2
        if needs_db and db is None:
            db = _Db(session)
        ask = (lambda p: observe(p, db)) if needs_db else observe
        before, after = ask(policy), ask(changed(policy, field, value))
        if before == after:
            flat.append(f"{field}: {before!r}")
    assert not flat, f"{name}: changing these fields changed nothing: {flat}"
