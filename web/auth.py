"""Logging in and out: password login with a session cookie for the pages, tokens for the API.

The cookie holds a random session token (only its hash is stored); each form carries the
session's CSRF token, checked by :func:`check_csrf` on every page POST.
"""
from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from store.accounts import ROLE_LABELS, Role, authenticate, end_session, is_locked, issue_token, revoke_token, start_session

from .deps import SESSION_COOKIE, ApiError, Principal, api_user, get_db, get_now, settings_of

router = APIRouter()
api_router = APIRouter(prefix="/api/auth", tags=["登录 auth"])

HOME_BY_ROLE = {
    Role.head_teacher: "/teacher", Role.school_staff: "/school", Role.township: "/stuck", Role.county: "/overview",
    Role.operator: "/runs",
}
BAD_LOGIN = "用户名或密码不正确"
LOCKED = "密码错误次数过多，账号已暂时锁定 15 分钟，请稍后再试或联系管理员"


def check_csrf(who: Principal, token: str | None) -> None:
    if not token or token != who.csrf:
        raise ApiError(403, "页面已过期，请刷新后重新提交 (form expired: reload the page)")


def _safe_next(target: str | None) -> str:
    return target if target and target.startswith("/") and not target.startswith("//") else "/"


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_form(request: Request, next: str = "/"):
    from .pages import render

    return render(request, "login.html", None, error=None, next=_safe_next(next), username="")


@router.post("/login", include_in_schema=False)
def login(request: Request, username: str = Form(""), password: str = Form(""), next: str = Form("/"),
          db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    user = authenticate(db, username=username, password=password, now=now)
    if user is None:
        locked = is_locked(db, username, now)
        db.commit()  # the failure count
        from .pages import render

        return render(request, "login.html", None, status=401, error=LOCKED if locked else BAD_LOGIN,
                      next=_safe_next(next), username=username)
    raw, _ = start_session(db, user, now=now, hours=settings_of(request).session_hours)
    db.commit()
    target = _safe_next(next)
    response = RedirectResponse(HOME_BY_ROLE[Role(user.role)] if target == "/" else target, status_code=303)
    response.set_cookie(SESSION_COOKIE, raw, httponly=True, samesite="lax", secure=settings_of(request).cookie_secure,
                        max_age=settings_of(request).session_hours * 3600, path="/")
    return response


@router.post("/logout", include_in_schema=False)
def logout(request: Request, db: Session = Depends(get_db)):
    end_session(db, request.cookies.get(SESSION_COOKIE))
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
    name: str = Field("api", description="令牌用途，如「学籍系统对接」")
    days: int | None = Field(90, ge=1, le=3650, description="有效天数；null 为长期有效")


class TokenOut(BaseModel):
    token: str
    role: str
    role_label: str
    display_name: str


@api_router.post("/token", response_model=TokenOut, summary="用户名和密码换取访问令牌 (get an API token)")
def create_token(body: TokenRequest, db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    user = authenticate(db, username=body.username, password=body.password, now=now)
    if user is None:
        locked = is_locked(db, body.username, now)
        db.commit()
        raise ApiError(401, LOCKED if locked else BAD_LOGIN)
    raw = issue_token(db, user, name=body.name, now=now, days=body.days)
    db.commit()
    return TokenOut(token=raw, role=user.role, role_label=ROLE_LABELS[Role(user.role)], display_name=user.display_name)


@api_router.delete("/token", status_code=204, summary="注销当前令牌 (revoke the token in use)")
def delete_token(request: Request, who: Principal = Depends(api_user), db: Session = Depends(get_db),
                 now: datetime = Depends(get_now)):
    revoke_token(db, request.headers["authorization"][7:].strip(), now=now)
    db.commit()
