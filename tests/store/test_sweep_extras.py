"""The daily sweep's extras in SQL (issue 20): the summary, the overdue table and the watch-list refresh agree
with the Python over the whole population they replace (both DBs)."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import select, update

from machines.identity import mask_name
from machines.states import OPEN_STATES, CaseState
from store.models import AttendanceMark, Case, CaseEvent, DocumentRequest, Duty, Pupil, School
from store.models.risk import PupilFlag, WatchDuty, WatchEntry, WatchEvent
from store.prevention import risk, risk_reference
from store.reporting import sweep_summary as ss
from store.reporting.queries import overdue_duties
from tests.engine_helpers import morning, setup_store, sweep

MON = date(2026, 11, 16)
DAYS = [MON + timedelta(days=i) for i in range(5)]


def _reference_summary(session, as_of: datetime, overdue_rows: int) -> dict:
    """The summary as the flow computed it before issue 20: the whole overdue list built to show its head."""
    from sqlalchemy import func

    open_ = [s.value for s in OPEN_STATES]
    moved = session.execute(select(CaseEvent.to_state, func.count()).where(CaseEvent.event == "escalate",
                                                                           CaseEvent.recorded_at == as_of)
                            .group_by(CaseEvent.to_state)).all()
    by_state = dict(session.execute(select(Case.state, func.count()).group_by(Case.state)).all())
    by_school = session.execute(
        select(School.code, School.name, Case.state, func.count()).join(School, School.id == Case.school_id)
        .where(Case.state.in_(open_)).group_by(School.code, School.name, Case.state).order_by(School.code)).all()
    late = overdue_duties(session, as_of, masked=True)
    schools: dict[str, dict] = {}
    for code, name, state, n in by_school:
        row = schools.setdefault(code, {"school": name, "code": code, **{st: 0 for st in open_}, "open": 0})
        row[state] = n
        row["open"] += n
    for d in late:
        d["owner"] = mask_name(d["owner"]) if d["owner"] else "—"
    return {"as_of": as_of.isoformat(sep=" "), "escalated_now": dict(sorted(moved)),
            "overdue_now": session.scalar(select(func.count()).select_from(Duty).where(Duty.overdue_at == as_of)) or 0,
            "cases_by_state": {st.value: by_state.get(st.value, 0) for st in CaseState},
            "by_school": list(schools.values()), "overdue_duties": len(late), "overdue_rows": late[:overdue_rows],
            "documents_queued": session.scalar(select(func.count()).select_from(DocumentRequest)
                                               .where(DocumentRequest.status == "queued")) or 0}


def test_the_sweep_summary_counts_and_lists_in_sql_what_the_python_over_every_duty_did(factory, session):
    code, nos = setup_store(session, pupils_per_class=5, schools=2)
    session.commit()
    codes = list(session.scalars(select(School.code).order_by(School.id)))
    pupils = {c: [p for p, in session.execute(select(Pupil.student_no).join(School, School.id == Pupil.school_id)
                                              .where(School.code == c).order_by(Pupil.id))] for c in codes}
    for i, d in enumerate(DAYS):  # a few absent all week, one back on Wednesday (its duties stay undone), one new
        for c in codes:
            absent = pupils[c][:4] + ([pupils[c][4]] if i < 2 else []) + ([pupils[c][5]] if i >= 3 else [])
            morning(factory, c, d, absent)
        sweep(factory, d, time(18, 0))
    as_of = datetime.combine(DAYS[-1], time(18, 0))
    # a returned case's duty left undone and past due: listed nowhere, counted nowhere
    closed = session.scalar(select(Case.id).where(Case.state == "returned"))
    assert closed is not None
    session.execute(update(Duty).where(Duty.case_id == closed).values(status="open", due_at=as_of - timedelta(days=1)))
    session.flush()
    ref = _reference_summary(session, as_of, overdue_rows=3)
    assert ref["overdue_duties"] > 3 and ref["escalated_now"] and ref["overdue_now"]
    assert ss.sweep_summary(session, as_of, overdue_rows=3) == ref
    assert ss.count_overdue_duties(session, as_of) == ref["overdue_duties"]
    # the flow hands in its own counts (its batches'): the same summary
    moved = {f"{codes[0]}|{k}": n for k, n in ref["escalated_now"].items()}
    assert ss.sweep_summary(session, as_of, overdue_rows=3, escalated_now=ss.by_value(moved),
                            overdue_now=ref["overdue_now"]) == ref


def test_a_batch_is_described_by_school_and_new_state_in_sql(factory, session):
    code, nos = setup_store(session, pupils_per_class=4)
    session.commit()
    morning(factory, code, MON, nos[:5])
    sweep(factory, MON, time(18, 0))
    cases = list(session.scalars(select(Case.id)))
    assert ss.escalated_groups(session, cases) == {f"{code}|family_contacted": 5}
    duties = list(session.scalars(select(Duty.id).where(Duty.status == "overdue")))
    groups = ss.overdue_groups(session, duties)
    assert sum(groups.values()) == len(duties) > 0 and all(k.startswith(code + "|") for k in groups)


# -- the watch list -------------------------------------------------------------------------------------------
def _snapshot(session) -> dict:
    """What a refresh wrote, without ids: entries, their events and duties by pupil, and the flags."""
    pupil_of = dict(session.execute(select(WatchEntry.id, WatchEntry.pupil_id)).all())
    return {
        "entries": sorted((e.pupil_id, e.school_id, e.class_id, e.since, e.until, repr(e.rules), e.helper_id, e.policy,
                           e.updated_at) for e in session.scalars(select(WatchEntry))),
        "events": sorted((pupil_of[v.entry_id], v.event, v.actor, v.at, v.reason, repr(sorted(v.payload.items())))
                         for v in session.scalars(select(WatchEvent))),
        "duties": sorted((pupil_of[d.entry_id], d.rule_id, d.action, d.role, d.owner_id, d.due_on, d.status)
                         for d in session.scalars(select(WatchDuty))),
        "flags": sorted((f.pupil_id, f.flag, f.source, f.since) for f in session.scalars(select(PupilFlag))),
    }


def _both(session, as_of: datetime) -> tuple:
    """The reference and the set-wise refresh from the same state; the set-wise one's writes are kept."""
    sp = session.begin_nested()
    ref = risk_reference.refresh_watch_list(session, as_of=as_of)
    ref_rows = _snapshot(session)
    sp.rollback()
    session.expire_all()
    new = risk.refresh_watch_list(session, as_of=as_of, slice_size=4)  # slices of 4 pupil ids: many slices
    return ref, ref_rows, new, _snapshot(session)


def _absent(session, pupil, days: list[date]):
    for d in days:
        session.add(AttendanceMark(pupil_id=pupil.id, school_id=pupil.school_id, day=d, status="unexcused",
                                   recorded_at=datetime.combine(d, time(8))))
    session.flush()


def test_the_set_wise_watch_refresh_writes_what_the_row_by_row_reference_wrote(factory, session):
    code, nos = setup_store(session, pupils_per_class=6, schools=2)
    pupils = list(session.scalars(select(Pupil).order_by(Pupil.id)))
    for i, p in enumerate(pupils):
        p.special_groups = [["left_behind"], ["poor", "left_behind"], ["learning_difficulty"], ["disabled"], [], []][i % 6]
    friday = date(2026, 11, 27)
    for k, p in enumerate(pupils[4:40:6]):  # rising absences (0→1→1→2 style) for some, falling for others
        weeks = [[0, 1, 1, 2], [2, 1, 1, 2], [0, 0, 1, 3], [1, 1, 1, 1]][k % 4]
        _absent(session, p, [friday - timedelta(days=7 * (3 - w) + j) for w, n in enumerate(weeks) for j in range(n)])
    at = datetime(2026, 11, 27, 9, 30)
    ref, ref_rows, new, new_rows = _both(session, at)
    assert ref == new and ref_rows == new_rows
    assert new["added"] > 10 and {e[0] for e in new_rows["entries"]} >= {pupils[4].id}

    # a month later: a flag gone from the roster, a pupil enrolled elsewhere, new absences, the old ones out of
    # the window (entries leave after min_days), and a flag rule gained by a pupil on watch for absences
    pupils[0].special_groups = []
    pupils[1].enrolled = False
    pupils[4].special_groups = ["poor"]
    later = friday + timedelta(days=35)
    _absent(session, pupils[5], [later - timedelta(days=j) for j in range(3)] + [later - timedelta(days=8)])
    session.flush()
    ref, ref_rows, new, new_rows = _both(session, datetime.combine(later, time(9, 30)))
    assert ref == new and ref_rows == new_rows
    assert new["left"] and new["changed"] and new["flags"]["removed"] == 3
    # and once more on the same day: nothing to do, as the reference
    ref, ref_rows, new, new_rows = _both(session, datetime.combine(later, time(12, 0)))
    assert ref == new and ref_rows == new_rows and (new["added"], new["changed"], new["left"]) == (0, 0, 0)
