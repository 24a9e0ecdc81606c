"""Reconciliation: a school's submitted monthly figures against the ledger (seed 001 grounds 8–9:
底数不清, 瞒报, 弄虚作假).

A school submits its 月报 figures (:func:`submit_figures`); on the report dates the flow compares
every submission of the month with the case ledger (:func:`reconcile_period`) and lists each
difference with the cases behind the ledger's number. A submission whose dropouts or pupils out of
school are *fewer* than the ledger's hides open cases: it cannot be accepted without a written
explanation (:func:`accept_submission` raises :class:`ReconcileError`), and the difference, the
explanation and who accepted it stay in the accountability evidence (:func:`evidence`).

The ledger's numbers use the monthly report's definitions (``store.reporting.reports``): dropouts are cases
at the collective visit or beyond or handed outside, out of school is every open or handed-out
case, opened/returned count the cases opened/closed as returned in the month; read from the case
history as the ledger stood when the school submitted, so a later run gives the same differences.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from machines.identity import mask_name
from machines.states import CaseState

from store.models import Case, Jurisdiction, Pupil, School
from store.models.reconcile import SubmittedReport
from store.reporting.reports import DROPOUT_STATES, OUT_OF_SCHOOL, cutoff_of, ledger_at, month_period

FIELDS = {"dropouts": "辍学人数", "out_of_school": "未返校人数（在办及移交）", "opened": "本月新登记", "returned": "本月复学"}
HIDING = ("dropouts", "out_of_school")  # fewer than the ledger: open cases left out of the report


class ReconcileError(ValueError):
    """A reconciliation rule refused the request; the message is for staff (中文 English)."""


def _period(period: str):
    try:
        year, month = (int(x) for x in period.split("-"))
        return month_period(year, month)
    except ValueError:
        raise ReconcileError(f"月份格式应为 2026-11 (month expected as YYYY-MM): {period!r}") from None


def _school(session: Session, code: str) -> School:
    school = session.scalar(select(School).where(School.code == code))
    if school is None:
        raise ReconcileError(f"学校代码 {code} 不存在 (unknown school)")
    return school


def submit_figures(session: Session, *, school_code: str, period: str, figures: dict[str, Any], by: str,
                   at: datetime) -> SubmittedReport:
    """The school's own figures for ``period``; a resubmission replaces them until accepted."""
    _period(period)
    school = _school(session, school_code)
    unknown = sorted(set(figures) - set(FIELDS))
    if unknown:
        raise ReconcileError(f"未知的上报项 {unknown}；可报项：{'、'.join(f'{k}（{v}）' for k, v in FIELDS.items())}")
    clean = {}
    for key, value in figures.items():
        try:
            clean[key] = int(value)
        except (TypeError, ValueError):
            raise ReconcileError(f"{FIELDS[key]} 应为整数 (integer expected): {value!r}") from None
        if clean[key] < 0:
            raise ReconcileError(f"{FIELDS[key]} 不能为负数 (must not be negative)")
    if not clean:
        raise ReconcileError("没有上报任何数字 (no figures)")
    sub = session.scalar(select(SubmittedReport).where(SubmittedReport.school_id == school.id,
                                                        SubmittedReport.period == period))
    if sub is None:
        sub = SubmittedReport(school_id=school.id, period=period, figures=clean, submitted_by=by, submitted_at=at,
                              status="submitted", differences=[], version=1)
        session.add(sub)
    elif sub.status == "accepted":
        raise ReconcileError(f"{school.name} {period} 月报已审核通过，不能再修改 (already accepted)")
    else:
        sub.figures, sub.submitted_by, sub.submitted_at = clean, by, at
        sub.version += 1
        sub.differences, sub.hides_open_cases, sub.reconciled_at = [], False, None
    session.flush()
    return sub


# -- the ledger side ----------------------------------------------------------------------------------
def ledger_cases(session: Session, school_ids: list[int], period: str,
                 as_of: datetime | None = None) -> dict[int, dict[str, list[dict]]]:
    """school id → figure → the cases behind the ledger's number: the cases ``store.reporting.reports``
    counts for the month (``ledger_figures``, the one read model), as the ledger stood at the
    month's end or at ``as_of`` if earlier (a report is compared with what the ledger said when it
    was submitted, so reconciling again later gives the same differences)."""
    p = _period(period)
    cutoff = cutoff_of(p, as_of or datetime.combine(p.end, datetime.max.time()))
    out: dict[int, dict[str, list[dict]]] = {sid: {k: [] for k in FIELDS} for sid in school_ids}
    rows = session.execute(
        select(Case.id, Case.school_id, Case.state, Case.opened_on, Case.closed_on, Pupil.name)
        .join(Pupil, Pupil.id == Case.pupil_id)
        .where(Case.school_id.in_(school_ids or [-1]), Case.opened_on <= p.end).order_by(Case.id)).all()
    then = ledger_at(session, [(r.id, r.state, r.closed_on) for r in rows], cutoff)
    for cid, sid, _, opened, _, name in rows:
        if cid not in then:  # registered after the cut-off
            continue
        state, closed = then[cid]
        case = {"case_id": cid, "state": state, "opened_on": opened.isoformat(), "pupil": mask_name(name)}
        mine = out[sid]
        if state in DROPOUT_STATES:
            mine["dropouts"].append(case)
        if state in OUT_OF_SCHOOL:
            mine["out_of_school"].append(case)
        if p.start <= opened <= p.end:
            mine["opened"].append(case)
        if state == CaseState.returned.value and closed is not None and p.start <= closed <= p.end:
            mine["returned"].append(case)
    return out


def compare(submitted: dict[str, int], ledger: dict[str, list[dict]]) -> list[dict[str, Any]]:
    """Each submitted figure that differs from the ledger, with the ledger's cases behind it."""
    out = []
    for key, label in FIELDS.items():
        if key not in submitted:
            continue
        n = len(ledger[key])
        if submitted[key] != n:
            out.append({"field": key, "label": label, "submitted": submitted[key], "ledger": n,
                        "diff": submitted[key] - n, "hides": key in HIDING and submitted[key] < n, "cases": ledger[key]})
    return out


def reconcile_period(session: Session, *, period: str, as_of: datetime,
                     school_ids: list[int] | None = None) -> list[dict[str, Any]]:
    """Every school's submission for ``period`` against the ledger as it stood when the school
    submitted (at the latest ``as_of``); schools that have not submitted are listed as missing, with
    the ledger at ``as_of``. Accepted submissions keep the comparison they were accepted on."""
    q = select(School.id, School.code, School.name, Jurisdiction.name).join(Jurisdiction, Jurisdiction.id == School.township_id)
    if school_ids is not None:
        q = q.where(School.id.in_(school_ids or [-1]))
    schools = session.execute(q.order_by(School.code)).all()
    subs = {s.school_id: s for s in session.scalars(select(SubmittedReport).where(
        SubmittedReport.period == period, SubmittedReport.school_id.in_([r[0] for r in schools] or [-1])))}
    out = []
    for sid, code, name, township in schools:
        sub = subs.get(sid)
        ledger = ledger_cases(session, [sid], period, as_of if sub is None else min(sub.submitted_at, as_of))
        counts = {k: len(v) for k, v in ledger[sid].items()}
        if sub is None:
            out.append({"school_code": code, "school": name, "township": township, "period": period, "status": "missing",
                        "submission_id": None, "submitted": None, "ledger": counts, "differences": [],
                        "hides_open_cases": False, "explanation": None, "accepted_by": None})
            continue
        if sub.status != "accepted":
            diffs = compare(sub.figures, ledger[sid])
            sub.differences, sub.hides_open_cases, sub.reconciled_at = diffs, any(d["hides"] for d in diffs), as_of
        out.append(_row(sub, code, name, township, counts))
    session.flush()
    return out


def _row(sub: SubmittedReport, code: str, name: str, township: str, counts: dict | None = None) -> dict[str, Any]:
    return {"school_code": code, "school": name, "township": township, "period": sub.period, "status": sub.status,
            "submission_id": sub.id, "submitted": sub.figures, "submitted_by": sub.submitted_by,
            "submitted_at": sub.submitted_at.isoformat(sep=" "), "ledger": counts,
            "reconciled_at": sub.reconciled_at.isoformat(sep=" ") if sub.reconciled_at else None,
            "differences": sub.differences, "hides_open_cases": sub.hides_open_cases, "explanation": sub.explanation,
            "accepted_by": sub.accepted_by, "accepted_at": sub.accepted_at.isoformat(sep=" ") if sub.accepted_at else None}


def accept_submission(session: Session, submission_id: int, *, by: str, at: datetime,
                      explanation: str | None = None, school_ids: list[int] | None = None) -> SubmittedReport:
    """Mark a submission accepted (审核通过). Refused without an explanation when it hides open cases
    (compared with the ledger now). ``school_ids``: the reviewer's scope (None = everything)."""
    sub = session.scalar(select(SubmittedReport).where(SubmittedReport.id == submission_id).with_for_update())
    if sub is None or (school_ids is not None and sub.school_id not in school_ids):
        raise LookupError(f"上报记录 {submission_id} 不存在，或不在您的管辖范围内 (submission not found)")
    if sub.status == "accepted":
        return sub
    reconcile_period(session, period=sub.period, as_of=at, school_ids=[sub.school_id])
    explanation = (explanation or "").strip()
    if sub.hides_open_cases and not explanation:
        hidden = [d for d in sub.differences if d["hides"]]
        detail = "；".join(f"{d['label']}上报 {d['submitted']}、台账 {d['ledger']}（案件 "
                          f"{', '.join(str(c['case_id']) for c in d['cases'][:20])}）" for d in hidden)
        raise ReconcileError(f"上报数字少于台账，隐瞒在办案件：{detail}。须填写说明后方可审核通过 "
                             f"(the report hides open cases; an explanation is required to accept it)")
    sub.status, sub.accepted_by, sub.accepted_at, sub.explanation = "accepted", by, at, explanation or None
    session.flush()
    return sub


def reconciliation_rows(session: Session, *, period: str, school_ids: list[int] | None = None) -> list[dict[str, Any]]:
    """The stored submissions of ``period`` (no recomputation): for the pages and the evidence."""
    q = (select(SubmittedReport, School.code, School.name, Jurisdiction.name).join(School, School.id == SubmittedReport.school_id)
         .join(Jurisdiction, Jurisdiction.id == School.township_id).where(SubmittedReport.period == period))
    if school_ids is not None:
        q = q.where(SubmittedReport.school_id.in_(school_ids or [-1]))
    return [_row(sub, code, name, township) for sub, code, name, township in session.execute(q.order_by(School.code))]


def evidence(session: Session, school_ids: list[int], start, end) -> list[dict[str, Any]]:
    """Differences of the submissions whose month falls in [start, end]: the accountability
    sheet's 瞒报/数据不实 rows (ground: 底数不清、瞒报、弄虚作假), accepted or not."""
    periods, month = [], start.replace(day=1)
    while month <= end:
        periods.append(f"{month:%Y-%m}")
        month = (month + timedelta(days=32)).replace(day=1)
    out = []
    for period in periods:
        for row in reconciliation_rows(session, period=period, school_ids=school_ids):
            for d in row["differences"]:
                out.append({"school": row["school"], "period": period, "label": d["label"], "submitted": d["submitted"],
                            "ledger": d["ledger"], "hides": d["hides"], "case_ids": [c["case_id"] for c in d["cases"]],
                            "status": row["status"], "accepted_by": row["accepted_by"], "explanation": row["explanation"],
                            "ground": "底数不清、瞒报、弄虚作假" if d["hides"] else "上报数据与台账不符"})
    return out
