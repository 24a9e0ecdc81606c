"""A county file recorded set-based (``record_morning_checks``) leaves the same ledger as every
school's morning check recorded in turn (``record_morning_check``), on random mornings."""
from __future__ import annotations

import random
from datetime import date, datetime, time

from sqlalchemy import select

from store.cases.context import CaseContext
from store.db import transaction
from store.cases.intake import MarkIn, normalise_status, record_morning_check, record_morning_checks
from store.cases.leave import apply_for
from store.models import AttendanceMark, Case, CaseEvent, DocumentRequest, Duty, Pupil, School, Submission
from tests.engine_helpers import morning, setup_store, sweep

DAYS = [date(2026, 11, d) for d in (16, 17, 18, 19)]
CHECK_DAY = date(2026, 11, 20)
STATUSES = ["unexcused"] * 4 + ["present", "病假", "事假", "到校", "迟到?"]


def ledger(session) -> dict:
    """Everything the intake writes. Ids as ordinals: PostgreSQL does not roll its sequences back,
    so the second trial's new cases and submissions get other ids in the same order."""
    case_no = {cid: n for n, cid in enumerate(session.scalars(select(Case.id).order_by(Case.id)))}
    sub_no = {sid: n for n, sid in enumerate(session.scalars(select(Submission.id).order_by(Submission.id)))}

    def key(k: str | None) -> str | None:  # "intake:<submission id>"
        return f"intake:{sub_no[int(k.split(':')[1])]}" if k and k.startswith("intake:") else k

    return {
        "cases": sorted((case_no[r[0]], *r[1:-1], case_no.get(r[-1])) for r in session.execute(select(
            Case.id, Case.pupil_id, Case.school_id, Case.state, Case.version, Case.opened_on, Case.closed_on,
            Case.reason, Case.outcome_reason, Case.relapse_of))),
        "events": sorted(((case_no[r[0]], *r[1:-2], r[-2], key(r[-1])) for r in session.execute(select(
            CaseEvent.case_id, CaseEvent.seq, CaseEvent.event, CaseEvent.from_state, CaseEvent.to_state,
            CaseEvent.actor, CaseEvent.at, CaseEvent.reason, CaseEvent.payload, CaseEvent.idempotency_key))),
            key=lambda r: (r[0], r[1])),
        "duties": sorted((case_no[r[0]], *r[1:]) for r in session.execute(
            select(Duty.case_id, Duty.step, Duty.action, Duty.status))),
        "documents": sorted((case_no[r[0]], *r[1:]) for r in session.execute(select(
            DocumentRequest.case_id, DocumentRequest.kind, DocumentRequest.event_seq))),
        "marks": sorted((*r[:-1], sub_no[r[-1]]) for r in session.execute(select(
            AttendanceMark.pupil_id, AttendanceMark.day, AttendanceMark.status, AttendanceMark.submission_id))),
        "submissions": sorted((sub_no[r[0]], *r[1:]) for r in session.execute(select(
            Submission.id, Submission.school_id, Submission.content_sha256, Submission.summary))),
    }


def sheets_for(session, rng: random.Random) -> dict[str, list[MarkIn]]:
    """Each school's check: random statuses, an unknown pupil, a duplicated row, an unknown status."""
    out = {}
    for code, in session.execute(select(School.code).order_by(School.code)):
        nos = [n for n, in session.execute(select(Pupil.student_no).join(School).where(School.code == code))]
        rows = [MarkIn(n, rng.choice(STATUSES), rng.choice(["family", "study", "nonsense"]), row=i)
                for i, n in enumerate(rng.sample(nos, k=len(nos) // 2))]
        if rng.random() < 0.5:
            rows.append(MarkIn("NOPE-000", "unexcused", row=99))
        if rows and rng.random() < 0.5:
            rows.append(rows[0])
        out[code] = rows
    return out


def test_a_county_file_set_based_equals_each_school_in_turn(_outer_connection, factory, session):
    rng = random.Random(7)
    setup_store(session, pupils_per_class=6, grades=(2, 5), schools=3, seed=4)
    session.commit()
    codes = list(session.scalars(select(School.code).order_by(School.code)))
    for i, day in enumerate(DAYS):  # a history: open cases at several steps, returns, a relapse
        for code in codes:
            nos = [n for n, in session.execute(select(Pupil.student_no).join(School).where(School.code == code))]
            morning(factory, code, day, rng.sample(nos, k=4 + i))
        sweep(factory, day)
    with transaction(factory) as s:  # one pupil handed outside: still absent, not a new case
        case = s.scalar(select(Case).where(Case.state != "returned").order_by(Case.id))
        case.state, case.closed_on = "escalated", None
    with factory() as s:
        sheets = sheets_for(s, rng)
    with transaction(factory) as s:  # half the notes are approved leave: only those excuse (store.cases.leave)
        ctx, early = CaseContext(s), datetime.combine(CHECK_DAY, time(7))
        for n, m in enumerate(m for rows in sheets.values() for m in rows):
            kind, pid = normalise_status(m.status), s.scalar(select(Pupil.id).where(Pupil.student_no == m.student_no))
            if kind in ("sick_leave", "personal_leave") and pid and n % 2 == 0:
                r = apply_for(s, ctx, pupil_id=pid, kind=kind, first_day=CHECK_DAY, source="web", actor="t", now=early)
                # approved, with the case left for the morning check to excuse (store.cases.leave.decide would excuse it now)
                r.decision, r.decided_by, r.decided_at, r.status, r.done_at = "approved", "教务处", early, "done", early
    now = datetime.combine(CHECK_DAY, time(8, 15))
    results = {}
    for path in ("each", "many"):
        trial = _outer_connection.begin_nested()
        try:
            with transaction(factory) as s:
                ctx = CaseContext(s)
                if path == "each":
                    got = [record_morning_check(s, ctx, school_code=c, day=CHECK_DAY, marks=m, source="t",
                                                submitted_by="晨检员", now=now) for c, m in sheets.items()]
                else:
                    got = record_morning_checks(s, ctx, sheets, day=CHECK_DAY, source="t", submitted_by="晨检员", now=now)
                again = record_morning_checks(s, ctx, sheets, day=CHECK_DAY, source="t", submitted_by="晨检员", now=now)
            with factory() as s:
                case_no = {cid: n for n, cid in enumerate(s.scalars(select(Case.id).order_by(Case.id)))}
                results[path] = (ledger(s), [(r.summary(),
                                              [sorted(case_no[i] for i in ids) for ids in (r.opened, r.returned, r.excused)],
                                              [(e.row, e.student_no, e.message) for e in r.errors]) for r in got],
                                 [r.summary() for r in again])
        finally:
            trial.rollback()
    assert results["many"] == results["each"]
    summaries = [r[0] for r in results["many"][1]]
    assert sum(s["opened"] for s in summaries) and sum(s["returned"] for s in summaries)
    assert sum(s["excused"] for s in summaries) and sum(s["errors"] for s in summaries)
    assert sum(s["continuing"] for s in summaries)
    assert all(s["duplicate"] for s in results["many"][2])  # the same file twice records once
