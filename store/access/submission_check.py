"""Is a morning check that reaches a worker one the web app really accepted? (issue 14, row 3)

The Prefect API can start a ``morning-check`` run with any parameters, so the flow trusts none
of them: before anything is recorded, :func:`refusal` checks

1. the signature: the web app signs each submission with the settings' ``secret_key``
   (``store.access.signing``, purpose :data:`PURPOSE`); an unsigned or altered one is refused;
2. the submitter: a ``user:NAME`` actor is an account that exists, is active, has a role that
   submits morning checks (a township or county account: only a staged county file, of the schools in its scope)
   and covers every school (and, for a head teacher, every pupil) the
   submission names — as the web app checked when it accepted it. Any other actor is a feed of
   the server itself (the county SIS export, the demo, an operator's script): only a holder of
   the secret key can sign one, and the web app never signs anything but its user's actor;
3. the times: submitted no later than now, for a day no later than that, and at most
   :data:`LATE_WINDOW_DAYS` days late (``time_refusal``, which the web app applies too, so that
   what it accepts a worker records).

A census import is recorded server-side before its run starts (``census_imports``, with who
imported it): :func:`census_refusal` checks that the run names such an import, that its
importer is still an active office account, and that the run acts neither before the import nor
in the future.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.access.accounts import Role, class_ids_of, find_user, school_ids_in, scope_of
from store.models import Pupil, School
from store.access.signing import verify

PURPOSE = "morning-check"
LATE_WINDOW_DAYS = 31          # a check sent later than this (the /late page's month) is not taken
CLOCK_SKEW = timedelta(minutes=5)
SUBMITTING_ROLES = frozenset({Role.head_teacher, Role.school_staff})


def time_refusal(day: date, submitted_at: datetime | None, now: datetime) -> str | None:
    """Why ``day``/``submitted_at`` are outside policy at ``now``, or None."""
    if submitted_at is None:
        return "提交时间缺失 (no submission time)"
    if submitted_at > now + CLOCK_SKEW:
        return f"提交时间 {submitted_at} 晚于当前时间 (submitted in the future)"
    if day > submitted_at.date():
        return f"晨检日期 {day} 还没到 (the date is in the future)"
    if day < submitted_at.date() - timedelta(days=LATE_WINDOW_DAYS):
        return f"晨检日期 {day} 已超过 {LATE_WINDOW_DAYS} 天补报期限 (older than the late window)"
    return None


def submitter_refusal(session: Session, actor: str, school_codes: Iterable[str], student_nos: Iterable[str],
                      *, complete: bool, county_file: bool = False) -> str | None:
    """Why ``actor`` may not submit these marks for these schools, or None."""
    if not actor.startswith("user:"):
        return None  # a server-side feed: its signature is what vouches for it
    user = find_user(session, actor[len("user:"):])
    if user is None or not user.active:
        return f"提交人 {actor} 不存在或已停用 (unknown or deactivated account)"
    if county_file and user.role in (Role.township, Role.county):  # a county file (page, API): schools in scope
        mine = set(session.scalars(select(School.code).where(School.id.in_(school_ids_in(session, scope_of(session, user))))))
        foreign = sorted(set(school_codes) - mine)
        if foreign:
            return f"提交人 {actor} 不能提交学校 {', '.join(foreign)} 的晨检 (school outside the account's scope)"
        return None
    if user.role not in SUBMITTING_ROLES:
        return f"提交人 {actor} 的角色不能提交晨检 (this role does not submit morning checks)"
    own = session.scalar(select(School.code).where(School.id == user.school_id))
    foreign = sorted(set(school_codes) - {own})
    if foreign:
        return f"提交人 {actor} 不能提交学校 {', '.join(foreign)} 的晨检 (school outside the account's scope)"
    if user.role == Role.head_teacher:
        if complete:
            return "班主任只能提交本班的晨检 (a head teacher's check covers their classes only)"
        nos = {no.strip() for no in student_nos}
        mine = set(session.scalars(select(Pupil.student_no).where(
            Pupil.school_id == user.school_id, Pupil.class_id.in_(class_ids_of(session, user) or [-1]))))
        if nos - mine:
            return f"有 {len(nos - mine)} 名学生不在提交人所带班级 (pupils outside the head teacher's classes)"
    return None


OFFICE_ROLES = frozenset({Role.township, Role.county})


def census_refusal(session: Session, import_id: int, as_of: datetime, *, now: datetime) -> str | None:
    """Why a census-import run for ``import_id`` acting at ``as_of`` must not proceed, or None."""
    from store.models.census import CensusImport

    imp = session.get(CensusImport, import_id) if 0 < import_id < 2**31 else None
    if imp is None:
        return f"排查导入 {import_id} 不存在 (no such census import)"
    if imp.imported_by.startswith("user:"):
        user = find_user(session, imp.imported_by[len("user:"):])
        if user is None or not user.active or user.role not in OFFICE_ROLES:
            return f"导入人 {imp.imported_by} 不存在、已停用或无权导入排查名单 (importer may not import)"
    if as_of < imp.imported_at or as_of > now + CLOCK_SKEW:
        return f"流程时间 {as_of} 不在导入时间 {imp.imported_at} 与当前时间之间 (as_of outside the import's window)"
    return None


def refusal(session: Session, content: dict[str, Any], signature: str | None, *, now: datetime) -> str | None:
    """Why a submission (``content``: its fields but the signature, as JSON values) must not be
    recorded, or None. Fields used: day, submitted_at, submitted_by, school_code, schools,
    marks[].school_code / student_no, complete."""
    if not verify(PURPOSE, content, signature):
        return "晨检提交未经本系统签名或已被改动，不予处理 (unsigned or altered submission)"
    day = date.fromisoformat(content["day"])
    at = datetime.fromisoformat(content["submitted_at"]) if content.get("submitted_at") else None
    if (why := time_refusal(day, at, now)) is not None:
        return why
    codes = {content.get("school_code")} if content.get("school_code") else set(content.get("schools") or [])
    codes |= {m.get("school_code") for m in content.get("marks", []) if m.get("school_code")}
    return submitter_refusal(session, str(content.get("submitted_by") or ""), codes,
                             [m["student_no"] for m in content.get("marks", [])], complete=bool(content.get("complete")),
                             county_file=content.get("file_id") is not None and not content.get("school_code"))
