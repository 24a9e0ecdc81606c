"""Every duty, whatever its kind, as one list (DOMAIN.md §3: a named person's action with a due time).

Four tables hold duties with the same shape (:class:`store.models.DutyColumns`):

========== ===================== ===================================== ===========================
kind       table                 belongs to (``ref_id``)               open while
========== ===================== ===================================== ===========================
case       ``duties``            the dropout case (``cases.id``)       the case is open
census     ``census_duties``     the 失学 census case                  the census case is open
prevention ``prevention_duties`` the pupil (gate alert, truancy tier)  —
watch      ``watch_duties``      the watch-list entry                  —
calendar   ``calendar_duties``   the (calendar, year) without holidays —  (an operator's; no school)
talk       ``talk_duties``       the 约谈 (``interviews.id``)          —  (its rectification's follow-up)
pledge     ``pledge_duties``     the 责任书 (``pledges.id``)           —  (a signature still missing)
report_due ``report_duties``     itself (a report, weekly count, 季查)  —  (school set unless township/county)
approval   ``leave_requests``    the request itself (请假/免学/转出)      —  (decided: done)
========== ===================== ===================================== ===========================

:func:`ledger` is one ``UNION ALL`` select over the four with the same columns (kind, id, school,
class, pupil, reference, action, label, role, owner, due time, status); the stuck list, the overdue
marking and the reminders read it, so a new kind of duty is one more branch here, not four more code
paths. A watch duty has a due *day*: it falls due at the end of it (23:59:59).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Integer, String, cast, func, literal, literal_column, null, select, union_all, update
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import FunctionElement

from machines.census import CENSUS_STATE_LABELS, CensusState
from machines.identity import mask_name
from machines.risk import DUTY_LABELS, RiskDuty
from machines.states import ACTION_LABELS, LIVE_STATES, OPEN_STATES, Action, CaseState
from machines.vocabulary import (DUTY_KIND_LABELS, PREVENTION_SOURCE_LABELS, REQUEST_ACTION_LABELS, REQUEST_KIND_LABELS,
                                 DutyKind, label_of, state_label)

from store.models.accountability import Interview, Pledge, PledgeDuty, TalkDuty
from store.models.calendar import CalendarDuty
from store.models.leave import LeaveRequest
from store.models.census import CensusCase, CensusDuty
from store.models import Case, Duty, Pupil, School, Staff
from store.models.prevention import PreventionDuty
from store.models.report_work import ReportDuty
from store.access.scope import EVERYTHING, Scope
from store.models.risk import WatchDuty, WatchEntry

KINDS = tuple(k.value for k in DutyKind)
KIND_LABELS = DUTY_KIND_LABELS  # machines.vocabulary
OPEN_CASE = [s.value for s in LIVE_STATES]  # a referred case's follow-up duties too
UNDONE = ("open", "overdue")  # not done yet: the statuses a reminder or the stuck list looks at


class end_of_day(FunctionElement):
    """``day`` 23:59:59 as a timestamp (a watch duty's due time), on SQLite and PostgreSQL."""

    type = DateTime()
    inherit_cache = True


@compiles(end_of_day)
def _eod_default(element, compiler, **kw):
    return f"({compiler.process(element.clauses, **kw)} + INTERVAL '86399 seconds')"


@compiles(end_of_day, "sqlite")
def _eod_sqlite(element, compiler, **kw):
    return f"datetime({compiler.process(element.clauses, **kw)}, '+86399 seconds')"


WATCH_DUE = end_of_day(WatchDuty.due_on)


def _literal(values) -> list:
    """Our own constants inlined as SQL literals: a partial index ``WHERE status IN ('open', 'overdue')``
    (0007_queues) serves only a query that states the same literals, never bound parameters (SQLite)."""
    return [literal_column("'" + v.replace("'", "''") + "'") for v in values]


def _branch(kind: str, duty, *, school, klass, pupil_id, pupil_name, ref_id, label, state, due, joins, where, step=None):
    q = select(
        literal(kind, String(12)).label("kind"), duty.id.label("id"), school.label("school_id"),
        cast(klass, Integer).label("class_id"), cast(pupil_id, Integer).label("pupil_id"),
        cast(pupil_name, String(32)).label("pupil_name"), ref_id.label("ref_id"), duty.action.label("action"),
        cast(label, String(128)).label("label"), duty.role.label("role"), duty.owner_id.label("owner_id"),
        due.label("due_at"), duty.status.label("status"), cast(state, String(32)).label("state"),
        cast(step if step is not None else null(), String(20)).label("step"), duty.done_at.label("done_at"),
    ).select_from(duty)
    for target, on in joins:
        q = q.join(target, on)
    return q.where(*where)


def watch_due_by(due_by: datetime) -> date:
    """The last due *day* of a watch duty due by ``due_by``: it falls due at the end of its day, so
    ``due_on + 23:59:59 <= due_by`` exactly when ``due_on <= (due_by - 23:59:59).date()`` — a bound on the
    column itself, which ``ix_watch_duties_undone_due`` serves (the end-of-day expression no index does)."""
    return (due_by - timedelta(seconds=86399)).date()


def branch(kind: str, *, statuses=UNDONE, due_by: datetime | None = None, bare: bool = False):
    """The select of one kind of duty with the ledger's columns (see :func:`ledger`); ``bare``: without the
    pupil's name (a count needs no join to the pupils: every duty's pupil exists)."""
    def due_clause(due):
        return [due <= due_by] if due_by is not None else []

    def pupil(join):
        return [] if bare else [join]

    name = null() if bare else Pupil.name
    if kind == "case":
        return _branch(
            "case", Duty, school=Case.school_id, klass=Case.class_id, pupil_id=Case.pupil_id, pupil_name=name,
            ref_id=Duty.case_id, label=null(), state=Case.state, step=Duty.step, due=Duty.due_at,
            joins=[(Case, Case.id == Duty.case_id), *pupil((Pupil, Pupil.id == Case.pupil_id))],
            where=[Duty.status.in_(_literal(statuses)), Case.state.in_(OPEN_CASE), *due_clause(Duty.due_at)])
    if kind == "census":
        return _branch(
            "census", CensusDuty, school=CensusCase.school_id, klass=null(), pupil_id=CensusCase.pupil_id,
            pupil_name=CensusCase.name, ref_id=CensusDuty.census_case_id, label=CensusDuty.label,
            state=CensusCase.state, due=CensusDuty.due_at, joins=[(CensusCase, CensusCase.id == CensusDuty.census_case_id)],
            where=[CensusDuty.status.in_(_literal(statuses)), CensusCase.state == CensusState.not_enrolled.value,
                   *due_clause(CensusDuty.due_at)])
    if kind == "prevention":
        return _branch(
            "prevention", PreventionDuty, school=PreventionDuty.school_id, klass=PreventionDuty.class_id,
            pupil_id=PreventionDuty.pupil_id, pupil_name=name, ref_id=PreventionDuty.pupil_id,
            label=PreventionDuty.label, state=PreventionDuty.source, due=PreventionDuty.due_at,
            joins=pupil((Pupil, Pupil.id == PreventionDuty.pupil_id)),
            where=[PreventionDuty.status.in_(_literal(statuses)), *due_clause(PreventionDuty.due_at)])
    if kind == "watch":
        return _branch(
            "watch", WatchDuty, school=WatchEntry.school_id, klass=WatchEntry.class_id, pupil_id=WatchEntry.pupil_id,
            pupil_name=name, ref_id=WatchDuty.entry_id, label=null(), state=WatchDuty.rule_id, due=WATCH_DUE,
            joins=[(WatchEntry, WatchEntry.id == WatchDuty.entry_id), *pupil((Pupil, Pupil.id == WatchEntry.pupil_id))],
            where=[WatchDuty.status.in_(_literal(statuses)),
                   *([WatchDuty.due_on <= watch_due_by(due_by)] if due_by is not None else [])])
    if kind == "approval":  # a leave, 免学/缓学 or 转出 awaiting its approver (store.cases.leave)
        return _branch(
            "approval", LeaveRequest, school=func.coalesce(LeaveRequest.to_school_id, LeaveRequest.school_id),
            klass=LeaveRequest.class_id, pupil_id=LeaveRequest.pupil_id, pupil_name=name, ref_id=LeaveRequest.id,
            label=null(), state=LeaveRequest.kind, due=LeaveRequest.due_at,
            joins=pupil((Pupil, Pupil.id == LeaveRequest.pupil_id)),
            where=[LeaveRequest.status.in_(_literal(statuses)), *due_clause(LeaveRequest.due_at)])
    if kind == "calendar":
        return _branch(
            "calendar", CalendarDuty, school=cast(null(), Integer), klass=null(), pupil_id=null(), pupil_name=null(),
            ref_id=CalendarDuty.id, label=CalendarDuty.label, state=CalendarDuty.calendar_key, due=CalendarDuty.due_at,
            joins=[], where=[CalendarDuty.status.in_(_literal(statuses)), *due_clause(CalendarDuty.due_at)])
    if kind == "talk":
        return _branch(
            "talk", TalkDuty, school=TalkDuty.school_id, klass=null(), pupil_id=null(), pupil_name=null(),
            ref_id=TalkDuty.interview_id, label=TalkDuty.label, state=Interview.interviewee, due=TalkDuty.due_at,
            joins=[(Interview, Interview.id == TalkDuty.interview_id)],
            where=[TalkDuty.status.in_(_literal(statuses)), *due_clause(TalkDuty.due_at)])
    if kind == "pledge":
        return _branch(
            "pledge", PledgeDuty, school=PledgeDuty.school_id, klass=null(), pupil_id=null(), pupil_name=null(),
            ref_id=PledgeDuty.pledge_id, label=PledgeDuty.label, state=Pledge.title, due=PledgeDuty.due_at,
            joins=[(Pledge, Pledge.id == PledgeDuty.pledge_id)],
            where=[PledgeDuty.status.in_(_literal(statuses)), *due_clause(PledgeDuty.due_at)])
    if kind == "report_due":
        return _branch(
            "report_due", ReportDuty, school=ReportDuty.school_id, klass=ReportDuty.class_id, pupil_id=null(), pupil_name=null(),
            ref_id=ReportDuty.id, label=ReportDuty.label, state=ReportDuty.report_kind, due=ReportDuty.due_at,
            joins=[], where=[ReportDuty.status.in_(_literal(statuses)), *due_clause(ReportDuty.due_at)])
    raise ValueError(f"unknown duty kind {kind!r}")


DUTY_TABLES = {"case": Duty, "census": CensusDuty, "prevention": PreventionDuty, "watch": WatchDuty,
               "approval": LeaveRequest, "calendar": CalendarDuty, "talk": TalkDuty, "pledge": PledgeDuty,
               "report_due": ReportDuty}


def order_keys(kind: str) -> list:
    """The columns a branch of ``kind`` sorts on, in the ledger's (due time, id) order, as its table stores them:
    a watch duty by its due day (the same order as its end-of-day due time), so each kind's own index serves it."""
    table = DUTY_TABLES[kind]
    return [WatchDuty.due_on if kind == "watch" else table.due_at, table.id]


def ledger(*, statuses=UNDONE, due_by: datetime | None = None, kinds=KINDS):
    """One ``UNION ALL`` select of the duties with one of ``statuses`` (and, with ``due_by``, due by then)
    of every kind in ``kinds``; a case or census duty only while its case is open."""
    return union_all(*(branch(k, statuses=statuses, due_by=due_by) for k in kinds)).subquery("duty_ledger")


@dataclass(frozen=True)
class DutyRef:
    kind: str
    id: int

    @property
    def key(self) -> str:
        return duty_key(self.kind, self.id)


def duty_key(kind: str, duty_id: int) -> str:
    """The notification / accountability key: ``duty:12`` for a case duty (as before), ``census_duty:3`` …"""
    return f"duty:{duty_id}" if kind == "case" else f"{kind}_duty:{duty_id}"


@lru_cache(maxsize=4096)  # a list's rows repeat a few dozen (kind, action, label)s
def action_label(kind: str, action: str, label: str | None) -> str:
    if label:
        return label
    if kind == "case" and action in Action.__members__:
        return ACTION_LABELS[Action(action)]
    if kind == "approval":
        return REQUEST_ACTION_LABELS.get(action, action)
    if kind == "watch" and action in RiskDuty.__members__:
        return DUTY_LABELS[RiskDuty(action)]
    return action


def context_label(kind: str, state: str | None, rule_labels: dict[str, str] | None = None) -> str:
    """What the duty is part of, for a list: the case's step, 失学, the prevention source, the watch rule."""
    if kind == "case":  # a ladder step, or a referred case's follow-up round (escalated:<n>)
        return state_label(state)
    if kind == "census":
        return CENSUS_STATE_LABELS.get(CensusState(state), state) if state in CensusState.__members__ else str(state)
    if kind == "prevention":
        return PREVENTION_SOURCE_LABELS.get(state or "", state or "")
    if kind == "calendar":
        return f"{KIND_LABELS['calendar']} {state}"
    if kind == "approval":
        return REQUEST_KIND_LABELS.get(state or "", state or "")
    if kind == "report_due":
        from machines.vocabulary import REPORT_DUTY_KIND_LABELS
        return f"{KIND_LABELS['report_due']}（{REPORT_DUTY_KIND_LABELS.get(state or '', state or '')}）"
    if kind == "talk":
        return f"约谈 {state}"
    if kind != "watch":  # a kind added later: its label and what it names
        return f"{KIND_LABELS.get(kind, kind)} {state or ''}".strip()
    return f"{KIND_LABELS['watch']}（{(rule_labels or {}).get(state or '') or label_of(state or '')}）"


_LIST_HREFS = {"census": "/census", "prevention": "/truancy", "watch": "/risk", "calendar": "/runs", "pledge": "/pledges",
               "report_due": "/submissions", "approval": "/leave"}  # the kinds whose duties link to their list


def href(kind: str, ref_id: int) -> str:
    if kind == "case":
        return f"/cases/{ref_id}"
    if kind == "talk":
        return f"/interviews/{ref_id}"
    return _LIST_HREFS.get(kind, "/stuck")


def overdue(session: Session, as_of: datetime, *, scope: Scope = EVERYTHING, masked: bool = False,
            kinds=KINDS, limit: int | None = None) -> list[dict[str, Any]]:
    """Every duty of ``kinds`` past due and not done in ``scope``, longest overdue first, with its owner."""
    return listed(session, as_of, due_by=as_of, scope=scope, masked=masked, kinds=kinds, limit=limit)


def listed(session: Session, as_of: datetime, *, due_by: datetime, due_after: datetime | None = None,
           statuses=UNDONE, scope: Scope = EVERYTHING, masked: bool = False, kinds=KINDS,
           limit: int | None = None) -> list[dict[str, Any]]:
    """Duties of ``kinds`` with one of ``statuses`` due in (``due_after``, ``due_by``], soonest due first, with
    school and owner (one query over the four tables)."""
    u = ledger(statuses=statuses, due_by=due_by, kinds=kinds)
    q = (select(u, School.name.label("school"), School.policy_name.label("policy_name"), Staff.name.label("owner"))
         .outerjoin(School, School.id == u.c.school_id).outerjoin(Staff, Staff.id == u.c.owner_id)  # a calendar duty has no school
         .order_by(u.c.due_at, u.c.kind, u.c.id))
    if due_after is not None:
        q = q.where(u.c.due_at > due_after)
    q = scope.apply(q, school_col=u.c.school_id, class_col=u.c.class_id)
    if limit:
        q = q.limit(limit)
    rows = session.execute(q).mappings().all()
    labels = _rule_labels(session, {r["policy_name"] for r in rows if r["kind"] == "watch"})
    return [row_dict(r, as_of, masked=masked, rule_labels=labels.get(r["policy_name"])) for r in rows]


def _rule_labels(session: Session, policy_names: set[str]) -> dict[str, dict[str, str]]:
    """policy name → watch rule id → the rule's label (the policy's words for its own rules)."""
    from store.policy_files import PolicyRegistry

    registry, out = PolicyRegistry(session), {}
    for name in policy_names:
        try:
            out[name] = {r.id: r.label for r in registry.get(name).risk.rules}
        except Exception:  # no such policy loaded: the rule ids are labelled from the vocabulary
            out[name] = {}
    return out


def row_dict(r, as_of: datetime, *, masked: bool, rule_labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "kind": r["kind"], "kind_label": KIND_LABELS.get(r["kind"], r["kind"]), "duty_id": r["id"], "ref_id": r["ref_id"],
        "key": duty_key(r["kind"], r["id"]), "school_id": r["school_id"], "school": r["school"] or "全县 county-wide",
        "pupil_id": r["pupil_id"], "pupil": mask_name(r["pupil_name"]) if masked else r["pupil_name"],
        "action": r["action"], "action_label": action_label(r["kind"], r["action"], r["label"]), "role": r["role"],
        "owner_id": r["owner_id"], "owner": r["owner"], "due_at": r["due_at"], "status": r["status"],
        "state": r["state"], "step": r["step"], "context": context_label(r["kind"], r["state"], rule_labels), "href": href(r["kind"], r["ref_id"]),
        "hours_overdue": round((as_of - r["due_at"]).total_seconds() / 3600, 1),
    }


def mark_overdue(session: Session, as_of: datetime, *, kinds=("census", "prevention", "watch", "report_due")) -> dict[str, int]:
    """Open duties of ``kinds`` past due become ``overdue`` (set-based, idempotent; ``overdue_at`` where the
    table keeps one). Case duties are marked in batches by :func:`store.cases.advance.overdue_batch`, calendar duties by
    :func:`store.calendar_watch.sync_calendar_duties`."""
    targets = {"census": (CensusDuty, CensusDuty.due_at, {}), "watch": (WatchDuty, None, {}),
               "prevention": (PreventionDuty, PreventionDuty.due_at, {"overdue_at": as_of}),
               "calendar": (CalendarDuty, CalendarDuty.due_at, {"overdue_at": as_of}),
               "talk": (TalkDuty, TalkDuty.due_at, {"overdue_at": as_of}),
               "pledge": (PledgeDuty, PledgeDuty.due_at, {"overdue_at": as_of}),
               "report_due": (ReportDuty, ReportDuty.due_at, {"overdue_at": as_of}),
               "approval": (LeaveRequest, LeaveRequest.due_at, {})}
    out = {}
    for kind in kinds:
        model, due, extra = targets[kind]
        past = WatchDuty.due_on <= watch_due_by(as_of) if kind == "watch" else due <= as_of
        if kind == "watch":  # a duty whose act another duty of the entry recorded is done, not overdue
            from store.prevention.watch_credit import credit_watch_duties

            credit_watch_duties(session, WatchDuty.status == "open", past)
        result = session.execute(update(model).where(model.status == "open", past)
                                 .values(status="overdue", **extra).execution_options(synchronize_session=False))
        out[kind] = result.rowcount or 0
    return out
