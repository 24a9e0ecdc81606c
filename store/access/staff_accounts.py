"""Accounts that belong to staff records (issue 19): the role, the place and a head teacher's
classes follow from the person's record — their school or office, the classes whose 班主任 they are.

- :func:`account_for_staff` opens an account for a person on the staff list;
- :func:`reassign` moves an account to another record (a transfer, a mistaken link): its place is
  recomputed and its sessions and tokens end;
- :func:`sync_head_teachers` gives each head teacher's account exactly the classes her record
  heads (run after a class list import: a class handed to a successor changes both accounts).
"""
from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from store.access.accounts import AccountError, Role, create_user, end_access, require_admin, reset_password
from store.models import Jurisdiction, SchoolClass, Staff
from store.models.accounts import User, UserClass


def place_of(session: Session, staff: Staff) -> dict:
    """The account role and place of a staff record."""
    if staff.retired_on is not None:
        raise AccountError(f"{staff.name} 已停用（{staff.retired_on}），不能开账号 (staff record retired)")
    if staff.school_id is not None:
        classes = classes_headed(session, staff.id)
        if staff.role == "head_teacher" or classes:
            return {"role": Role.head_teacher, "school_id": staff.school_id, "class_ids": classes}
        return {"role": Role.school_staff, "school_id": staff.school_id}
    place = session.get(Jurisdiction, staff.jurisdiction_id) if staff.jurisdiction_id else None
    if place is not None and place.level == "township":
        return {"role": Role.township, "township_id": place.id}
    if place is not None and place.level == "county":
        return {"role": Role.county}
    raise AccountError(f"{staff.name} 属于村（社区），村委会不设账号：签收由学校或乡镇登记 (no village accounts)")


def classes_headed(session: Session, staff_id: int) -> list[int]:
    return list(session.scalars(select(SchoolClass.id).where(
        SchoolClass.head_teacher_id == staff_id, SchoolClass.retired_on.is_(None)).order_by(SchoolClass.id)))


def staff_by_phone(session: Session, phone: str) -> Staff:
    found = session.scalars(select(Staff).where(Staff.phone == (phone or "").strip(), Staff.retired_on.is_(None))).all()
    if not found:
        raise AccountError(f"教职工名单中没有手机号 {phone} (no staff record with this phone)")
    if len(found) > 1:
        raise AccountError(f"手机号 {phone} 对应 {len(found)} 人，请先在教职工表中改正")
    return found[0]


def account_for_staff(session: Session, staff: Staff, *, username: str, now: datetime, by: User | None = None,
                      password: str | None = None) -> tuple[User, str]:
    """A new account for ``staff`` (its role and place from the record); returns it and its password
    (random when none is given: shown once)."""
    if by is not None:
        require_admin(by)
    place = place_of(session, staff)
    if session.scalar(select(User.id).where(User.staff_id == staff.id, User.active.is_(True))) is not None:
        raise AccountError(f"{staff.name} 已有账号 (this person already has an account)")
    password = password or secrets.token_urlsafe(12)
    user = create_user(session, username=username, password=password, display_name=staff.name, staff_id=staff.id,
                       now=now, **place)
    return user, password


def reassign(session: Session, user: User, staff: Staff, *, now: datetime, by: User | None = None) -> User:
    """``user`` now belongs to ``staff``: role, place and classes follow the record; sessions end."""
    if by is not None:
        require_admin(by)
    place = place_of(session, staff)
    user.staff_id, user.display_name = staff.id, staff.name
    user.role = place["role"].value
    user.school_id, user.township_id = place.get("school_id"), place.get("township_id")
    session.execute(delete(UserClass).where(UserClass.user_id == user.id))
    if place.get("class_ids"):
        session.execute(insert(UserClass), [{"user_id": user.id, "class_id": c} for c in place["class_ids"]])
    end_access(session, user, now=now)
    session.flush()
    session.expire(user)
    return user


def sync_head_teachers(session: Session) -> int:
    """Each linked head teacher's account holds exactly the classes her record heads; returns how
    many accounts changed."""
    changed = 0
    users = session.scalars(select(User).where(User.role == Role.head_teacher.value, User.staff_id.is_not(None))).all()
    for user in users:
        want = set(classes_headed(session, user.staff_id))
        have = set(session.scalars(select(UserClass.class_id).where(UserClass.user_id == user.id)))
        if want == have:
            continue
        changed += 1
        session.execute(delete(UserClass).where(UserClass.user_id == user.id, UserClass.class_id.in_(have - want)))
        if want - have:
            session.execute(insert(UserClass), [{"user_id": user.id, "class_id": c} for c in sorted(want - have)])
        session.expire(user)
    session.flush()
    return changed


__all__ = ["account_for_staff", "place_of", "reassign", "reset_password", "staff_by_phone", "sync_head_teachers"]
