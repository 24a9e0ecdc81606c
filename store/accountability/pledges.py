"""The yearly 控辍保学目标责任书 (seed 003 一: 逐级签订控辍保学目标责任书; the seed itself is the
班主任控辍保学责任书).

Each school year every person of the policy's ``accountability.pledge_roles`` (班主任) who is in some pupil's
包保 chain gets a 责任书 listing the chain's pupils (:func:`issue_year`; rendered by ``documents.pledges``).
Until its signing is recorded (:func:`record_signed`) it owes a duty (kind ``pledge`` of the duty ledger), due on
the policy's day (``pledge_due_month``/``pledge_due_day``, 30 September by default). Issuing again changes
nothing for a person who already has the year's 责任书 (their pupils are brought up to date while unsigned).
"""
from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from machines.vocabulary import PLEDGE_STATUS_LABELS

from store.access.scope import EVERYTHING, Scope
from store.models import School, Staff
from store.models.accountability import CareChainMember, Pledge, PledgeDuty
from store.policy_files import PolicyRegistry


class PledgeError(ValueError):
    """The 责任书 cannot be issued or signed as asked (中文 English)."""


def school_year(day: date) -> int:
    """The school year a day belongs to, by the year it starts (September)."""
    return day.year if day.month >= 8 else day.year - 1


def issue_year(session: Session, *, year: int, now: datetime, school_ids: list[int] | None = None) -> list[int]:
    """A 责任书 for every chain member of a pledge role (with a staff record) at ``school_ids`` (all if None)
    who has none for ``year``, and its signature duty; returns the ids of the 责任书 issued now."""
    registry = PolicyRegistry(session)
    q = (select(CareChainMember.staff_id, CareChainMember.role, CareChainMember.pupil_id, Staff.school_id,
                School.policy_name)
         .join(Staff, Staff.id == CareChainMember.staff_id).join(School, School.id == Staff.school_id)
         .where(CareChainMember.staff_id.is_not(None)))
    if school_ids is not None:
        q = q.where(Staff.school_id.in_(school_ids or [-1]))
    wanted: dict[int, dict[str, Any]] = {}
    rules_of: dict[str, Any] = {}
    for staff_id, role, pupil_id, school_id, policy_name in session.execute(q.order_by(CareChainMember.pupil_id)):
        if policy_name not in rules_of:
            rules_of[policy_name] = registry.get(policy_name).accountability
        rules = rules_of[policy_name]
        if role not in rules.pledge_roles:
            continue
        w = wanted.setdefault(staff_id, {"role": role, "school_id": school_id, "rules": rules, "pupils": []})
        w["pupils"].append(pupil_id)
    have = {p.staff_id: p for p in session.scalars(select(Pledge).where(Pledge.year == year))}
    issued = []
    for staff_id, w in sorted(wanted.items()):
        found = have.get(staff_id)
        if found is not None:
            if found.signed_at is None and sorted(found.pupil_ids or []) != sorted(w["pupils"]):
                found.pupil_ids = sorted(w["pupils"])
            continue
        rules = w["rules"]
        pledge = Pledge(year=year, staff_id=staff_id, role=w["role"], school_id=w["school_id"], title=rules.pledge_title,
                        pupil_ids=sorted(w["pupils"]), files={}, issued_at=now)
        session.add(pledge)
        session.flush()
        due = date(year, rules.pledge_due_month, rules.pledge_due_day)
        session.add(PledgeDuty(pledge_id=pledge.id, school_id=w["school_id"], action="sign_pledge", role=w["role"],
                               owner_id=staff_id, label=f"签订{year}学年《{rules.pledge_title}》",
                               due_at=datetime.combine(due, time(17, 0)), status="open", created_at=now))
        issued.append(pledge.id)
    session.flush()
    return issued


def record_signed(session: Session, pledge_id: int, *, actor: str, at: datetime, scope: Scope = EVERYTHING) -> Pledge:
    """The signed 责任书 came back: its signing is recorded and the signature duty is done (once)."""
    pledge = pledge_in_scope(session, pledge_id, scope)
    if pledge is None:
        raise PledgeError("责任书不存在，或不在您的管辖范围内 (pledge not found)")
    if pledge.signed_at is None:
        pledge.signed_at, pledge.signed_recorded_by = at, actor
        duty = session.scalar(select(PledgeDuty).where(PledgeDuty.pledge_id == pledge.id))
        if duty is not None and duty.status in ("open", "overdue"):
            duty.status, duty.done_at, duty.done_by = "done", at, actor
        session.flush()
    return pledge


def pledge_in_scope(session: Session, pledge_id: int, scope: Scope) -> Pledge | None:
    pledge = session.get(Pledge, pledge_id)
    if pledge is None:
        return None
    if scope.school_ids is not None and pledge.school_id not in scope.school_ids:
        return None
    if scope.township_ids is not None and session.scalar(select(School.township_id).where(
            School.id == pledge.school_id)) not in scope.township_ids:
        return None
    if scope.class_ids is not None:
        return None
    return pledge


def pledges(session: Session, scope: Scope = EVERYTHING, *, year: int | None = None) -> list[dict[str, Any]]:
    q = (select(Pledge, Staff.name, School.name, PledgeDuty).join(Staff, Staff.id == Pledge.staff_id)
         .outerjoin(School, School.id == Pledge.school_id).outerjoin(PledgeDuty, PledgeDuty.pledge_id == Pledge.id)
         .order_by(Pledge.year.desc(), School.name, Staff.name))
    if year is not None:
        q = q.where(Pledge.year == year)
    if scope.class_ids is not None:
        return []
    q = scope.apply(q, school_col=Pledge.school_id, class_col=Pledge.school_id)
    return [{"id": p.id, "year": p.year, "person": name, "staff_id": p.staff_id, "role": p.role, "school": school,
             "title": p.title, "pupils": len(p.pupil_ids or []), "files": sorted(p.files or {}),
             "issued_at": p.issued_at, "signed_at": p.signed_at, "signed_recorded_by": p.signed_recorded_by,
             "status": "signed" if p.signed_at else "issued",
             "status_label": PLEDGE_STATUS_LABELS["signed" if p.signed_at else "issued"],
             "due_at": duty.due_at if duty else None, "duty_status": duty.status if duty else None}
            for p, name, school, duty in session.execute(q)]
