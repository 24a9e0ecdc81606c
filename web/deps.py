"""Request dependencies: settings, the clock, a database session, and who is asking.

The app keeps everything it shares in ``app.state`` (made by ``web.app.create_app``): the
settings, the session factory, the clock and the deployment runner. Tests replace the clock
(``app.state.clock = lambda: datetime(...)``) to move time.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Callable, Iterator

from fastapi import Depends, Path as PathParam, Request
from sqlalchemy.orm import Session

from store.models.accounts import User
from store.access.accounts import Role, actor_of, scope_of, session_user, token_user
from store.access.masking import masked_for
from store.db import Settings
from store.models import Jurisdiction, School
from store.clock import SHANGHAI, local_now  # noqa: F401 - SHANGHAI: the pages' and API's time conversion
from store.access.scope import Scope

SESSION_COOKIE = "baoxue_session"


class WebSettings(Settings):
    """The store's settings plus what only the web app reads (``BAOXUE_*`` environment)."""

    session_hours: int = 12
    token_max_days: int = 365                        # no API token lives longer (BAOXUE_TOKEN_MAX_DAYS)
    cookie_secure: bool = False                      # set on a site served over HTTPS
    prefect_ui_url: str | None = None                # default: PREFECT_UI_URL, else the API URL less /api
    morning_check_deployment: str | None = None      # default: deploy.deployments' "morning-check" (flow/deployment)
    morning_check_parameter: str = "submission"      # the flow's parameter taking the submission
    fixed_clock: datetime | None = None              # a demo's stopped clock (BAOXUE_FIXED_CLOCK=2026-12-11T16:00)
    attachment_max_mb: int = 8                       # one cap for every attachment (photo, PDF): BAOXUE_ATTACHMENT_MAX_MB


shanghai_now = local_now  # the system clock (store.clock); the app takes its clock as a parameter


# -- errors the handlers in web.app turn into JSON (API) or a page --------------------------------------
class ApiError(Exception):
    """An error with a message a school clerk understands, and optionally one entry per bad row."""

    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None, **extra: Any):
        super().__init__(message)
        self.status, self.message, self.errors, self.extra = status, message, errors, extra

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message}
        if self.errors is not None:
            out["errors"] = self.errors
        return out | self.extra


class LoginRequired(Exception):
    """A page asked for without a valid session: the handler redirects to the login page."""


NOT_FOUND_CASE = "案件不存在，或不在您的管辖范围内 (case not found)"
FORBIDDEN = "您的账号无权进行此操作 (your role may not do this)"


# -- shared state ---------------------------------------------------------------------------------
def settings_of(request: Request) -> WebSettings:
    return request.app.state.settings


def get_now(request: Request) -> datetime:
    return request.app.state.clock()


def get_db(request: Request) -> Iterator[Session]:
    """One session per request. Handlers that write call ``db.commit()``; the rest is rolled back."""
    session = request.app.state.factory()
    try:
        yield session
    finally:
        session.close()


@dataclass
class Principal:
    """The signed-in user with what they may read."""

    user: User
    scope: Scope
    csrf: str | None = None  # page sessions only
    place: str = ""          # 城关镇石门小学 / 城关镇 / 全县

    @property
    def role(self) -> Role:
        return Role(self.user.role)

    @property
    def masked(self) -> bool:
        return masked_for(self.user)

    @property
    def actor(self) -> str:
        return actor_of(self.user)

    def is_(self, *roles: Role) -> bool:
        return self.role in roles


def _principal(db: Session, user: User, csrf: str | None = None) -> Principal:
    if user.school_id:
        place = db.get(School, user.school_id).name
    elif user.township_id:
        place = db.get(Jurisdiction, user.township_id).name
    else:
        place = "全县"
    return Principal(user=user, scope=scope_of(db, user), csrf=csrf, place=place)


def page_user(request: Request, db: Session = Depends(get_db), now: datetime = Depends(get_now)) -> Principal:
    found = session_user(db, request.cookies.get(SESSION_COOKIE), now=now, hours=settings_of(request).session_hours)
    if found is None:
        raise LoginRequired()
    user, row = found
    db.commit()  # the sliding expiry
    return _principal(db, user, row.csrf_token)


def api_user(request: Request, db: Session = Depends(get_db), now: datetime = Depends(get_now)) -> Principal:
    header = request.headers.get("authorization", "")
    raw = header[7:].strip() if header.lower().startswith("bearer ") else None
    user = token_user(db, raw, now=now)
    if user is None:
        raise ApiError(401, "请先登录：请求头缺少有效的访问令牌 Authorization: Bearer … (missing or invalid API token)")
    db.commit()  # last_used_at
    return _principal(db, user)


def roles(*allowed: Role, api: bool = True) -> Callable[..., Principal]:
    """A dependency that lets only ``allowed`` roles through (403 otherwise)."""
    base = api_user if api else page_user

    def check(who: Principal = Depends(base)) -> Principal:
        if who.role not in allowed:
            raise ApiError(403, FORBIDDEN)
        return who

    return check


PUPIL_READERS = (Role.head_teacher, Role.school_staff, Role.township, Role.county)
OFFICES = (Role.township, Role.county)


# An id in a path: a database key, 1 … 2³¹−1 (a larger or negative one is a 422, never a 500).
DbId = Annotated[int, PathParam(ge=1, le=2**31 - 1, description="编号")]
