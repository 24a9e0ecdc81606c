"""Accounts as a product (issue 14 rows 7, 8 and the account items of row 14), on SQLite and PostgreSQL.

Row 7: parallel wrong passwords lock the account (the count is kept by the database).
Row 8: a new password ends sessions and tokens; tokens always expire; one's own tokens are listed
and revoked; administrators deactivate, reactivate and reset accounts (pages, API and CLI).
Row 14: /login and /logout need their form token; a refusal never says whether the account exists;
passwords never come from argv; the secret key is used and production refuses the default.
"""
from __future__ import annotations

import subprocess
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select, update
from typer.testing import CliRunner

from store.models.accounts import ApiToken, LoginSession, User
from store.access.accounts import (
    MAX_FAILED_LOGINS, AccountError, Role, authenticate, create_user, issue_token, start_session, token_user,
)
from store.db import DEFAULT_SECRET_KEY, Settings
from tests.web_support import (
    MONDAY, PASSWORD, Clock, build_county, form_token, in_process_app, page_login, user_named,
)
from web.deps import SESSION_COOKIE

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def web(factory, tmp_path):
    with factory() as s:
        county = build_county(s, sessions=False)
        s.commit()
    clock = Clock()
    app = in_process_app(factory, tmp_path / "archive", clock)
    with TestClient(app) as client:
        yield {"client": client, "app": app, "county": county, "clock": clock, "factory": factory}


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


def new_token(client, username: str, **extra) -> str:
    r = client.post("/api/auth/token", json={"username": username, "password": PASSWORD, **extra})
    assert r.status_code == 200, r.text
    return r.json()["token"]


# -- row 7: the lockout holds under parallel guesses ---------------------------------------------------
def test_forty_parallel_wrong_passwords_lock_the_account(fresh_db):
    with fresh_db() as s:
        create_user(s, username="target", password=PASSWORD, role=Role.county, now=MONDAY)
        s.commit()
    start = threading.Barrier(40)
    errors: list[BaseException] = []

    def guess():
        try:
            with fresh_db() as s:
                start.wait()
                assert authenticate(s, username="target", password="wrong-guess", now=MONDAY) is None
                s.commit()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=guess) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with fresh_db() as s:
        user = s.scalar(select(User).where(User.username == "target"))
        assert user.locked_until == MONDAY + timedelta(minutes=15)
        # 40 guesses: locked at the 5th, every further batch of 5 locks again; none is lost
        assert user.failed_logins == 40 % MAX_FAILED_LOGINS
        assert authenticate(s, username="target", password=PASSWORD, now=MONDAY + timedelta(minutes=1)) is None
        s.commit()


def test_a_right_password_does_not_undo_a_lock(session):
    user = create_user(session, username="locked", password=PASSWORD, role=Role.county, now=MONDAY)
    for _ in range(MAX_FAILED_LOGINS):
        authenticate(session, username="locked", password="nope-nope", now=MONDAY)
    assert authenticate(session, username="locked", password=PASSWORD, now=MONDAY) is None
    session.refresh(user)
    assert user.locked_until is not None and user.last_login_at is None
    assert authenticate(session, username="locked", password=PASSWORD, now=MONDAY + timedelta(minutes=16)) is not None


# -- row 8: sessions and tokens end with the password ----------------------------------------------------
def test_changing_ones_password_ends_every_session_and_token(web):
    client = web["client"]
    token = new_token(client, "school")
    other = TestClient(web["app"])
    page_login(other, "school", follow_redirects=False)
    page_login(client, "school", follow_redirects=False)
    r = client.post("/account/password", data={"old": PASSWORD, "new": "new-pass-2026", "again": "new-pass-2026",
                                               "csrf": form_token(client)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert client.get("/api/me", headers=bearer(token)).status_code == 401
    assert other.get("/account", follow_redirects=False).status_code == 303  # the other browser is logged out
    assert client.get("/account", follow_redirects=False).status_code == 303
    assert page_login(client, "school", "new-pass-2026", follow_redirects=False).status_code == 303


def test_the_api_password_change_needs_the_old_password_and_revokes_the_token_in_use(web):
    client = web["client"]
    token = new_token(client, "teacher")
    r = client.post("/api/auth/password", headers=bearer(token), json={"old": "not-it-at-all", "new": "x" * 10})
    assert r.status_code == 422 and "当前密码不正确" in r.json()["message"]
    r = client.post("/api/auth/password", headers=bearer(token), json={"old": PASSWORD, "new": "another-pass-1"})
    assert r.status_code == 204
    assert client.get("/api/me", headers=bearer(token)).status_code == 401


def test_an_administrators_reset_ends_the_users_sessions_and_tokens(web):
    client, factory = web["client"], web["factory"]
    victim = TestClient(web["app"])
    page_login(victim, "teacher", follow_redirects=False)
    token = new_token(client, "teacher")
    page_login(client, "county", follow_redirects=False)
    teacher_id = web["county"].users["teacher"]
    r = client.post(f"/admin/users/{teacher_id}/password", data={"csrf": form_token(client, "/admin/users")})
    assert r.status_code == 200
    shown = r.text.split("的新密码：<code>")[1].split("</code>")[0]
    assert client.get("/api/me", headers=bearer(token)).status_code == 401
    assert victim.get("/teacher", follow_redirects=False).status_code == 303
    with factory() as s:
        assert authenticate(s, username="teacher", password=shown, now=MONDAY) is not None
        assert authenticate(s, username="teacher", password=PASSWORD, now=MONDAY) is None


# -- row 8: tokens expire ---------------------------------------------------------------------------
def test_a_token_always_expires_within_the_maximum(web):
    client = web["client"]
    for days in (None, 366, 3650, 0):
        r = client.post("/api/auth/token", json={"username": "school", "password": PASSWORD, "days": days})
        assert r.status_code == 422, (days, r.text)
    token = new_token(client, "school", days=365)
    web["clock"].at = MONDAY + timedelta(days=366)
    assert client.get("/api/me", headers=bearer(token)).status_code == 401
    web["clock"].at = MONDAY
    default = new_token(client, "school")
    with web["factory"]() as s:
        row = s.scalar(select(ApiToken).where(ApiToken.prefix == default[:10]))
        assert row.expires_at == MONDAY + timedelta(days=90)


def test_a_token_without_an_expiry_is_refused(session):
    user = create_user(session, username="legacy", password=PASSWORD, role=Role.county, now=MONDAY)
    raw = issue_token(session, user, name="old", now=MONDAY)
    assert token_user(session, raw, now=MONDAY) is not None
    session.execute(update(ApiToken).where(ApiToken.user_id == user.id).values(expires_at=None))  # made by the old code
    session.expire_all()
    assert token_user(session, raw, now=MONDAY) is None
    with pytest.raises(AccountError):
        issue_token(session, user, name="forever", now=MONDAY, days=None)


# -- row 8: listing and revoking one's tokens --------------------------------------------------------------
def test_one_lists_and_revokes_ones_own_tokens_and_no_one_elses(web):
    client = web["client"]
    keep, drop = new_token(client, "school", name="学籍系统"), new_token(client, "school", name="旧脚本")
    theirs = new_token(client, "township")
    listed = client.get("/api/auth/tokens", headers=bearer(keep)).json()
    assert {t["name"] for t in listed} >= {"学籍系统", "旧脚本"} and all(t["expires_at"] for t in listed)
    drop_id = next(t["id"] for t in listed if t["name"] == "旧脚本")
    their_id = client.get("/api/auth/tokens", headers=bearer(theirs)).json()[0]["id"]
    assert client.delete(f"/api/auth/tokens/{their_id}", headers=bearer(keep)).status_code == 404
    assert client.get("/api/me", headers=bearer(theirs)).status_code == 200
    assert client.delete(f"/api/auth/tokens/{drop_id}", headers=bearer(keep)).status_code == 204
    assert client.get("/api/me", headers=bearer(drop)).status_code == 401
    # the page lists them too and revokes with the form token
    page_login(client, "school", follow_redirects=False)
    page = client.get("/account").text
    assert "学籍系统" in page and "已注销" in page
    keep_id = next(t["id"] for t in listed if t["name"] == "学籍系统")
    for forged in ("forged", "令牌"):
        r = client.post(f"/account/tokens/{keep_id}/revoke", data={"csrf": forged})
        assert r.status_code == 403 and client.get("/api/me", headers=bearer(keep)).status_code == 200
    r = client.post(f"/account/tokens/{keep_id}/revoke", data={"csrf": form_token(client)}, follow_redirects=False)
    assert r.status_code == 303 and client.get("/api/me", headers=bearer(keep)).status_code == 401


# -- row 8: administrators deactivate and reactivate -------------------------------------------------------
def test_a_deactivated_user_cannot_log_in_or_use_a_token_until_reactivated(web):
    client = web["client"]
    token = new_token(client, "teacher")
    victim = TestClient(web["app"])
    page_login(victim, "teacher", follow_redirects=False)
    page_login(client, "county", follow_redirects=False)
    teacher_id, csrf = web["county"].users["teacher"], form_token(client, "/admin/users")
    r = client.post(f"/admin/users/{teacher_id}/active", data={"active": "false", "csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/api/me", headers=bearer(token)).status_code == 401
    assert victim.get("/teacher", follow_redirects=False).status_code == 303
    assert page_login(TestClient(web["app"]), "teacher").status_code == 401
    r = client.post(f"/admin/users/{teacher_id}/active", data={"active": "true", "csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert page_login(TestClient(web["app"]), "teacher", follow_redirects=False).status_code == 303
    assert client.get("/api/me", headers=bearer(token)).status_code == 401  # reactivation revives no token


def test_only_an_administrator_manages_accounts_and_none_deactivates_themselves(web):
    client = web["client"]
    county_id = web["county"].users["county"]
    for name in ("teacher", "school", "township"):
        page_login(client, name, follow_redirects=False)
        assert client.get("/admin/users", follow_redirects=False).status_code == 403
        r = client.post(f"/admin/users/{county_id}/active", data={"active": "false", "csrf": form_token(client)})
        assert r.status_code == 403
    page_login(client, "county", follow_redirects=False)
    r = client.post(f"/admin/users/{county_id}/active", data={"active": "false", "csrf": form_token(client)})
    assert r.status_code == 422 and "不能停用自己" in r.text
    with web["factory"]() as s:
        assert user_named(s, "county").active


# -- row 14: CSRF on /login and /logout, one answer for every refusal ----------------------------------------
def test_login_without_the_forms_token_is_refused(web):
    client = web["client"]
    r = client.post("/login", data={"username": "teacher", "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 403 and SESSION_COOKIE not in r.cookies
    client.get("/login")
    r = client.post("/login", data={"username": "teacher", "password": PASSWORD, "csrf": "令牌"}, follow_redirects=False)
    assert r.status_code == 403 and SESSION_COOKIE not in r.cookies
    # a token made with the well-known default key does not pass an app with its own key
    from store.access.signing import sign

    client.get("/login")
    forged = sign("login-form", client.cookies.get("baoxue_login"), secret=DEFAULT_SECRET_KEY)
    web["app"].state.settings.secret_key = "k" * 40
    r = client.post("/login", data={"username": "teacher", "password": PASSWORD, "csrf": forged}, follow_redirects=False)
    assert r.status_code == 403 and SESSION_COOKIE not in r.cookies
    assert page_login(client, "teacher", follow_redirects=False).status_code == 303


def test_logout_without_the_sessions_token_is_refused(web):
    client = web["client"]
    page_login(client, "teacher", follow_redirects=False)
    r = client.post("/logout", follow_redirects=False)
    assert r.status_code == 403
    assert client.get("/teacher", follow_redirects=False).status_code == 200
    r = client.post("/logout", data={"csrf": form_token(client)}, follow_redirects=False)
    assert r.status_code == 303 and client.get("/teacher", follow_redirects=False).status_code == 303


def test_unknown_wrong_locked_and_deactivated_get_the_same_answer(web):
    client = web["client"]
    with web["factory"]() as s:
        s.execute(update(User).where(User.username == "school_far").values(active=False))
        s.commit()
    for _ in range(MAX_FAILED_LOGINS):
        page_login(client, "township", "wrong-password")
    answers = set()
    for username, password in (("nobody-here", PASSWORD), ("teacher", "wrong-password"), ("township", PASSWORD),
                               ("school_far", PASSWORD)):
        r = page_login(client, username, password)
        body = r.text.replace(f'value="{username}"', "")
        answers.add((r.status_code, body.split('<p class="alert">')[1].split("</p>")[0]))
        t = client.post("/api/auth/token", json={"username": username, "password": password})
        answers.add((t.status_code, t.json()["message"]))
    assert answers == {(401, "用户名或密码不正确")}


# -- row 14: passwords never on argv; the CLI manages accounts --------------------------------------------------
@pytest.fixture
def cli_db(blank_db_url):
    """A migrated database of each kind that the CLI commits to for real."""
    from cli.main import app as cli

    result = CliRunner().invoke(cli, ["--db", blank_db_url, "init", "--at", "2026-09-01T07:00"])
    assert result.exit_code == 0, result.output
    yield blank_db_url
    from store.db import settings

    settings.cache_clear()


def _cli(db: str, *args: str, input: str | None = None, code: int = 0) -> str:
    from cli.main import app as cli

    result = CliRunner().invoke(cli, ["--db", db, *args], input=input)
    assert result.exit_code == code, result.output
    return result.output


def test_the_cli_takes_no_password_on_the_command_line(cli_db):
    out = _cli(cli_db, "user", "add", "argv", "--role", "county", "--password", "s3cret-pass", code=2)
    assert "No such option: --password" in out
    _cli(cli_db, "user", "add", "prompted", "--role", "county", input="s3cret-pass\ns3cret-pass\n")
    _cli(cli_db, "user", "add", "piped", "--role", "county", "--password-stdin", input="piped-pass-1\n")
    from store.db import make_engine, session_factory

    engine = make_engine(cli_db)
    with session_factory(engine)() as s:
        assert authenticate(s, username="prompted", password="s3cret-pass", now=MONDAY) is not None
        assert authenticate(s, username="piped", password="piped-pass-1", now=MONDAY) is not None
        s.commit()
    engine.dispose()


def test_the_cli_resets_deactivates_and_revokes(cli_db):
    import json

    from store.db import make_engine, session_factory

    _cli(cli_db, "user", "add", "zhang", "--role", "county", "--password-stdin", input="first-pass-1\n")
    engine = make_engine(cli_db)
    factory = session_factory(engine)
    with factory() as s:
        user = s.scalar(select(User).where(User.username == "zhang"))
        now = datetime.now().replace(microsecond=0)
        first, second = (issue_token(s, user, name=n, now=now) for n in ("a", "b"))
        start_session(s, user, now=now)
        s.commit()
    tokens = json.loads(_cli(cli_db, "user", "tokens", "zhang", "--json"))
    assert [t["status"] for t in tokens] == ["active", "active"]
    _cli(cli_db, "user", "revoke-token", "zhang", str(tokens[-1]["id"]))
    _cli(cli_db, "user", "revoke-token", "zhang", str(tokens[-1]["id"]), code=1)  # already revoked
    with factory() as s:
        assert token_user(s, first, now=now) is None and token_user(s, second, now=now) is not None
    _cli(cli_db, "user", "deactivate", "zhang")
    with factory() as s:
        assert token_user(s, second, now=now) is None
        assert authenticate(s, username="zhang", password="first-pass-1", now=now) is None
        assert s.scalar(select(LoginSession.id)) is None
    _cli(cli_db, "user", "activate", "zhang")
    _cli(cli_db, "user", "passwd", "zhang", "--password-stdin", input="second-pass-2\n")
    listed = json.loads(_cli(cli_db, "user", "list", "--json"))
    assert [(u["username"], u["active"]) for u in listed] == [("zhang", True)]
    with factory() as s:
        assert authenticate(s, username="zhang", password="first-pass-1", now=now) is None
        assert authenticate(s, username="zhang", password="second-pass-2", now=now) is not None
        s.commit()
    _cli(cli_db, "user", "passwd", "nobody", "--password-stdin", input="whatever-1\n", code=1)
    engine.dispose()


# -- row 14: the secret key ---------------------------------------------------------------------------
def test_production_refuses_the_default_secret_key(tmp_path):
    with pytest.raises(ValidationError, match="BAOXUE_SECRET_KEY"):
        Settings(production=True)
    with pytest.raises(ValidationError):
        Settings(production=True, secret_key="short")
    assert Settings(production=True, secret_key="s" * 40).secret_key == "s" * 40
    from web.app import create_app

    with pytest.raises(ValidationError):
        create_app(Settings.model_construct(production=True, secret_key=DEFAULT_SECRET_KEY,
                                            database_url=f"sqlite:///{tmp_path / 'x.db'}"), init=False)
    env = {"PATH": "/usr/bin:/bin", "BAOXUE_PRODUCTION": "1", "PREFECT_API_URL": "http://10.1.2.3:4200/api"}
    check = [str(ROOT / "deploy/production/check-env.sh")]
    r = subprocess.run(check, env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "BAOXUE_SECRET_KEY" in r.stderr
    r = subprocess.run(check, env=env | {"BAOXUE_SECRET_KEY": "k" * 64}, capture_output=True, text=True)
    assert r.returncode == 2 and "PREFECT_API_AUTH_STRING" in r.stderr
    r = subprocess.run(check, env=env | {"BAOXUE_SECRET_KEY": "k" * 64, "PREFECT_API_AUTH_STRING": "baoxue:pw"},
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
