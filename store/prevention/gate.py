"""住校生出入校门登记 (seed 000 §二.3): who boards, each exit and return, the alerts, the terms
(the term-end archive itself is rendered by documents.gate_log.archive_term).

"寄宿学生在校期间无正当理由、无班主任签字、无家长接送的，不得离校。每个学期结束，学校要将学生进出
学校登记资料存档备查。"

* An exit is recorded as it happened (the gate keeps the log even when the rule was broken): with
  the head teacher's approval (who, when) and who fetched the pupil (name, relation) and the
  due-back time. An exit without approval or without a fetcher opens an ``unapproved_exit``
  alert duty for the head teacher at once.
* A pupil not back by the due-back time plus the policy's grace opens a ``late_return`` alert:
  :func:`check_gate` finds them set-based in the daily advance (and hourly sweeps).
* At term end the school's log of the term goes to the archive as an XLSX (documents/gate_log.py),
  and the movements are marked archived.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta

from sqlalchemy import and_, exists, insert, literal, or_, select
from sqlalchemy.orm import Session

from machines.calendar import Period
from machines.identity import mask_name

from store.cases.context import CaseContext
from store.models import Jurisdiction, Pupil, School, SchoolClass, Staff
from store.prevention.common import PreventionError, event_row, log
from store.models.prevention import Boarder, GateMovement, PreventionDuty, PreventionEvent
from store.access.scope import EVERYTHING, Scope
from store.ingest.tabular import read_table, require_columns

ALERT_LABELS = {"unapproved_exit": "住校生未经班主任批准或无家长接送离校：立即核实去向，联系家长",
                "late_return": "住校生逾期未返校：立即联系家长，核实去向"}
TRUTHY = {"是", "住校", "1", "y", "yes", "true", "√", "✓"}
COLUMNS = {"学籍号": "student_no", "住校": "boarding", "是否住校": "boarding", "宿舍": "dorm", "宿舍号": "dorm",
           "住校日期": "since"}


# -- who boards -------------------------------------------------------------------------------------
def _pupil(session: Session, student_no: str, scope: Scope) -> Pupil:
    q = scope.apply(select(Pupil).where(Pupil.student_no == student_no.strip()), school_col=Pupil.school_id,
                    class_col=Pupil.class_id)
    pupil = session.scalar(q)
    if pupil is None:
        raise PreventionError(f"学籍号 {student_no} 不存在，或不在您的管辖范围内 (pupil not found)")
    return pupil


def set_boarder(session: Session, pupil: Pupil, *, boarding: bool = True, dorm: str | None = None,
                since: date | None = None, actor: str, now: datetime) -> Boarder | None:
    row = session.get(Boarder, pupil.id)
    if row is None and not boarding:
        return None
    if row is None:
        row = Boarder(pupil_id=pupil.id, since=since or now.date(), active=True, dorm=(dorm or "")[:32] or None,
                      updated_at=now)
        session.add(row)
    elif row.active == boarding and (dorm or row.dorm) == row.dorm:
        return row
    else:
        row.active, row.dorm, row.updated_at = boarding, (dorm or "")[:32] or row.dorm, now
    log(session, pupil_id=pupil.id, subject="boarder", ref_id=pupil.id, event="board" if boarding else "unboard",
        actor=actor, at=now, now=now, reason="住校" if boarding else "走读", payload={"dorm": row.dorm})
    session.flush()
    return row


def generate_boarders(session: Session, *, county_id: int, since: date, every: int = 5, min_grade: int = 4) -> int:
    """Synthetic boarders (demo/synthetic.py): every ``every``-th pupil of grade ``min_grade`` and up of the county."""
    schools = select(School.id).join(Jurisdiction, Jurisdiction.id == School.township_id).where(
        Jurisdiction.parent_id == county_id)
    q = (select(Pupil.id, literal(since), literal(True), SchoolClass.name + literal("宿舍"), literal(datetime.combine(since, time())))
         .join(SchoolClass, SchoolClass.id == Pupil.class_id)
         .where(Pupil.school_id.in_(schools), SchoolClass.grade >= min_grade, Pupil.id % every == 0,
                ~exists().where(Boarder.pupil_id == Pupil.id)))
    result = session.execute(insert(Boarder).from_select(["pupil_id", "since", "active", "dorm", "updated_at"], q))
    return result.rowcount or 0


def boarding_from_roster(session: Session, pupil: Pupil, raw: str, dorm: str | None = None, *, now: datetime) -> None:
    """The roster's 住校 column (是/否) and 宿舍: the pupil boards from ``now``'s day, or no longer does."""
    set_boarder(session, pupil, boarding=raw.strip().lower() in TRUTHY, dorm=dorm, actor="roster", now=now)


def import_boarders(session: Session, data: bytes, filename: str, *, actor: str, now: datetime,
                    scope: Scope = EVERYTHING) -> dict:
    """A list of boarders (学籍号, 住校 是/否, 宿舍); bad rows are reported, good rows kept."""
    rows = read_table(data, filename, aliases=COLUMNS)
    require_columns(rows, ["student_no"], {"student_no": "学籍号"})
    out = {"boarding": 0, "day_pupils": 0, "errors": []}
    for n, r in rows:
        try:
            with session.begin_nested():
                pupil = _pupil(session, r["student_no"], scope)
                boarding = (r.get("boarding") or "是").strip().lower() in TRUTHY
                since = date.fromisoformat(r["since"]) if r.get("since") else None
                set_boarder(session, pupil, boarding=boarding, dorm=r.get("dorm"), since=since, actor=actor, now=now)
            out["boarding" if boarding else "day_pupils"] += 1
        except (PreventionError, ValueError) as exc:
            out["errors"].append((n, str(exc)))
    return out


# -- exits and returns -------------------------------------------------------------------------------
def record_exit(session: Session, ctx: CaseContext, student_no: str, *, at: datetime, due_back_at: datetime,
                approved_by: str | None, approved_at: datetime | None = None, fetched_by: str | None,
                relation: str | None = None, reason: str = "", actor: str, now: datetime,
                scope: Scope = EVERYTHING) -> GateMovement:
    pupil = _pupil(session, student_no, scope)
    board = session.get(Boarder, pupil.id)
    if board is None or not board.active:
        raise PreventionError(f"{pupil.name}（{pupil.student_no}）不是住校生 (not a boarder)")
    if session.scalar(select(GateMovement.id).where(GateMovement.pupil_id == pupil.id, GateMovement.in_at.is_(None))):
        raise PreventionError(f"{pupil.name} 已离校未返校，请先登记返校 (already out)")
    if due_back_at <= at:
        raise PreventionError("返校时间应晚于离校时间 (due-back time must be after the exit)")
    approved_by = (approved_by or "").strip() or None
    fetched_by = (fetched_by or "").strip() or None
    klass = session.get(SchoolClass, pupil.class_id)
    approver = None
    if approved_by and klass.head_teacher_id:
        head = session.get(Staff, klass.head_teacher_id)
        approver = head.id if head and head.name == approved_by else None
    move = GateMovement(
        pupil_id=pupil.id, school_id=pupil.school_id, class_id=pupil.class_id, out_at=at, reason=reason.strip()[:64],
        approved=approved_by is not None, approved_by=approved_by, approver_staff_id=approver,
        approved_at=(approved_at or at) if approved_by else None, fetched_by=fetched_by,
        fetched_relation=((relation or "").strip() or None) if fetched_by else None, due_back_at=due_back_at,
        recorded_by=actor, recorded_at=now)
    session.add(move)
    session.flush()
    log(session, pupil_id=pupil.id, subject="gate", ref_id=move.id, event="exit", actor=actor, at=at, now=now,
        reason=reason.strip()[:255], payload={"approved_by": approved_by, "fetched_by": fetched_by, "relation": relation,
                                              "due_back_at": due_back_at.isoformat(sep=" ")})
    _open_alerts(session, ctx, now, movement_ids=[move.id])
    return move


def record_return(session: Session, student_no: str, *, at: datetime, returned_with: str | None = None, actor: str,
                  now: datetime, scope: Scope = EVERYTHING) -> GateMovement:
    pupil = _pupil(session, student_no, scope)
    move = session.scalar(select(GateMovement).where(GateMovement.pupil_id == pupil.id, GateMovement.in_at.is_(None))
                          .order_by(GateMovement.id.desc()))
    if move is None:
        raise PreventionError(f"{pupil.name} 没有未返校的离校登记 (no open exit)")
    if at < move.out_at:
        raise PreventionError("返校时间早于离校时间 (return before the exit)")
    move.in_at, move.returned_with = at, (returned_with or "").strip() or None
    late = move.due_back_at is not None and at > move.due_back_at
    log(session, pupil_id=pupil.id, subject="gate", ref_id=move.id, event="return", actor=actor, at=at, now=now,
        reason="逾期返校" if late else "按时返校", payload={"returned_with": move.returned_with, "late": late})
    session.flush()
    return move


def _policy_grace(session: Session, ctx: CaseContext) -> dict[tuple[int, int, str, int], list[int]]:
    """(grace minutes, alert minutes, alert role, enabled) → school ids, from each school's policy."""
    groups: dict[str, list[int]] = defaultdict(list)
    for sid, name in session.execute(select(School.id, School.policy_name)):
        groups[name].append(sid)
    out: dict[tuple, list[int]] = defaultdict(list)
    for name, ids in groups.items():
        g = ctx.policies.get(name).gate
        if g.enabled:
            out[(g.grace_minutes, g.alert_due_minutes, g.alert_role, int(g.require_fetcher))] += ids
    return out


def _open_alerts(session: Session, ctx: CaseContext, as_of: datetime, *, movement_ids: list[int] | None = None,
                 actor: str = "system") -> dict[str, int]:
    """Alerts not yet open for: exits without approval (or fetcher), pupils not back by due + grace."""
    counts = {"unapproved_exit": 0, "late_return": 0}
    for (grace, due_minutes, role, need_fetcher), school_ids in _policy_grace(session, ctx).items():
        cutoff = as_of - timedelta(minutes=grace)
        rules = {
            "unapproved_exit": or_(GateMovement.approved.is_(False), GateMovement.fetched_by.is_(None))
            if need_fetcher else GateMovement.approved.is_(False),
            # in_at > due_back_at + grace is checked below (date arithmetic differs between the databases)
            "late_return": and_(GateMovement.due_back_at <= cutoff,
                                or_(GateMovement.in_at.is_(None), GateMovement.in_at > GateMovement.due_back_at)),
        }
        for kind, rule in rules.items():
            already = exists().where(PreventionDuty.source == "gate", PreventionDuty.kind == kind,
                                     PreventionDuty.ref_id == GateMovement.id)
            q = (select(GateMovement.id, GateMovement.pupil_id, GateMovement.school_id, GateMovement.class_id,
                        GateMovement.out_at, GateMovement.due_back_at, GateMovement.in_at)
                 .where(GateMovement.school_id.in_(school_ids), GateMovement.out_at <= as_of, rule, ~already))
            if movement_ids is not None:
                q = q.where(GateMovement.id.in_(movement_ids))
            found = session.execute(q.order_by(GateMovement.id)).all()
            if kind == "late_return":
                found = [r for r in found if r.in_at is None or r.in_at > r.due_back_at + timedelta(minutes=grace)]
            if not found:
                continue
            session.execute(insert(PreventionDuty), [{
                "pupil_id": pid, "school_id": sid, "class_id": cid, "source": "gate", "kind": kind, "ref_id": mid,
                "action": "check_whereabouts", "label": ALERT_LABELS[kind], "role": role,
                "owner_id": ctx.owners.resolve(sid, cid, role), "due_at": as_of + timedelta(minutes=due_minutes),
                "status": "open", "created_at": as_of, "overdue_at": None, "done_at": None, "done_by": None, "note": "",
            } for mid, pid, sid, cid, _o, _d, _i in found])
            session.execute(insert(PreventionEvent), [event_row(
                pupil_id=pid, subject="gate", ref_id=mid, event=kind, actor=actor, at=as_of, now=as_of,
                reason=ALERT_LABELS[kind].split("：")[0],
                payload={"out_at": o.isoformat(sep=" "), "due_back_at": d.isoformat(sep=" ") if d else None,
                         "in_at": i.isoformat(sep=" ") if i else None}) for mid, pid, sid, cid, o, d, i in found])
            counts[kind] += len(found)
    session.flush()
    return counts


def check_gate(session: Session, ctx: CaseContext, as_of: datetime) -> dict[str, int]:
    """The periodic check (set-based): every late return and unapproved exit without an alert gets one."""
    return _open_alerts(session, ctx, as_of)


# -- reading ------------------------------------------------------------------------------------------
def _movement_dict(m: GateMovement, p: Pupil, klass: str, as_of: datetime, masked: bool) -> dict:
    overdue = m.due_back_at is not None and (m.in_at or as_of) > m.due_back_at
    return {"id": m.id, "pupil": mask_name(p.name) if masked else p.name, "student_no": p.student_no, "class": klass,
            "out_at": m.out_at, "reason": m.reason, "approved": m.approved, "approved_by": m.approved_by,
            "approved_at": m.approved_at, "fetched_by": m.fetched_by, "relation": m.fetched_relation,
            "due_back_at": m.due_back_at, "in_at": m.in_at, "returned_with": m.returned_with, "late": overdue,
            "archived": m.archive_id is not None}


def movements(session: Session, *, scope: Scope = EVERYTHING, start: datetime | None = None, end: datetime | None = None,
              away_only: bool = False, as_of: datetime, masked: bool = False, limit: int = 2000) -> list[dict]:
    q = (select(GateMovement, Pupil, SchoolClass.name).join(Pupil, Pupil.id == GateMovement.pupil_id)
         .join(SchoolClass, SchoolClass.id == GateMovement.class_id))
    q = scope.apply(q, school_col=GateMovement.school_id, class_col=GateMovement.class_id)
    if start is not None:
        q = q.where(GateMovement.out_at >= start)
    if end is not None:
        q = q.where(GateMovement.out_at < end)
    if away_only:
        q = q.where(GateMovement.in_at.is_(None), GateMovement.out_at <= as_of)
    rows = session.execute(q.order_by(GateMovement.out_at, GateMovement.id).limit(limit)).all()
    return [_movement_dict(m, p, k, as_of, masked) for m, p, k in rows]


def boarders(session: Session, *, scope: Scope = EVERYTHING, masked: bool = False) -> list[dict]:
    q = (select(Pupil, SchoolClass.name, Boarder.dorm).join(Boarder, Boarder.pupil_id == Pupil.id)
         .join(SchoolClass, SchoolClass.id == Pupil.class_id).where(Boarder.active.is_(True)))
    q = scope.apply(q, school_col=Pupil.school_id, class_col=Pupil.class_id)
    return [{"pupil": mask_name(p.name) if masked else p.name, "student_no": p.student_no, "class": k, "dorm": d}
            for p, k, d in session.execute(q.order_by(Pupil.class_id, Pupil.student_no))]


# -- the term (the archive itself: documents.gate_log.archive_term) ------------------------------------------
def term_of(ctx: CaseContext, school: School, day: date) -> Period:
    terms = ctx.calendar(school.calendar_key).terms
    for t in terms:
        if t.start <= day <= t.end:
            return t
    earlier = [t for t in terms if t.end < day]
    if not earlier:
        raise PreventionError(f"{day} 不在校历的任何学期内 (no term)")
    return earlier[-1]  # in a holiday: the term that just ended
