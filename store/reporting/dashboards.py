"""Read queries behind the pages and the API (what a head teacher, a school or an office looks at).

Every function takes the reader's :class:`store.access.scope.Scope`; nothing here decides who the
reader is. Names are masked when ``masked`` is set (the county's lists).
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from machines.identity import mask_name
from machines.states import ACTION_LABELS, LADDER, LIVE_STATES, STATE_LABELS, Action, CaseState, OPEN_STATES
from machines.vocabulary import ATTENDANCE_LABELS, state_label

from store.models import AttendanceMark, Case, Duty, Jurisdiction, Pupil, School, SchoolClass, Staff, Submission
from store.access.scope import EVERYTHING, Scope

OPEN = [s.value for s in OPEN_STATES]
LIVE = [s.value for s in LIVE_STATES]  # with the referred cases, whose follow-up duties go on
STATUS_LABELS = ATTENDANCE_LABELS  # machines.vocabulary


def action_label(action: str) -> str:
    return ACTION_LABELS[Action(action)] if action in Action.__members__ else action


def schools_in(session: Session, scope: Scope = EVERYTHING) -> list[dict[str, Any]]:
    """The schools a scope reaches, with their township, in code order."""
    q = select(School, Jurisdiction.name).join(Jurisdiction, Jurisdiction.id == School.township_id).order_by(School.code)
    if scope.school_ids is not None:
        q = q.where(School.id.in_(scope.school_ids))
    if scope.township_ids is not None:
        q = q.where(School.township_id.in_(scope.township_ids))
    return [{"id": s.id, "code": s.code, "name": s.name, "township": t, "township_id": s.township_id,
             "enrolled": s.enrolled, "policy": s.policy_name, "calendar": s.calendar_key} for s, t in session.execute(q)]


def classes_in(session: Session, scope: Scope) -> list[dict[str, Any]]:
    q = select(SchoolClass, School.code).join(School, School.id == SchoolClass.school_id)
    q = scope.apply(q, school_col=SchoolClass.school_id, class_col=SchoolClass.id)
    return [{"id": c.id, "name": c.name, "grade": c.grade, "school_id": c.school_id, "school_code": code}
            for c, code in session.execute(q.order_by(SchoolClass.school_id, SchoolClass.grade, SchoolClass.name))]


def pupils_in(session: Session, scope: Scope, *, class_id: int | None = None) -> list[dict[str, Any]]:
    q = scope.apply(select(Pupil, SchoolClass.name).join(SchoolClass, SchoolClass.id == Pupil.class_id)
                    .where(Pupil.enrolled), school_col=Pupil.school_id, class_col=Pupil.class_id)
    if class_id is not None:
        q = q.where(Pupil.class_id == class_id)
    return [{"id": p.id, "student_no": p.student_no, "name": p.name, "class": k, "class_id": p.class_id,
             "school_id": p.school_id} for p, k in session.execute(q.order_by(Pupil.class_id, Pupil.student_no))]


def absences_on(session: Session, scope: Scope, day: date, *, masked: bool = False) -> list[dict[str, Any]]:
    """Pupils not in class on ``day`` by the morning check (unexcused first), with their open case."""
    q = (select(AttendanceMark.status, Pupil, SchoolClass.name, Case.id, Case.state)
         .join(Pupil, Pupil.id == AttendanceMark.pupil_id).join(SchoolClass, SchoolClass.id == Pupil.class_id)
         .outerjoin(Case, and_(Case.pupil_id == Pupil.id, Case.state.in_(OPEN)))
         .where(AttendanceMark.day == day, AttendanceMark.status != "present"))
    q = scope.apply(q, school_col=AttendanceMark.school_id, class_col=Pupil.class_id)
    rows = [{"pupil": mask_name(p.name) if masked else p.name, "student_no": p.student_no, "class": k,
             "status": status, "status_label": STATUS_LABELS.get(status, status), "case_id": cid,
             "state_label": STATE_LABELS[CaseState(st)] if st else ""} for status, p, k, cid, st in session.execute(q)]
    return sorted(rows, key=lambda r: (r["status"] != "unexcused", r["class"], r["student_no"]))


def duties_of(session: Session, scope: Scope, as_of: datetime, *, owner_id: int | None = None,
              masked: bool = False) -> list[dict[str, Any]]:
    """Open and overdue duties (of ``owner_id`` if given), soonest due first; overdue ones flagged."""
    q = (select(Duty, Case, Pupil, SchoolClass.name, Staff.name)
         .join(Case, Case.id == Duty.case_id).join(Pupil, Pupil.id == Case.pupil_id)
         .join(SchoolClass, SchoolClass.id == Case.class_id).outerjoin(Staff, Staff.id == Duty.owner_id)
         .where(Duty.status.in_(("open", "overdue")), Case.state.in_(LIVE)).order_by(Duty.due_at, Duty.id))
    if owner_id is not None:
        q = q.where(Duty.owner_id == owner_id)
    q = scope.apply(q)
    return [{
        "duty_id": d.id, "case_id": c.id, "pupil": mask_name(p.name) if masked else p.name, "class": k,
        "action": d.action, "action_label": action_label(d.action), "step_label": state_label(d.step),
        "role": d.role, "owner": owner, "due_at": d.due_at, "overdue": d.status == "overdue" or d.due_at <= as_of,
        "hours_overdue": max(0.0, round((as_of - d.due_at).total_seconds() / 3600, 1)),
    } for d, c, p, k, owner in session.execute(q)]


def open_cases_by_step(session: Session, scope: Scope) -> dict[str, Any]:
    """Open cases per school and ladder step (every school in scope listed, zeros included)."""
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    q = scope.apply(select(Case.school_id, Case.state, func.count()).where(Case.state.in_(OPEN))
                    .group_by(Case.school_id, Case.state))
    for school_id, state, n in session.execute(q):
        counts[school_id][state] = n
    schools = schools_in(session, Scope(school_ids=scope.school_ids, township_ids=scope.township_ids))
    rows = []
    for s in schools:
        c = counts.get(s["id"], {})
        rows.append({**s, "by_step": {st.value: c.get(st.value, 0) for st in LADDER}, "total": sum(c.values())})
    totals = {st.value: sum(r["by_step"][st.value] for r in rows) for st in LADDER}
    return {"steps": [{"state": st.value, "label": st.label} for st in LADDER], "schools": rows, "totals": totals,
            "total": sum(totals.values())}


def cases_by_step(session: Session, scope: Scope, *, masked: bool = False) -> list[dict[str, Any]]:
    """The open cases of a scope grouped by ladder step (the school office's board)."""
    q = (select(Case, Pupil, SchoolClass.name).join(Pupil, Pupil.id == Case.pupil_id)
         .join(SchoolClass, SchoolClass.id == Case.class_id).where(Case.state.in_(OPEN)).order_by(Case.opened_on, Case.id))
    by_state: dict[str, list] = defaultdict(list)
    for c, p, k in session.execute(scope.apply(q)):
        by_state[c.state].append({"id": c.id, "pupil": mask_name(p.name) if masked else p.name, "class": k,
                                  "opened_on": c.opened_on, "reason": c.reason})
    return [{"state": st.value, "label": st.label, "cases": by_state.get(st.value, [])} for st in LADDER]


SORTS = ("overdue", "owner", "school")


def stuck_cases(session: Session, scope: Scope, as_of: datetime, *, sort: str = "overdue",
                masked: bool = False) -> list[dict[str, Any]]:
    """Everything with a duty past its deadline, one row per case (or census case, pupil, watch entry)
    with everyone who owes something: the case ladder's duties and the census, prevention and
    watch-list duties alike (one query, :func:`store.duties.ledger.overdue`).

    ``sort``: ``overdue`` (longest overdue first), ``owner`` (by the owner's name) or ``school``.
    """
    from store.duties.ledger import overdue

    by_ref: dict[tuple[str, int], dict[str, Any]] = {}
    for d in overdue(session, as_of, scope=scope, masked=masked):
        row = by_ref.setdefault((d["kind"], d["ref_id"]), {
            "kind": d["kind"], "kind_label": d["kind_label"], "ref_id": d["ref_id"], "href": d["href"],
            "case_id": d["ref_id"] if d["kind"] == "case" else None, "pupil": d["pupil"], "school": d["school"],
            "state": d["state"], "state_label": d["context"], "hours_overdue": 0.0, "owed": [],
        })
        row["hours_overdue"] = max(row["hours_overdue"], d["hours_overdue"])
        row["owed"].append({"owner": d["owner"] or "（未指定）", "owner_id": d["owner_id"], "role": d["role"],
                            "action": d["action"], "action_label": d["action_label"],
                            "due_at": d["due_at"].isoformat(sep=" "), "hours_overdue": d["hours_overdue"]})
    _add_stuck_handoffs(session, scope, as_of, by_ref, masked=masked)
    rows = list(by_ref.values())
    for r in rows:
        r["owners"] = sorted({o["owner"] for o in r["owed"]})
        r["days_overdue"] = round(r["hours_overdue"] / 24, 1)
    for r in rows:  # what is owed, in the order of the sort (so the row's first owner is its sort key)
        r["owed"].sort(key=(lambda o: (o["owner"], -o["hours_overdue"])) if sort == "owner" else
                       (lambda o: -o["hours_overdue"]))
    if sort == "owner":
        rows.sort(key=lambda r: (r["owners"][0], -r["hours_overdue"]))
    elif sort == "school":
        rows.sort(key=lambda r: (r["school"], -r["hours_overdue"]))
    else:
        rows.sort(key=lambda r: (-r["hours_overdue"], r["kind"], r["ref_id"]))
    return rows


def _add_stuck_handoffs(session: Session, scope: Scope, as_of: datetime, by_ref: dict[tuple[str, int], dict[str, Any]], *,
                        masked: bool) -> None:
    """A case waiting on an outside body's receipt (送达回证) past the policy's time is stuck too."""
    from store.duties.handoffs import stuck_handoffs

    for h in stuck_handoffs(session, scope, as_of, masked=masked):
        if h["case_id"] is None:  # census cases are listed on the census page
            continue
        row = by_ref.setdefault(("case", h["case_id"]), {
            "kind": "case", "kind_label": "控辍案件", "ref_id": h["case_id"], "href": f"/cases/{h['case_id']}",
            "case_id": h["case_id"], "pupil": h["child"], "school": h["school"], "state": h["case_state"],
            "state_label": STATE_LABELS[CaseState(h["case_state"])], "hours_overdue": 0.0, "owed": [],
        })
        row["hours_overdue"] = max(row["hours_overdue"], h["hours_overdue"])
        row["owed"].append({"owner": h["recipient_name"], "owner_id": None, "role": h["recipient"], "action": "handoff_ack",
                            "action_label": f"签收《{h['title']}》（送达回证）", "due_at": h["due_at"],
                            "hours_overdue": h["hours_overdue"]})


def morning_check_status(session: Session, scope: Scope, days: list[date], *, deadline: time) -> list[dict[str, Any]]:
    """Per school: on which of ``days`` its morning check came in after ``deadline`` or not at all."""
    schools = schools_in(session, scope)
    first = {(sid, d): at for sid, d, at in session.execute(
        select(Submission.school_id, Submission.day, func.min(Submission.received_at))
        .where(Submission.day.in_(days), Submission.school_id.in_([s["id"] for s in schools]))
        .group_by(Submission.school_id, Submission.day))}
    out = []
    for s in schools:
        late, missing = [], []
        for d in days:
            at = first.get((s["id"], d))
            if at is None:
                missing.append(d)
            elif at > datetime.combine(d, deadline):
                late.append({"day": d, "at": at})
        out.append({**s, "late": late, "missing": missing, "on_time": len(days) - len(late) - len(missing)})
    return out


def accountability(session: Session, scope: Scope, start: date, end: date, as_of: datetime, *,
                   masked: bool = False) -> dict[str, Any]:
    """责任追究 evidence: every duty of every kind due in [start, end] not done by its deadline, by owner, and the
    reconciliation differences — the one read model (:func:`store.reporting.accountability.evidence`)."""
    from store.reporting.accountability import evidence

    return evidence(session, scope, start, end, as_of, masked=masked)


def case_documents(session: Session, case_id: int) -> list[dict[str, Any]]:
    """The documents of a case: those issued (with their files) and those still being produced."""
    from store.models.documents import Document
    from store.models import DocumentRequest

    docs = session.scalars(select(Document).where(Document.case_id == case_id).order_by(Document.event_seq, Document.id)).all()
    latest: dict[str, Any] = {}
    for d in docs:  # a correction supersedes: keep the newest version of each key
        if d.doc_key not in latest or d.version > latest[d.doc_key].version:
            latest[d.doc_key] = d
    issued = {(d.kind, d.event_seq) for d in latest.values()}
    out = [{"id": d.id, "kind": d.kind, "title": d.title, "doc_number": d.doc_number, "event_seq": d.event_seq,
            "version": d.version, "created_at": d.created_at, "status": "issued",
            "files": [{"fmt": f.fmt, "size": f.size} for f in d.files]} for d in latest.values()]
    for r in session.scalars(select(DocumentRequest).where(DocumentRequest.case_id == case_id).order_by(DocumentRequest.id)):
        if (r.kind, r.event_seq) not in issued:
            out.append({"id": None, "kind": r.kind, "title": None, "doc_number": None, "event_seq": r.event_seq,
                        "version": None, "created_at": r.requested_at, "status": r.status, "files": []})
    return sorted(out, key=lambda d: (d["event_seq"] or 0, d["kind"]))


def document_in_scope(session: Session, document_id: int, scope: Scope):
    """A case document the scope may read, or None."""
    from store.models.documents import Document

    doc = session.get(Document, document_id)
    if doc is None or doc.case_id is None:
        return None
    allowed = session.scalar(scope.apply(select(Case.id).where(Case.id == doc.case_id)))
    return doc if allowed else None


def report_filings(session: Session, scope: Scope, *, kind: str = "monthly", period: str | None = None) -> list:
    """Filed periodic reports a scope may read: its schools' and townships' (the county's for everything)."""
    from store.models.reports import ReportFiling

    q = select(ReportFiling).where(ReportFiling.kind == kind)
    if period:
        q = q.where(ReportFiling.period == period)
    filings = session.scalars(q.order_by(ReportFiling.period.desc(), ReportFiling.level, ReportFiling.scope_code)).all()
    if scope.school_ids is None and scope.township_ids is None and scope.class_ids is None:
        return list(filings)
    schools = schools_in(session, Scope(school_ids=scope.school_ids, township_ids=scope.township_ids))
    codes = {s["code"] for s in schools}
    if scope.township_ids is not None:
        codes |= set(session.scalars(select(Jurisdiction.code).where(Jurisdiction.id.in_(scope.township_ids))))
    return [f for f in filings if f.scope_code in codes]


def spot_checks(session: Session, scope: Scope) -> list[dict[str, Any]]:
    """The quarterly spot-check sheets, cut down to the classes of schools in scope."""
    from store.models.reports import SpotCheck

    codes = {s["code"] for s in schools_in(session, Scope(school_ids=scope.school_ids, township_ids=scope.township_ids))}
    out = []
    for check in session.scalars(select(SpotCheck).order_by(SpotCheck.quarter.desc())):
        rows = [r for r in check.figures.get("classes", []) if r.get("school_code") in codes]
        out.append({"id": check.id, "quarter": check.quarter, "drawn_at": check.drawn_at, "seed": check.seed,
                    "seal": check.sample_sha256, "rows": rows, "files": check.files or {},
                    "all_schools": len(codes) == len(schools_in(session))})
    return out
