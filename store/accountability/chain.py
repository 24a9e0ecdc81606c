"""Each pupil's 包保 chain (seed 000 §一.1, seed 003 一 双线目标责任制 / 四 包保责任制).

The chain's roles are the policy's ``accountability.chain_roles`` (e.g. 班主任, 校长, 镇政府, 村委会): one
named person per role, imported with the roster (optional columns 包保班主任 / 包保校领导 / 包保乡镇干部 /
包保村干部, in the order of the policy's roles), filled from the school's staff (:func:`fill_defaults`) or
assigned on the pupil's page. A member who is a staff member owns the pupil's duties of that role: the
duty goes to the chain (:func:`route_to_chain`, one set-based UPDATE per duty table; idempotent).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import Session

from store.cases.context import OwnerResolver
from store.models import Case, Duty, Jurisdiction, Pupil, School, Staff
from store.models.accountability import CareChainMember
from store.models.prevention import PreventionDuty
from store.models.risk import WatchDuty, WatchEntry
from store.policy_files import PolicyRegistry

UNDONE = ("open", "overdue")
# the roster's optional 包保 columns, in the order of the policy's chain_roles
ROSTER_COLUMNS = {"包保班主任": "chain_1", "包保校领导": "chain_2", "包保乡镇干部": "chain_3", "包保村干部": "chain_4"}


class ChainError(ValueError):
    """A chain assignment the policy or the roster refuses; the message is for staff (中文 English)."""


def roles_of(session: Session, school: School) -> list[str]:
    return list(PolicyRegistry(session).get(school.policy_name).accountability.chain_roles)


def _serving(session: Session, school: School):
    """Staff of the school, its township or its county."""
    places = [school.township_id]
    parent = session.scalar(select(Jurisdiction.parent_id).where(Jurisdiction.id == school.township_id))
    if parent:
        places.append(parent)
    return or_(Staff.school_id == school.id, Staff.jurisdiction_id.in_(places))


def _staff_named(session: Session, school: School, name: str) -> int | None:
    """The staff member called ``name`` at the school, its township or county (the first one)."""
    return session.scalar(select(Staff.id).where(Staff.name == name, _serving(session, school)).order_by(Staff.id).limit(1))


def set_member(session: Session, *, pupil: Pupil, role: str, person_name: str, staff_id: int | None = None,
               source: str, actor: str, now: datetime) -> CareChainMember:
    """Put ``person_name`` (a staff member if one of that name serves the school, its township or county)
    into ``pupil``'s chain for ``role``; the pupil's open duties of that role go to them."""
    school = session.get(School, pupil.school_id)
    roles = roles_of(session, school)
    if role not in roles:
        raise ChainError(f"包保角色 {role} 不在本校策略的包保链中 {roles} (role not in the policy's chain)")
    person_name = person_name.strip()
    if not person_name or len(person_name) > 32 or any(ord(ch) < 32 for ch in person_name):
        raise ChainError("包保责任人姓名应为 1–32 个字 (name 1–32 characters)")
    if staff_id is None:
        staff_id = _staff_named(session, school, person_name)
    elif session.scalar(select(Staff.id).where(Staff.id == staff_id, _serving(session, school))) is None:
        raise ChainError("该工作人员不在本校、本乡镇或本县 (staff member does not serve this school)")
    member = session.scalar(select(CareChainMember).where(CareChainMember.pupil_id == pupil.id,
                                                          CareChainMember.role == role))
    if member is None:
        member = CareChainMember(pupil_id=pupil.id, role=role)
        session.add(member)
    member.person_name, member.staff_id = person_name, staff_id
    member.source, member.assigned_by, member.assigned_at = source, actor, now
    session.flush()
    route_to_chain(session, pupil_ids=[pupil.id])
    return member


def from_roster(session: Session, pupil: Pupil, row: dict[str, str], *, now: datetime) -> int:
    """The roster row's 包保 columns (chain_1…chain_4 → the policy's chain roles in order); returns how many."""
    school = session.get(School, pupil.school_id)
    roles = roles_of(session, school)
    n = 0
    for i, role in enumerate(roles, start=1):
        name = (row.get(f"chain_{i}") or "").strip()
        if name:
            set_member(session, pupil=pupil, role=role, person_name=name, source="roster", actor="system:roster", now=now)
            n += 1
    return n


def fill_defaults(session: Session, *, school_ids: list[int] | None, actor: str, now: datetime) -> int:
    """Every pupil of ``school_ids`` (all if None) without a member for a chain role gets the staff member the
    duty owners resolve to for that role (head teacher of the class, the school's principal, the township's
    official…); returns the members added. A role nobody holds stays empty."""
    owners, registry = OwnerResolver(session), PolicyRegistry(session)
    names = dict(session.execute(select(Staff.id, Staff.name)).all())
    have = {(p, r) for p, r in session.execute(select(CareChainMember.pupil_id, CareChainMember.role))}
    q = select(Pupil.id, Pupil.school_id, Pupil.class_id, School.policy_name).join(School, School.id == Pupil.school_id) \
        .where(Pupil.enrolled)
    if school_ids is not None:
        q = q.where(Pupil.school_id.in_(school_ids or [-1]))
    rows, roles = [], {}
    for pid, sid, cid, policy_name in session.execute(q.order_by(Pupil.id)):
        if policy_name not in roles:
            roles[policy_name] = registry.get(policy_name).accountability.chain_roles
        for role in roles[policy_name]:
            if (pid, role) in have:
                continue
            staff_id = owners.resolve(sid, cid, role)
            if staff_id is not None:
                rows.append({"pupil_id": pid, "role": role, "staff_id": staff_id, "person_name": names[staff_id],
                             "source": "default", "assigned_by": actor, "assigned_at": now})
    if rows:
        from sqlalchemy import insert
        session.execute(insert(CareChainMember), rows)
    route_to_chain(session)
    return len(rows)


def chain_of(session: Session, pupil_id: int) -> list[dict[str, Any]]:
    """The pupil's chain in the policy's role order, a role without a member as an empty row."""
    pupil = session.get(Pupil, pupil_id)
    if pupil is None:
        return []
    school = session.get(School, pupil.school_id)
    policy = PolicyRegistry(session).get(school.policy_name)
    members = {m.role: m for m in session.scalars(select(CareChainMember).where(CareChainMember.pupil_id == pupil_id))}
    out = []
    for role in policy.accountability.chain_roles:
        m = members.get(role)
        out.append({"role": role, "role_label": policy.role_label(role), "person": m.person_name if m else None,
                    "staff_id": m.staff_id if m else None, "source": m.source if m else None,
                    "assigned_at": m.assigned_at if m else None})
    return out


def route_to_chain(session: Session, *, pupil_ids: list[int] | None = None) -> dict[str, int]:
    """Undone duties whose role a staff member holds in the pupil's chain go to that member (case, prevention
    and watch-list duties); set-based and idempotent. Returns the rows moved per kind."""
    cc = CareChainMember
    out = {}
    # only pupils with a named staff member in their chain can have a duty to move: the candidates are read from the
    # chain (small) rather than tested row by row over every undone duty of the county (issue 20: seconds at 1 M)
    chained = select(cc.pupil_id).where(cc.staff_id.is_not(None))
    if not session.scalar(select(chained.exists())):
        return {"case": 0, "prevention": 0, "watch": 0}
    candidates = {
        "case": Duty.case_id.in_(select(Case.id).where(Case.pupil_id.in_(chained))),
        "prevention": PreventionDuty.pupil_id.in_(chained),
        "watch": WatchDuty.entry_id.in_(select(WatchEntry.id).where(WatchEntry.pupil_id.in_(chained))),
    }
    targets = {
        "case": (Duty, select(Case.pupil_id).where(Case.id == Duty.case_id).correlate(Duty).scalar_subquery()),
        "prevention": (PreventionDuty, PreventionDuty.pupil_id),
        "watch": (WatchDuty, select(WatchEntry.pupil_id).where(WatchEntry.id == WatchDuty.entry_id).correlate(WatchDuty)
                  .scalar_subquery()),
    }
    for kind, (model, pupil_of) in targets.items():
        member = (select(cc.staff_id).where(cc.pupil_id == pupil_of, cc.role == model.role, cc.staff_id.is_not(None))
                  .correlate(model))
        where = [model.status.in_(UNDONE), candidates[kind],
                 exists(member.where(or_(model.owner_id.is_(None), cc.staff_id != model.owner_id)))]
        if pupil_ids is not None:
            where.append(pupil_of.in_(pupil_ids) if kind != "prevention" else model.pupil_id.in_(pupil_ids))
        result = session.execute(update(model).where(*where).values(owner_id=member.limit(1).scalar_subquery())
                                 .execution_options(synchronize_session=False))
        out[kind] = result.rowcount or 0
    return out


def chain_pupils(session: Session, staff_id: int) -> list[dict[str, Any]]:
    """The pupils whose chain names ``staff_id`` (the 责任书's list), by class and name."""
    from store.models import SchoolClass

    return [{"pupil_id": pid, "name": name, "student_no": no, "class_name": cname, "role": role}
            for pid, name, no, cname, role in session.execute(
                select(Pupil.id, Pupil.name, Pupil.student_no, SchoolClass.name, CareChainMember.role)
                .join(CareChainMember, CareChainMember.pupil_id == Pupil.id)
                .join(SchoolClass, SchoolClass.id == Pupil.class_id)
                .where(CareChainMember.staff_id == staff_id, Pupil.enrolled)
                .order_by(SchoolClass.grade, SchoolClass.name, Pupil.name, Pupil.id))]


__all__ = ["ChainError", "set_member", "from_roster", "fill_defaults", "chain_of", "route_to_chain", "chain_pupils",
           "ROSTER_COLUMNS", "and_", "func"]
