"""Helpers for the web tests: a small county with one account per role, a movable clock, a live server."""
from __future__ import annotations

import io

import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterator

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

import store.access.accounts as accounts
from store.models.accounts import User
from store.access.accounts import Role, create_user, issue_token, start_session
from store.calendars import calendars, materialise
from store.models import Case, Jurisdiction, Pupil, School, SchoolClass, Staff
from store.policy_files import load_policies_into
from demo.synthetic import Size, generate_county

PASSWORD = "mima-2026-test"
MONDAY = datetime(2026, 11, 16, 8, 0)  # a school day; Tuesday the 17th is one too

# Cheap hashing for tests (the production parameters cost ~150 ms a hash).
accounts.hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


class Clock:
    """The app's clock; a test moves it with ``clock.at = datetime(...)``."""

    def __init__(self, at: datetime = MONDAY):
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@dataclass
class County:
    """Two townships with two schools each; accounts in township 1 / school 1 / class 1, and an
    account of every school role in the *other* places, to prove they cannot see each other."""

    users: dict[str, int] = field(default_factory=dict)        # username → user id
    tokens: dict[str, str] = field(default_factory=dict)       # username → API token
    cookies: dict[str, str] = field(default_factory=dict)      # username → session cookie
    csrf: dict[str, str] = field(default_factory=dict)
    school_codes: list[str] = field(default_factory=list)
    class_ids: list[int] = field(default_factory=list)


def build_county(session: Session, *, now: datetime = MONDAY, sessions: bool = True) -> County:
    """Policies, calendar, a generated county and accounts (with tokens and page sessions)."""
    load_policies_into(session, now=now)
    for cal in calendars().values():
        materialise(session, cal)
    generate_county(session, seed=11, size=Size(townships=2, schools_per_township=2, grades=(1, 2), pupils_per_class=6))
    schools = session.scalars(select(School).order_by(School.id)).all()
    towns = session.scalars(select(Jurisdiction).where(Jurisdiction.level == "township").order_by(Jurisdiction.id)).all()
    county = County(school_codes=[s.code for s in schools])

    def klass(school: School, n: int = 0) -> SchoolClass:
        return session.scalars(select(SchoolClass).where(SchoolClass.school_id == school.id).order_by(SchoolClass.id)).all()[n]

    def staff(school: School, role: str) -> int | None:
        return session.scalar(select(Staff.id).where(Staff.school_id == school.id, Staff.role == role))

    t1_schools = [s for s in schools if s.township_id == towns[0].id]
    t2_schools = [s for s in schools if s.township_id == towns[1].id]
    home, sibling, far = t1_schools[0], t1_schools[1], t2_schools[0]
    c_home, c_sibling_class = klass(home, 0), klass(home, 1)
    county.class_ids = [c_home.id, c_sibling_class.id]
    plan = {
        # the "home" accounts: a class of school 1 of township 1
        "teacher": dict(role=Role.head_teacher, school_id=home.id, staff_id=c_home.head_teacher_id),
        "school": dict(role=Role.school_staff, school_id=home.id, staff_id=staff(home, "academic_office")),
        "township": dict(role=Role.township, township_id=towns[0].id),
        "county": dict(role=Role.county),
        "operator": dict(role=Role.operator),
        # the others, each one step away
        "teacher_next_class": dict(role=Role.head_teacher, school_id=home.id, staff_id=c_sibling_class.head_teacher_id),
        "teacher_other_school": dict(role=Role.head_teacher, school_id=sibling.id, staff_id=klass(sibling).head_teacher_id),
        "school_other": dict(role=Role.school_staff, school_id=sibling.id),
        "school_far": dict(role=Role.school_staff, school_id=far.id),
        "township_other": dict(role=Role.township, township_id=towns[1].id),
    }
    for name, place in plan.items():
        user = create_user(session, username=name, password=PASSWORD, now=now, **place)
        county.users[name] = user.id
        county.tokens[name] = issue_token(session, user, name="test", now=now)
        if sessions:
            raw, row = start_session(session, user, now=now, hours=24 * 30)
            county.cookies[name] = raw
            county.csrf[name] = row.csrf_token
    session.flush()
    return county


def in_process_app(factory, archive_dir, clock=None):
    """The web app on ``factory`` with flows run in-process (no Prefect server) and a fixed clock."""
    from store.db import Settings
    from web.app import create_app
    from web.services import InProcess

    return create_app(Settings(archive_dir=archive_dir), factory=factory, clock=clock or Clock(),
                      deployments=InProcess(), init=False)


def pupils_of_class(session: Session, class_id: int) -> list[Pupil]:
    return list(session.scalars(select(Pupil).where(Pupil.class_id == class_id).order_by(Pupil.id)))


def staff_name(session: Session, school_code: str, role: str) -> str:
    return session.scalar(select(Staff.name).join(School, School.id == Staff.school_id)
                          .where(School.code == school_code, Staff.role == role))


def user_named(session: Session, username: str) -> User:
    return session.scalar(select(User).where(User.username == username))


def open_case_ids(session: Session) -> list[int]:
    return list(session.scalars(select(Case.id).order_by(Case.id)))


@contextmanager
def live_server(app, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free port in a thread; yields the base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


# -- the browser ------------------------------------------------------------------------------------
CHROMIUM = "/usr/bin/chromium"  # Debian's build; never `playwright install`
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SCREENS = Path(__file__).resolve().parent / "_artifacts" / "screens"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run `make setup` (Debian package chromium)", pytrace=False)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def site(tmp_path):
    """A live server on its own SQLite file with a small county and its accounts: (url, factory, clock, county)."""
    from store.db import Settings, make_engine, session_factory, transaction
    from store.schema import migrate
    from web.app import create_app
    from web.services import InProcess

    url = f"sqlite:///{tmp_path / 'browser.db'}"
    engine = make_engine(url)
    migrate(engine)
    factory = session_factory(engine)
    with transaction(factory) as s:
        county = build_county(s, sessions=False)
    clock = Clock()
    app = create_app(Settings(database_url=url, archive_dir=tmp_path / "archive"), factory=factory, clock=clock,
                     deployments=InProcess())
    with live_server(app) as base:
        yield base, factory, clock, county
    engine.dispose()


def shot(page, name: str) -> None:
    """A full-page screenshot under tests/_artifacts/screens/ (the best go to docs/img/screens/)."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / f"{name}.png"), full_page=True)


def login(browser, base: str, username: str):
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    page = context.new_page()
    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('登 录')")
    return page


def page_login(client, username: str, password: str = PASSWORD, **kw):
    """POST /login as the browser does: the form's token comes with the login page (and its cookie)."""
    csrf = client.get("/login").text.split('name="csrf" value="')[1].split('"')[0]
    return client.post("/login", data={"username": username, "password": password, "csrf": csrf}, **kw)


def form_token(client, path: str = "/account") -> str:
    """The CSRF token of the signed-in session, as a page's forms carry it."""
    return client.get(path).text.split('name="csrf" value="')[1].split('"')[0]


class Zeros(io.RawIOBase):
    """``size`` bytes of "0", made as they are read and counted (never held by the test)."""

    def __init__(self, size: int):
        self.left = self.size = size

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = min(len(b), self.left)
        b[:n] = b"0" * n
        self.left -= n
        return n

    @property
    def sent(self) -> int:
        return self.size - self.left


def county_app_on_file(tmp_path):
    """(the web app, the school office's API token, the engine to dispose) of a county in a SQLite file
    under ``tmp_path``: for tests that serve the app over a real socket (``live_server``)."""
    from store.db import Settings, make_engine, session_factory, transaction
    from store.schema import migrate
    from web.app import create_app
    from web.services import InProcess

    url = f"sqlite:///{tmp_path / 'big.db'}"
    engine = make_engine(url)
    migrate(engine)
    with transaction(session_factory(engine)) as s:
        token = build_county(s, sessions=False).tokens["school"]
    app = create_app(Settings(database_url=url, archive_dir=tmp_path / "archive"), factory=session_factory(engine),
                     clock=Clock(), deployments=InProcess(), init=False)
    return app, token, engine
