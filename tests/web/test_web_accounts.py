"""Accounts: places that fit the role, hashed secrets, scopes, demo accounts."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from store.models.accounts import ApiToken, LoginSession, User
from store.access.accounts import (
    AccountError, Role, authenticate, create_user, issue_token, scope_of, seed_demo_accounts, session_user,
    start_session, token_user,
)
from store.models import Jurisdiction, School, SchoolClass
from tests.web_support import MONDAY, build_county


@pytest.fixture
def county(session):
    build_county(session, sessions=False)
    return session


def test_a_place_must_fit_the_role(county):
    s = county
    school = s.scalar(select(School))
    other = s.scalar(select(SchoolClass).where(SchoolClass.school_id != school.id))
    village = s.scalar(select(Jurisdiction).where(Jurisdiction.level == "village"))
    with pytest.raises(AccountError, match="学校"):
        create_user(s, username="a1", password="password1", role="school_staff", now=MONDAY)
    with pytest.raises(AccountError, match="不属于该校"):
        create_user(s, username="a2", password="password1", role="head_teacher", school_id=school.id,
                    class_ids=[other.id], now=MONDAY)
    with pytest.raises(AccountError, match="乡镇"):
        create_user(s, username="a3", password="password1", role="township", township_id=village.id, now=MONDAY)
    with pytest.raises(AccountError, match="8 位"):
        create_user(s, username="a4", password="short", role="county", now=MONDAY)
    with pytest.raises(AccountError, match="已存在"):
        create_user(s, username="TEACHER", password="password1", role="county", now=MONDAY)


def test_secrets_are_stored_only_hashed(county):
    s = county
    user = s.scalar(select(User).where(User.username == "county"))
    raw_session, _ = start_session(s, user, now=MONDAY)
    raw_token = issue_token(s, user, name="t", now=MONDAY)
    assert user.password_hash.startswith("$argon2id$")
    stored = [row.token_sha256 for row in s.scalars(select(LoginSession))] + [t.token_sha256 for t in s.scalars(select(ApiToken))]
    assert raw_session not in stored and raw_token not in stored
    assert session_user(s, raw_session, now=MONDAY)[0] is user and token_user(s, raw_token, now=MONDAY) is user
    assert session_user(s, raw_session, now=MONDAY + timedelta(hours=13)) is None


def test_a_disabled_user_cannot_log_in_or_use_a_token(county):
    s = county
    user = s.scalar(select(User).where(User.username == "school"))
    raw = issue_token(s, user, name="t", now=MONDAY)
    user.active = False
    assert authenticate(s, username="school", password="mima-2026-test", now=MONDAY) is None
    assert token_user(s, raw, now=MONDAY) is None


def test_a_head_teacher_reads_the_classes_they_head(county):
    s = county
    user = s.scalar(select(User).where(User.username == "teacher"))
    headed = set(s.scalars(select(SchoolClass.id).where(SchoolClass.head_teacher_id == user.staff_id)))
    scope = scope_of(s, user)
    assert scope.class_ids == headed and scope.school_ids == {user.school_id}
    assert scope_of(s, s.scalar(select(User).where(User.role == Role.operator.value))).school_ids == frozenset()


def test_demo_accounts_cover_every_role_and_reset_on_rerun(session):
    from store.calendars import calendars, materialise
    from store.policy_files import load_policies_into
    from demo.synthetic import Size, generate_county

    load_policies_into(session, now=MONDAY)
    for cal in calendars().values():
        materialise(session, cal)
    generate_county(session, seed=5, size=Size(townships=1, schools_per_township=1, grades=(1,), pupils_per_class=3))
    first = seed_demo_accounts(session, now=MONDAY)
    assert sorted(a.role for a in first) == sorted(r.value for r in Role)
    again = seed_demo_accounts(session, now=MONDAY)
    assert [a.username for a in again] == [a.username for a in first]
    for a in again:
        assert authenticate(session, username=a.username, password=a.password, now=datetime(2026, 11, 16, 9)) is not None
