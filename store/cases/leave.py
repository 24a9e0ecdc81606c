"""请假、免学/缓学 and 转学 as applications with an approver (seed 002 2、3、5; issue 17 items 5 and 6).

A :class:`store.models.leave.LeaveRequest` is the application *and* the approver's duty (the
``approval`` kind of the duty ledger). It is made on a page, the API or the CLI, or by the morning
check itself: a 病假/事假/免学/转学 mark with no request covering its day applies for one (source
``mark``; the next day's mark of the same leave extends it, and the approver is routed again).

Routing is the policy's data (``[leave]``): a leave of ``office_over_days`` school days or more goes
to the academic office (教导处), of ``principal_over_days`` or more to the principal; 免学/缓学 to the
county bureau (教育局); a 转出 to the receiving school's principal (in the county) or, for a school
outside it, to the sending school's principal, who uploads the receiving school's receipt.

**Only an approved request excuses.** The mark a teacher records is kept as recorded; what it
counts as is :func:`effective_status`:

- approved → the leave (an open case is excused; no case opens);
- a leave or transfer still *pending* before its approver's deadline (``due_at``: the leave's
  ``approval_school_days``, the transfer's ``confirm_school_days``) → *held*: no case opens for it,
  and an open case is not excused (it continues, as for an absence);
- refused, or pending after the deadline, or a 免学/缓学 not yet approved → unexcused absence.

The daily sweep (:mod:`store.cases.leave_sweep`; both the set-based :func:`store.cases.advance.advance` and the per-case reference
:func:`store.cases.per_case.advance_per_case`) first runs :func:`count_unapproved`: each request whose
hold is over and that is not approved is counted once (``counted_at``). A leave's or exemption's
marked days are queued as late marks (:mod:`store.cases.late_marks`), so the same sweep opens the
case on the first such day (or extends the open one) and escalates it for the streak, exactly as if
the days had been marked absent; an unconfirmed transfer opens its case on the day the pupil left
(a hidden dropout). An approval after that excuses the case it opened.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from machines.states import OPEN_STATES
from machines.vocabulary import REQUEST_ACTION_LABELS, REQUEST_KIND_LABELS

from store.cases.actions import close_cases
from store.cases.attachments import ALLOWED, AttachmentRefused, sniff, write_once
from store.cases.context import CaseContext
from store.models import Case, Pupil, School, SchoolClass
from store.models.leave import LeaveRequest
from store.access.scope import EVERYTHING, Scope

KINDS = tuple(REQUEST_KIND_LABELS)                  # sick_leave, personal_leave, exemption, transfer
LEAVE_KINDS = frozenset({"sick_leave", "personal_leave"})
ACTIONS = {"sick_leave": "approve_leave", "personal_leave": "approve_leave", "exemption": "decide_exemption",
           "transfer": "confirm_transfer"}
assert set(ACTIONS.values()) <= set(REQUEST_ACTION_LABELS)
OPEN = [s.value for s in OPEN_STATES]
MAX_DAYS = 366  # one application covers at most a school year (a bound on untrusted input too)


class LeaveError(ValueError):
    """A request that cannot be made or decided (unknown pupil, decided already…)."""


def group(kind: str) -> str:
    """病假 and 事假 are one leave (a teacher may mark either); 免学/缓学 and 转学 are their own."""
    return "leave" if kind in LEAVE_KINDS else kind


# -- applying ------------------------------------------------------------------------------------------
def apply_for(session: Session, ctx: CaseContext, *, pupil_id: int, kind: str, first_day: date, last_day: date | None = None,
              source: str, actor: str, now: datetime, reason: str = "", to_school_id: int | None = None,
              to_school_name: str | None = None) -> LeaveRequest:
    """A request for ``kind`` from ``first_day`` to ``last_day`` (no commit). One already covering
    those days (same kind group, not refused) is returned instead: a retry makes nothing twice."""
    if kind not in KINDS:
        raise LeaveError(f"未知申请类别 '{kind}' (unknown kind)")
    last_day = last_day or first_day
    if last_day < first_day:
        raise LeaveError("结束日期早于开始日期 (last day before first day)")
    if (last_day - first_day).days > MAX_DAYS:
        raise LeaveError(f"一次申请不超过 {MAX_DAYS} 天，长期免学/缓学请按学年申请 (at most {MAX_DAYS} days)")
    pupil = session.get(Pupil, pupil_id)
    if pupil is None:
        raise LeaveError("学生不存在 (no such pupil)")
    same = [r for r in _requests(session, [pupil_id], first_day, last_day).get(pupil_id, [])
            if group(r.kind) == group(kind) and r.decision != "refused"]
    if any(r.first_day <= first_day and last_day <= r.last_day for r in same):
        return next(r for r in same if r.first_day <= first_day and last_day <= r.last_day)
    if kind == "transfer" and to_school_id is None and not (to_school_name or "").strip() and source != "mark":
        raise LeaveError("转出须填写接收学校 (the receiving school is required)")
    school = session.get(School, pupil.school_id)
    row = _request(ctx, school, pupil_id=pupil.id, class_id=pupil.class_id, kind=kind, first_day=first_day,
                   last_day=last_day, source=source, actor=actor, now=now, reason=reason, to_school_id=to_school_id,
                   to_school_name=to_school_name)
    session.add(row)
    session.flush()
    return row


def _request(ctx: CaseContext, school: School, *, pupil_id: int, class_id: int, kind: str, first_day: date,
             last_day: date, source: str, actor: str, now: datetime, reason: str = "", to_school_id: int | None = None,
             to_school_name: str | None = None, policy=None) -> LeaveRequest:
    """The new request's row, routed (not added): :func:`apply_for`'s, and the morning check's many at once."""
    policy = policy or ctx.policies.get(school.policy_name)
    cal = ctx.calendar(school.calendar_key)
    try:
        days = max(1, len(cal.school_days(first_day, last_day)))
    except LookupError:  # beyond the calendar's known years: count calendar days
        days = (last_day - first_day).days + 1
    row = LeaveRequest(
        pupil_id=pupil_id, school_id=school.id, class_id=class_id, kind=kind, first_day=first_day,
        last_day=last_day, days=days, source=source, requested_by=actor[:64], reason=(reason or "")[:255],
        action=ACTIONS[kind], status="open", created_at=now, decision="pending", decision_note="",
        to_school_id=to_school_id, to_school_name=(to_school_name or None) and to_school_name.strip()[:64])
    _route(ctx, row, school, policy, base=max(first_day, now.date()) if source != "mark" else first_day)
    return row


def _route(ctx: CaseContext, row: LeaveRequest, school: School, policy, *, base: date) -> None:
    """Who decides ``row`` and by when (the policy's data)."""
    def due(days: int, at) -> datetime:
        try:
            return ctx.due_at(school.calendar_key, base, days, at)
        except LookupError:  # the calendar does not reach that far yet (a year without holidays): calendar days
            try:
                return datetime.combine(base + timedelta(days=days), at)
            except OverflowError:
                raise LeaveError("日期超出范围 (date out of range)") from None

    if row.kind in LEAVE_KINDS:
        row.role = policy.leave.approver(row.days, policy.roles)
        row.due_at = due(policy.leave.approval_school_days, policy.leave.approval_time)
        row.owner_id = ctx.owners.resolve(school.id, row.class_id, row.role)
    elif row.kind == "exemption":
        row.role = "education_bureau"
        row.due_at = due(policy.leave.exemption_decision_school_days, policy.leave.approval_time)
        row.owner_id = ctx.owners.resolve(school.id, row.class_id, row.role)
    else:
        row.role = "principal"
        row.due_at = due(policy.transfer.confirm_school_days, policy.transfer.confirm_time)
        row.owner_id = ctx.owners.resolve(row.to_school_id or school.id, 0, "principal")


def requests_from_marks(session: Session, ctx: CaseContext, school: School, day: date, marks: dict[int, str], *,
                        actor: str, now: datetime) -> int:
    """The morning check's leave marks (pupil id → status) apply for what no request covers yet;
    a pending leave from marks that ended on the previous school day is extended (and re-routed)."""
    return requests_from_checks(session, ctx, [(school, marks)], day, actor=actor, now=now)[0]


def requests_from_checks(session: Session, ctx: CaseContext, checks: list[tuple[School, dict[int, str]]], day: date, *,
                         actor: str, now: datetime) -> list[int]:
    """:func:`requests_from_marks` for many schools' checks at once (a county file): the requests touching
    their leave-marked pupils read with one query, the new ones added with one flush; how many each check
    applied for. The outcome is that of one call per school in turn (a pupil is on one school's roll)."""
    wanted = [{pid: st for pid, st in marks.items() if st in KINDS} for _, marks in checks]
    counts = [0] * len(checks)
    if not any(wanted):
        return counts
    prevs = [_previous_school_day(ctx.calendar(school.calendar_key), day) if own else None
             for (school, _), own in zip(checks, wanted)]
    existing = _requests(session, [pid for own in wanted for pid in own], min(p for p in prevs if p is not None), day)
    new: list[tuple[School, object, int, str]] = []
    for i, ((school, _), own, prev) in enumerate(zip(checks, wanted, prevs)):
        if not own:
            continue
        cal = ctx.calendar(school.calendar_key)
        policy = ctx.policies.get(school.policy_name)
        for pid, status in own.items():
            mine = [r for r in existing.get(pid, []) if group(r.kind) == group(status) and r.decision != "refused"
                    and r.last_day >= prev]  # (the query reached back to the earliest school's previous day)
            if any(r.first_day <= day <= r.last_day for r in mine):
                continue
            follow = next((r for r in mine if r.source == "mark" and r.decision == "pending" and r.counted_at is None
                           and r.last_day == prev), None)
            if follow is not None:
                follow.last_day = day
                follow.days = max(1, len(cal.school_days(follow.first_day, day)))
                if follow.kind in LEAVE_KINDS:  # a longer leave may need the principal
                    follow.role = policy.leave.approver(follow.days, policy.roles)
                    follow.owner_id = ctx.owners.resolve(school.id, follow.class_id, follow.role)
                continue
            new.append((school, policy, pid, status))  # no request covers the day: apply for one (as apply_for would)
            counts[i] += 1
    ids = [n[2] for n in new]
    classes = {pid: cid for i in range(0, len(ids), 5000) for pid, cid in session.execute(
        select(Pupil.id, Pupil.class_id).where(Pupil.id.in_(ids[i:i + 5000])))}
    session.add_all([_request(ctx, school, pupil_id=pid, class_id=classes[pid], kind=status, first_day=day,
                              last_day=day, source="mark", actor=actor, now=now,
                              reason="晨检登记" + REQUEST_KIND_LABELS[status], policy=policy)
                     for school, policy, pid, status in new])
    session.flush()
    return counts


def _previous_school_day(cal, day: date) -> date:
    d = day - timedelta(days=1)
    for _ in range(40):  # a winter break is the longest gap
        try:
            if cal.is_school_day(d):
                return d
        except LookupError:  # the year before the calendar's first: no earlier school day
            return d
        d -= timedelta(days=1)
    return d


def _requests(session: Session, pupil_ids: list[int], first: date, last: date) -> dict[int, list[LeaveRequest]]:
    out: dict[int, list[LeaveRequest]] = {}
    if not pupil_ids:
        return out
    for i in range(0, len(pupil_ids), 5000):  # (a county file's leave marks: a bounded IN list per query)
        for r in session.scalars(select(LeaveRequest).where(
                LeaveRequest.pupil_id.in_(pupil_ids[i:i + 5000]), LeaveRequest.first_day <= last,
                LeaveRequest.last_day >= first).order_by(LeaveRequest.id)):
            out.setdefault(r.pupil_id, []).append(r)
    return out


# -- what a mark counts as -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cover:
    """The requests touching some pupils' days, to judge their marks (one query)."""
    rows: dict[int, list[tuple[str, date, date, str, datetime]]]  # pupil → (kind, first, last, decision, due)

    @classmethod
    def load(cls, session: Session, pupil_ids, first: date, last: date) -> "Cover":
        rows: dict[int, list] = {}
        ids = list(pupil_ids)
        for i in range(0, len(ids), 5000):
            for pid, kind, f, l, decision, due in session.execute(select(
                    LeaveRequest.pupil_id, LeaveRequest.kind, LeaveRequest.first_day, LeaveRequest.last_day,
                    LeaveRequest.decision, LeaveRequest.due_at).where(
                    LeaveRequest.pupil_id.in_(ids[i:i + 5000]), LeaveRequest.first_day <= last,
                    or_(LeaveRequest.last_day >= first, LeaveRequest.kind == "transfer"))):
                # a 转出 is for good: it covers every day from the one the pupil left
                rows.setdefault(pid, []).append((kind, f, date.max if kind == "transfer" else l, decision, due))
        return cls(rows)

    def status(self, pupil_id: int, day: date, status: str | None, now: datetime) -> str | None:
        """What ``status`` (as marked) counts as on ``day`` at ``now``: the mark itself, ``None`` while
        a pending leave or transfer holds it, or ``unexcused``."""
        if status not in KINDS:
            return status
        mine = [r for r in self.rows.get(pupil_id, ()) if group(r[0]) == group(status) and r[1] <= day <= r[2]]
        if not mine:
            return status  # marked before requests existed (an older database): as recorded
        if any(r[3] == "approved" for r in mine):
            return status
        if any(r[3] == "pending" and r[0] != "exemption" and now < r[4] for r in mine):
            return None
        return "unexcused"

    def away(self, pupil_id: int, day: date) -> bool:
        """A pupil with a 转出 from ``day`` or before that is not confirmed: not in class, whatever a whole
        check implies (confirmed, the pupil is the receiving school's)."""
        return any(r[0] == "transfer" and r[1] <= day and r[3] != "approved" for r in self.rows.get(pupil_id, ()))


def effective_status(session: Session, pupil_id: int, day: date, status: str | None, now: datetime) -> str | None:
    return Cover.load(session, [pupil_id], day, day).status(pupil_id, day, status, now)


# -- deciding --------------------------------------------------------------------------------------------------
def decide(session: Session, ctx: CaseContext, request_id: int, *, approve: bool, actor: str, now: datetime,
           note: str = "", to_class_id: int | None = None) -> LeaveRequest:
    """The approver's decision (no commit). Deciding again the same way changes nothing; a decision
    is final. An approval excuses the pupil's open case (its reason: the request's kind); a 转入
    confirmed in the county moves the pupil to the receiving school, one outside takes them off the roll."""
    r = session.get(LeaveRequest, request_id)
    if r is None:
        raise LeaveError("申请不存在 (no such request)")
    wanted = "approved" if approve else "refused"
    if r.decision == wanted:
        return r
    if r.decision != "pending":
        raise LeaveError(f"申请已于 {r.decided_at:%Y-%m-%d %H:%M} 由 {r.decided_by} 审批，不能更改 (already decided)")
    if approve and r.kind == "transfer" and r.to_school_id is None and not r.cert_path:
        raise LeaveError("转入县外学校，须先上传接收学校的回执 (upload the receipt first)")
    r.decision, r.decided_by, r.decided_at, r.decision_note = wanted, actor[:64], now, (note or "")[:255]
    r.status, r.done_at = "done", now
    if approve:
        case = session.scalar(select(Case).where(Case.pupil_id == r.pupil_id, Case.state.in_(OPEN),
                                                 Case.opened_on <= r.last_day))
        if case is not None:
            label = REQUEST_KIND_LABELS[r.kind]
            close_cases(session, ctx, [case], "excuse", actor=actor, at=now, now=now, reason=r.kind,
                        note=f"{label}经批准（{actor}）", idempotency_key=f"leave:{r.id}")
            r.case_id = case.id
        if r.kind == "transfer":
            _move_pupil(session, r, to_class_id)
    session.flush()
    return r


def _move_pupil(session: Session, r: LeaveRequest, to_class_id: int | None) -> None:
    pupil = session.get(Pupil, r.pupil_id)
    if r.to_school_id is None:
        pupil.enrolled = False  # 转入县外学校: off this county's roll
        return
    grade = session.scalar(select(SchoolClass.grade).where(SchoolClass.id == pupil.class_id))
    klass = session.get(SchoolClass, to_class_id) if to_class_id else None
    if klass is None or klass.school_id != r.to_school_id:
        klass = session.scalar(select(SchoolClass).where(SchoolClass.school_id == r.to_school_id)
                               .order_by((SchoolClass.grade != grade), SchoolClass.id))
    if klass is None:
        raise LeaveError("接收学校没有班级 (the receiving school has no class)")
    pupil.school_id, pupil.class_id = r.to_school_id, klass.id


def attach_certificate(session: Session, request_id: int, data: bytes, filename: str, *, actor: str, now: datetime,
                       archive_dir: Path, max_bytes: int) -> LeaveRequest:
    """A certificate (病假条、医疗证明) or a receipt (回执): sniffed and stored like a case attachment."""
    r = session.get(LeaveRequest, request_id)
    if r is None:
        raise LeaveError("申请不存在 (no such request)")
    shown = (filename or "附件")[-60:]
    if not data:
        raise AttachmentRefused(422, f"{shown} 是空文件 (empty file)")
    if len(data) > max_bytes:
        raise AttachmentRefused(413, f"{shown} 超过 {max_bytes // (1024 * 1024)}MB (file too large)")
    media = sniff(data)
    if media is None:
        raise AttachmentRefused(415, f"{shown} 不是JPG/PNG/WebP 照片或 PDF (only images and PDF are accepted)")
    import hashlib
    digest = hashlib.sha256(data).hexdigest()
    rel = f"attachments/{digest[:2]}/{digest}.{ALLOWED[media]}"
    write_once(archive_dir.resolve(), rel, data)
    r.cert_path, r.cert_sha256, r.cert_media_type, r.cert_filename = rel, digest, media, shown[:128]
    session.flush()
    return r


# -- lists -------------------------------------------------------------------------------------------------------
def listed(session: Session, scope: Scope = EVERYTHING, *, incoming_school_id: int | None = None, kinds=KINDS,
           decision: str | None = None, limit: int = 300) -> list[dict]:
    """Requests in ``scope`` newest first, and the transfers coming to ``incoming_school_id`` (转入 to confirm)."""
    q = (select(LeaveRequest, Pupil.name, Pupil.student_no, School.name.label("school"))
         .join(Pupil, Pupil.id == LeaveRequest.pupil_id).join(School, School.id == LeaveRequest.school_id)
         .where(LeaveRequest.kind.in_(list(kinds))).order_by(LeaveRequest.id.desc()).limit(limit))
    mine = scope.apply(select(LeaveRequest.id), school_col=LeaveRequest.school_id, class_col=LeaveRequest.class_id)
    if incoming_school_id is not None:
        q = q.where(or_(LeaveRequest.id.in_(mine), LeaveRequest.to_school_id == incoming_school_id))
    elif scope is not EVERYTHING:
        q = q.where(LeaveRequest.id.in_(mine))
    if decision:
        q = q.where(LeaveRequest.decision == decision)
    names = dict(session.execute(select(School.id, School.name)).all())
    return [{"id": r.id, "kind": r.kind, "pupil_id": r.pupil_id, "pupil": name, "student_no": no, "school": school,
             "school_id": r.school_id, "class_id": r.class_id, "first_day": r.first_day, "last_day": r.last_day,
             "days": r.days, "role": r.role, "due_at": r.due_at, "status": r.status, "decision": r.decision,
             "decided_by": r.decided_by, "decided_at": r.decided_at, "note": r.decision_note, "reason": r.reason,
             "source": r.source, "requested_by": r.requested_by, "counted_at": r.counted_at, "case_id": r.case_id,
             "to_school_id": r.to_school_id, "to_school": names.get(r.to_school_id) or r.to_school_name,
             "certificate": r.cert_filename, "document_id": r.document_id}
            for r, name, no, school in session.execute(q)]


def may_decide(request: dict, *, account_role: str, school_id: int | None, class_ids: frozenset[int] | None) -> bool:
    """Which account decides a request (accounts are head teacher, school office, township, county):
    免学/缓学 the county; a 转入 in the county the receiving school's office, one outside the county the
    sending school's office (with the receipt); a leave routed to the head teacher the class's head
    teacher or the school office; one routed to 教导处 or the principal the school office."""
    if request["decision"] != "pending":
        return False
    if request["kind"] == "exemption":
        return account_role == "county"
    if request["kind"] == "transfer":
        target = request["to_school_id"] or request["school_id"]
        return account_role == "school_staff" and school_id == target
    if account_role == "school_staff":
        return school_id == request["school_id"]
    return (account_role == "head_teacher" and request["role"] == "head_teacher" and class_ids is not None
            and request["class_id"] in class_ids)


def count_by_decision(session: Session) -> dict[tuple[str, str], int]:
    return {(k, d): n for k, d, n in session.execute(
        select(LeaveRequest.kind, LeaveRequest.decision, func.count()).group_by(LeaveRequest.kind, LeaveRequest.decision))}
