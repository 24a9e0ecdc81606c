"""Accounts, roles and scope: who may log in, what they may read, which case events they may fire.

Five roles (DOMAIN.md §2 roles collapsed to the places that log in):

==============  =======================  ====================================================
role            place                    reads
==============  =======================  ====================================================
head_teacher    班主任: school + classes  the pupils and cases of their own classes
school_staff    学校: school              everything of their school (教务处, 校长, 年级主任…)
township        乡镇: township            the schools of that township
county          县教育局                  every school
operator        系统运维                  no pupil data: accounts, runs, reporting status
==============  =======================  ====================================================

Which events an account may fire on a case it can read is :data:`ROLE_EVENTS`; a policy that
names a role for an action (``[actions.x] role = …``) narrows it further (:func:`may_fire`).

Account administration (:data:`ADMIN_ROLES`: the county bureau and the operators) deactivates and
reactivates accounts and resets passwords; everyone changes their own password and lists and
revokes their own API tokens. A new password, a reset or a deactivation ends every session and
revokes every token of the account. Failed logins are counted by the database itself (one
``UPDATE … RETURNING``), so parallel guesses lock the account like sequential ones.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from machines.policy import Policy

from store.models.accounts import ApiToken, LoginSession, User, UserClass
from store.models import Case, Jurisdiction, School, SchoolClass, Staff
from store.access.scope import Scope


class Role(str, Enum):
    head_teacher = "head_teacher"
    school_staff = "school_staff"
    township = "township"
    county = "county"
    operator = "operator"

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]


ROLE_LABELS = {
    Role.head_teacher: "班主任",
    Role.school_staff: "学校管理员",
    Role.township: "乡镇",
    Role.county: "县教育局",
    Role.operator: "系统运维",
}

# Events each role may fire on a case inside its scope ("escalate" belongs to the timers alone).
ROLE_EVENTS: dict[Role, frozenset[str]] = {
    Role.head_teacher: frozenset({"record_phone_call", "record_home_visit", "record_reason", "mark_returned", "excuse",
                                  "record_follow_up", "record_guardian_persuasion", "record_class_record",
                                  "serve_parent_notice"}),
    Role.school_staff: frozenset({
        "record_phone_call", "record_home_visit", "record_collective_visit", "assign_helpers", "record_reason",
        "mark_returned", "excuse", "escalate_outside",
        "record_follow_up", "record_guardian_persuasion", "record_employer_persuasion",
        "record_class_record", "serve_parent_notice", "report_parent_notice",  # 辍学书面通报 (seed 002)
    }),
    Role.township: frozenset({"record_collective_visit", "serve_township_notice", "serve_legal_notice",
                              "escalate_outside", "record_police_search", "record_employer_persuasion",
                              "record_judicial_progress"}),
    Role.county: frozenset({"escalate_outside"}),
    Role.operator: frozenset(),
}

# Policy roles (deploy/policies/*.toml [roles]) an account of each role stands for.
ROLE_STANDS_FOR: dict[Role, frozenset[str]] = {
    Role.head_teacher: frozenset({"head_teacher", "subject_teacher", "mentor_teacher"}),
    Role.school_staff: frozenset({
        "head_teacher", "subject_teacher", "mentor_teacher", "academic_office", "grade_director", "principal",
        "vice_principal", "leadership_group", "area_leader", "duty_teacher",
    }),
    Role.township: frozenset({"township", "township_head", "judicial_office", "village_committee", "police",
                              "education_center"}),
    Role.county: frozenset({"education_bureau"}),
    Role.operator: frozenset(),
}

# Roles that read full pupil names and guardian phones: the one rule is in store.access.masking.
from store.access.masking import UNMASKED_ROLES, masked_for  # noqa: E402,F401 - re-exported

SESSION_HOURS = 12
MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
TOKEN_PREFIX = "bx_"
TOKEN_DAYS = 90        # a new token's lifetime unless asked otherwise
TOKEN_MAX_DAYS = 365   # the longest a token may live (the web app's setting may lower it)
ADMIN_ROLES = frozenset({Role.county, Role.operator})

# argon2id with the library's defaults (RFC 9106 low-memory profile); tests may swap in a cheaper one.
hasher = PasswordHasher()


class AccountError(ValueError):
    """An account request that cannot be honoured; the message is for the person at the keyboard."""


# -- passwords, sessions, tokens --------------------------------------------------------------------
def _sha256(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def hash_password(password: str) -> str:
    if len(password or "") < 8:
        raise AccountError("密码至少 8 位 (password must have at least 8 characters)")
    return hasher.hash(password)


def create_user(
    session: Session, *, username: str, password: str | None, role: Role | str, display_name: str | None = None,
    school_id: int | None = None, township_id: int | None = None, class_ids: list[int] | tuple[int, ...] = (),
    staff_id: int | None = None, now: datetime,
) -> User:
    """Add an account; the place must fit the role (a head teacher needs a school and classes…)."""
    role = Role(role)
    username = (username or "").strip()
    if not username or len(username) > 64 or any(c.isspace() for c in username):
        raise AccountError("用户名不能为空、不能含空格 (username must be non-empty without spaces)")
    if session.scalar(select(User.id).where(func.lower(User.username) == username.lower())) is not None:
        raise AccountError(f"用户名 {username} 已存在 (username taken)")
    school_id, township_id = _check_place(session, role, school_id, township_id, list(class_ids), staff_id)
    staff = session.get(Staff, staff_id) if staff_id else None
    user = User(
        username=username, display_name=display_name or (staff.name if staff else username),
        password_hash=hash_password(password) if password is not None else None, role=role.value,
        school_id=school_id, township_id=township_id, staff_id=staff_id, active=True, failed_logins=0,
        created_at=now,
    )
    user.classes = [UserClass(class_id=c) for c in dict.fromkeys(class_ids)]
    session.add(user)
    session.flush()
    return user


def _check_place(session, role, school_id, township_id, class_ids, staff_id) -> tuple[int | None, int | None]:
    if role in (Role.head_teacher, Role.school_staff):
        if school_id is None and staff_id is not None:
            school_id = session.scalar(select(Staff.school_id).where(Staff.id == staff_id))
        if school_id is None or session.get(School, school_id) is None:
            raise AccountError("班主任和学校账号必须指定所在学校 (a school is required)")
        foreign = session.scalars(
            select(SchoolClass.id).where(SchoolClass.id.in_(class_ids), SchoolClass.school_id != school_id)
        ).all()
        missing = set(class_ids) - set(session.scalars(select(SchoolClass.id).where(SchoolClass.id.in_(class_ids))))
        if foreign or missing:
            raise AccountError(f"班级 {sorted(set(foreign) | missing)} 不属于该校 (classes not in this school)")
        if role is Role.head_teacher and not class_ids and staff_id is None:
            raise AccountError("班主任账号须指定班级或教职工 (classes or a staff record required)")
        return school_id, None
    if role is Role.township:
        level = session.scalar(select(Jurisdiction.level).where(Jurisdiction.id == township_id)) if township_id else None
        if level != "township":
            raise AccountError("乡镇账号必须指定一个乡镇 (a township is required)")
        return None, township_id
    return None, None


def end_access(session: Session, user: User, *, now: datetime) -> None:
    """End every browser session and revoke every API token of ``user``."""
    session.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
    session.execute(update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
                    .values(revoked_at=now))


def set_password(session: Session, user: User, password: str, *, now: datetime) -> None:
    """A new password (own change or an administrator's reset): every session and token ends."""
    user.password_hash = hash_password(password)
    user.failed_logins, user.locked_until = 0, None
    end_access(session, user, now=now)


def change_password(session: Session, user: User, *, old: str, new: str, now: datetime) -> None:
    """The user's own change: the current password is asked for again."""
    if not _password_matches(user, old):
        raise AccountError("当前密码不正确 (current password is wrong)")
    if old == new:
        raise AccountError("新密码不能与当前密码相同 (the new password must differ)")
    set_password(session, user, new, now=now)


def _password_matches(user: User, password: str) -> bool:
    try:
        return bool(user.password_hash) and hasher.verify(user.password_hash, password or "")
    except (VerificationError, InvalidHashError):
        return False


def authenticate(session: Session, *, username: str, password: str, now: datetime) -> User | None:
    """The active, unlocked user with this name and password, or None. Every refusal takes as long
    and looks the same to the caller (unknown name, wrong password, locked or disabled account).

    The failure count is kept by the database: ``failed_logins = failed_logins + 1 … RETURNING``
    (PostgreSQL holds the row lock to commit), so N parallel wrong guesses count N; the
    MAX_FAILED_LOGINS-th locks the account for LOCKOUT. A right password clears the count only if
    the account is not locked at that moment (one conditional UPDATE), so a lock set by a
    parallel guess is never undone by a login racing it."""
    user = session.scalar(select(User).where(func.lower(User.username) == (username or "").strip().lower()))
    if user is None or not user.active or not user.password_hash:
        hasher.hash("timing-equaliser")  # answer as slowly as for a real user
        return None
    if not _password_matches(user, password):
        _count_failure(session, user, now)
        return None
    users = User.__table__
    cleared = session.execute(
        update(users).where(users.c.id == user.id, users.c.active.is_(True),
                            or_(users.c.locked_until.is_(None), users.c.locked_until <= now))
        .values(failed_logins=0, locked_until=None, last_login_at=now).returning(users.c.id)).first()
    session.expire(user, ["failed_logins", "locked_until", "last_login_at", "active"])
    if cleared is None:  # locked (perhaps a moment ago, by a parallel guess)
        return None
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    return user


def _count_failure(session: Session, user: User, now: datetime) -> None:
    users = User.__table__
    count = session.execute(update(users).where(users.c.id == user.id)
                            .values(failed_logins=users.c.failed_logins + 1)
                            .returning(users.c.failed_logins)).scalar_one()
    if count >= MAX_FAILED_LOGINS:
        session.execute(update(users).where(users.c.id == user.id)
                        .values(failed_logins=0, locked_until=now + LOCKOUT))
    session.expire(user, ["failed_logins", "locked_until"])


def is_locked(session: Session, username: str, now: datetime) -> bool:
    until = session.scalar(select(User.locked_until).where(func.lower(User.username) == (username or "").strip().lower()))
    return until is not None and until > now


def set_active(session: Session, user: User, active: bool, *, now: datetime, by: User | None = None) -> None:
    """An administrator (``by``; None: the server's command line) deactivates or reactivates an
    account; a deactivated one loses its sessions and tokens at once (reactivating gives none
    back). Nobody deactivates themselves."""
    if by is not None:
        require_admin(by)
    if by is not None and user.id == by.id and not active:
        raise AccountError("不能停用自己的账号 (you cannot deactivate your own account)")
    user.active = active
    if not active:
        end_access(session, user, now=now)
    else:
        user.failed_logins, user.locked_until = 0, None


def reset_password(session: Session, user: User, *, now: datetime, by: User | None = None,
                   password: str | None = None) -> str:
    """An administrator (``by``; None: the server's command line) sets a new password, a random
    one when none is given (shown once)."""
    if by is not None:
        require_admin(by)
    password = password or secrets.token_urlsafe(12)
    set_password(session, user, password, now=now)
    return password


def require_admin(user: User) -> None:
    if Role(user.role) not in ADMIN_ROLES or not user.active:
        raise AccountError("只有县教育局或系统运维账号可以管理账号 (only an account administrator may do this)")


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.role, User.username)))


def find_user(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(func.lower(User.username) == (username or "").strip().lower()))


def start_session(session: Session, user: User, *, now: datetime, hours: int = SESSION_HOURS) -> tuple[str, LoginSession]:
    """A new browser session; returns the raw cookie value (kept nowhere) and the row."""
    raw = secrets.token_urlsafe(32)
    row = LoginSession(token_sha256=_sha256(raw), user_id=user.id, csrf_token=secrets.token_urlsafe(24),
                       created_at=now, expires_at=now + timedelta(hours=hours), last_seen_at=now)
    session.add(row)
    session.execute(delete(LoginSession).where(LoginSession.user_id == user.id, LoginSession.expires_at <= now))
    session.flush()
    return raw, row


def session_user(session: Session, raw: str | None, *, now: datetime, hours: int = SESSION_HOURS
                 ) -> tuple[User, LoginSession] | None:
    """The user behind a session cookie, sliding its expiry; None if unknown, expired or disabled."""
    if not raw:
        return None
    row = session.scalar(select(LoginSession).where(LoginSession.token_sha256 == _sha256(raw)))
    if row is None or row.expires_at <= now:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    if now - row.last_seen_at > timedelta(minutes=5):
        row.last_seen_at, row.expires_at = now, now + timedelta(hours=hours)
    return user, row


def end_session(session: Session, raw: str | None) -> None:
    if raw:
        session.execute(delete(LoginSession).where(LoginSession.token_sha256 == _sha256(raw)))


def issue_token(session: Session, user: User, *, name: str, now: datetime, days: int = TOKEN_DAYS,
                max_days: int = TOKEN_MAX_DAYS) -> str:
    """A new API token for ``user``, valid ``days`` (1…``max_days``: no token lives for ever); the
    raw value is returned once and stored only hashed."""
    if not isinstance(days, int) or not 1 <= days <= max_days:
        raise AccountError(f"令牌有效期须为 1 至 {max_days} 天 (a token lives 1 to {max_days} days)")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, name=(name or "api")[:64], token_sha256=_sha256(raw), prefix=raw[:10],
                         created_at=now, expires_at=now + timedelta(days=days)))
    session.flush()
    return raw


def tokens_of(session: Session, user: User) -> list[ApiToken]:
    """The account's tokens, newest first (revoked and expired ones included, marked as such)."""
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == user.id)
                                .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())))


def revoke_own_token(session: Session, user: User, token_id: int, *, now: datetime) -> bool:
    """Revoke one of ``user``'s own tokens by its id; False if it is not theirs or already revoked."""
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id or token.revoked_at is not None:
        return False
    token.revoked_at = now
    return True


def token_user(session: Session, raw: str | None, *, now: datetime) -> User | None:
    if not raw or not raw.startswith(TOKEN_PREFIX):
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_sha256 == _sha256(raw)))
    if token is None or token.revoked_at is not None or token.expires_at is None or token.expires_at <= now:
        return None
    user = session.get(User, token.user_id)
    if user is None or not user.active:
        return None
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=5):
        token.last_used_at = now
    return user


def revoke_token(session: Session, raw: str, *, now: datetime) -> bool:
    token = session.scalar(select(ApiToken).where(ApiToken.token_sha256 == _sha256(raw)))
    if token is None or token.revoked_at is not None:
        return False
    token.revoked_at = now
    return True


# -- scope and permissions --------------------------------------------------------------------------
NOTHING = Scope(school_ids=frozenset())


def class_ids_of(session: Session, user: User) -> frozenset[int]:
    """A head teacher's classes: those assigned to the account and those their staff record heads."""
    ids = {uc.class_id for uc in user.classes}
    if user.staff_id is not None:
        ids |= set(session.scalars(select(SchoolClass.id).where(
            SchoolClass.head_teacher_id == user.staff_id, SchoolClass.school_id == user.school_id)))
    return frozenset(ids)


def scope_of(session: Session, user: User) -> Scope:
    """What ``user`` may read. Operators read no pupil data at all."""
    role = Role(user.role)
    if role is Role.county:
        return Scope()
    if role is Role.township:
        return Scope(township_ids=frozenset({user.township_id}))
    if role is Role.school_staff:
        return Scope(school_ids=frozenset({user.school_id}))
    if role is Role.head_teacher:
        return Scope(school_ids=frozenset({user.school_id}), class_ids=class_ids_of(session, user))
    return NOTHING


def school_ids_in(session: Session, scope: Scope) -> list[int]:
    """The schools a scope reaches (a head teacher's own school included)."""
    q = select(School.id).order_by(School.id)
    if scope.school_ids is not None:
        q = q.where(School.id.in_(scope.school_ids))
    if scope.township_ids is not None:
        q = q.where(School.township_id.in_(scope.township_ids))
    return list(session.scalars(q))


def may_fire(user: User, event: str, policy: Policy | None = None) -> bool:
    """May ``user`` fire ``event`` on a case they can read (under ``policy``)?"""
    role = Role(user.role)
    if event not in ROLE_EVENTS[role]:
        return False
    if policy is not None and event in {a.value for a in policy.actions}:
        wanted = next(spec.role for a, spec in policy.actions.items() if a.value == event)
        if wanted and wanted not in ROLE_STANDS_FOR[role]:
            return False
    return True


def actor_of(user: User) -> str:
    """The ``actor`` written on case events and submissions."""
    return f"user:{user.username}"


# -- demo accounts ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DemoAccount:
    username: str
    password: str
    role: str
    display_name: str
    where: str


def seed_demo_accounts(session: Session, *, now: datetime, password: str | None = None) -> list[DemoAccount]:
    """One account per role for the generated county, placed where the demo's cases are.

    Picks the school and class with the most cases (so the head teacher's page is not empty).
    Re-running resets the passwords; the returned list is what the demo prints.
    """
    busiest = session.execute(
        select(Case.school_id, Case.class_id, func.count()).group_by(Case.school_id, Case.class_id)
        .order_by(func.count().desc(), Case.class_id).limit(1)
    ).first()
    if busiest:
        klass = session.get(SchoolClass, busiest.class_id)
    else:
        klass = session.scalar(select(SchoolClass).where(SchoolClass.head_teacher_id.is_not(None)).order_by(SchoolClass.id))
    if klass is None:
        raise AccountError("没有学校和班级：请先生成或导入县域数据 (no county data yet)")
    school = session.get(School, klass.school_id)
    township = session.get(Jurisdiction, school.township_id)
    county = session.get(Jurisdiction, township.parent_id) if township.parent_id else None
    teacher = session.get(Staff, klass.head_teacher_id) if klass.head_teacher_id else None
    office = session.scalar(select(Staff).where(Staff.school_id == school.id, Staff.role == "academic_office"))
    official = session.scalar(select(Staff).where(Staff.jurisdiction_id == township.id, Staff.role == "township"))
    bureau = session.scalar(select(Staff).where(Staff.role == "education_bureau", or_(
        Staff.jurisdiction_id == (county.id if county else None), Staff.jurisdiction_id.is_(None))))
    plan = [
        ("banzhuren", Role.head_teacher, dict(school_id=school.id, staff_id=teacher.id if teacher else None,
                                              class_ids=[] if teacher else [klass.id]),
         teacher.name if teacher else "班主任", f"{school.name} {klass.name}"),
        ("xuexiao", Role.school_staff, dict(school_id=school.id, staff_id=office.id if office else None),
         office.name if office else "教务处", school.name),
        ("xiangzhen", Role.township, dict(township_id=township.id, staff_id=official.id if official else None),
         official.name if official else township.name, township.name),
        ("jiaoyuju", Role.county, dict(staff_id=bureau.id if bureau else None),
         bureau.name if bureau else "教育局", county.name if county else "全县"),
        ("yunwei", Role.operator, {}, "系统运维", "全县"),
    ]
    out = []
    for username, role, place, display, where in plan:
        secret = password or secrets.token_urlsafe(9)
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            create_user(session, username=username, password=secret, role=role, display_name=display, now=now, **place)
        else:
            set_password(session, user, secret, now=now)
            user.active = True
        out.append(DemoAccount(username, secret, role.value, display, where))
    session.flush()
    return out
