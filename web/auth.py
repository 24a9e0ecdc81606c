"""Logging in and out: password login with a session cookie for the pages, tokens for the API.

The cookie holds a random session token (only its hash is stored); each form carries the
session's CSRF token, checked by :func:`check_csrf` on every page POST, logout included. The
login form comes before any session: its token is the HMAC (``secret_key``) of a random value
held in a short-lived cookie, so a page of another site cannot log a browser in (login CSRF).

Every refused login answers the same (:data:`BAD_LOGIN`): an unknown name, a wrong password, a
locked or a deactivated account cannot be told apart, so the form does not reveal who has an
account.
"""
from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

import secrets

from store.access.accounts import (
    ROLE_LABELS, AccountError, Role, authenticate, end_session, issue_token, revoke_token, session_user, start_session,
)
from store.access.signing import sign, verify

from web.deps import SESSION_COOKIE, ApiError, Principal, api_user, get_db, get_now, settings_of

router = APIRouter()
api_router = APIRouter(prefix="/api/auth", tags=["登录 auth"])

HOME_BY_ROLE = {
    Role.head_teacher: "/teacher", Role.school_staff: "/school", Role.township: "/stuck", Role.county: "/overview",
    Role.operator: "/runs",
}
BAD_LOGIN = "用户名或密码不正确"  # also for a locked or deactivated account: the answer reveals nothing
LOGIN_HINT = "连续输错 5 次后需等待 15 分钟再试；账号停用或忘记密码请联系县教育局系统管理员。"
LOGIN_COOKIE = "baoxue_login"  # the login form's random value (its HMAC is the form's token)
FORM_EXPIRED = "页面已过期，请刷新后重新提交 (form expired: reload the page)"


def same_token(given: object, expected: str | None) -> bool:
    """Constant-time comparison of a submitted form token (any text, even non-ASCII) with ours."""
    return bool(given) and bool(expected) and secrets.compare_digest(str(given).encode(), expected.encode())


def check_csrf(who: Principal, token: str | None) -> None:
    if not same_token(token, who.csrf):
        raise ApiError(403, FORM_EXPIRED)


def _login_token(request: Request, nonce: str) -> str:
    return sign("login-form", nonce, secret=settings_of(request).secret_key)


def _safe_next(target: str | None) -> str:
    return target if target and target.startswith("/") and not target.startswith("//") else "/"


def _login_page(request: Request, *, status: int = 200, error: str | None = None, next: str = "/",
                username: str = "", nonce: str | None = None):
    """The login form with a token bound to a fresh (or the current) value of the login cookie."""
    from web.shell import render

    nonce = nonce or secrets.token_urlsafe(24)
    response = render(request, "login.html", None, status=status, error=error, next=_safe_next(next),
                      username=username, csrf=_login_token(request, nonce), hint=LOGIN_HINT)
    response.set_cookie(LOGIN_COOKIE, nonce, httponly=True, samesite="strict", max_age=3600, path="/login",
                        secure=settings_of(request).cookie_secure)
    return response


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_form(request: Request, next: str = "/"):
    return _login_page(request, next=next)


@router.post("/login", include_in_schema=False)
def login(request: Request, username: str = Form(""), password: str = Form(""), next: str = Form("/"),
          csrf: str = Form(""), db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    nonce = request.cookies.get(LOGIN_COOKIE)
    if not nonce or not verify("login-form", nonce, csrf, secret=settings_of(request).secret_key):
        return _login_page(request, status=403, error=FORM_EXPIRED, next=next, username=username)
    user = authenticate(db, username=username, password=password, now=now)
    if user is None:
        db.commit()  # the failure count
        return _login_page(request, status=401, error=BAD_LOGIN, next=next, username=username, nonce=nonce)
    raw, _ = start_session(db, user, now=now, hours=settings_of(request).session_hours)
    db.commit()
    target = _safe_next(next)
    response = RedirectResponse(HOME_BY_ROLE[Role(user.role)] if target == "/" else target, status_code=303)
    response.set_cookie(SESSION_COOKIE, raw, httponly=True, samesite="lax", secure=settings_of(request).cookie_secure,
                        max_age=settings_of(request).session_hours * 3600, path="/")
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout", include_in_schema=False)
def logout(request: Request, csrf: str = Form(""), db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    """Ends the session; the form carries the session's CSRF token like every other form."""
    raw = request.cookies.get(SESSION_COOKIE)
    found = session_user(db, raw, now=now, hours=settings_of(request).session_hours)
    if found is not None:
        if not same_token(csrf, found[1].csrf_token):
            raise ApiError(403, FORM_EXPIRED)
        end_session(db, raw)
        db.commit()
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


# -- API tokens -----------------------------------------------------------------------------------
class TokenRequest(BaseModel):
    username: str = Field(description="用户名")
    password: str = Field(description="密码")
    name: str = Field("api", max_length=64, description="令牌用途，如「学籍系统对接」")
    days: int = Field(90, ge=1, description="有效天数，不超过系统设置的上限（默认 365 天）；令牌不能长期有效")


class TokenOut(BaseModel):
    token: str
    role: str
    role_label: str
    display_name: str


@api_router.post("/token", response_model=TokenOut, summary="用户名和密码换取访问令牌 (get an API token)")
def create_token(body: TokenRequest, request: Request, db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    user = authenticate(db, username=body.username, password=body.password, now=now)
    if user is None:
        db.commit()  # the failure count
        raise ApiError(401, BAD_LOGIN)
    try:
        raw = issue_token(db, user, name=body.name, now=now, days=body.days, max_days=settings_of(request).token_max_days)
    except AccountError as exc:
        db.rollback()
        raise ApiError(422, str(exc)) from None
    db.commit()
    return TokenOut(token=raw, role=user.role, role_label=ROLE_LABELS[Role(user.role)], display_name=user.display_name)


@api_router.delete("/token", status_code=204, summary="注销当前令牌 (revoke the token in use)")
def delete_token(request: Request, who: Principal = Depends(api_user), db: Session = Depends(get_db),
                 now: datetime = Depends(get_now)):
    revoke_token(db, request.headers["authorization"][7:].strip(), now=now)
    db.commit()
