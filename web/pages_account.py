"""Account pages and API: one's own password and tokens; deactivating and resetting accounts.

/account: everyone changes their password (all their sessions and tokens end, they log in
again) and lists and revokes their own API tokens. /admin/users: the account administrators
(``store.access.accounts.ADMIN_ROLES``: 县教育局, 系统运维) deactivate, reactivate and reset accounts;
a reset shows a random password once. Every form carries the session's CSRF token.
"""
from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from store.models.accounts import User
from store.access.accounts import (
    ADMIN_ROLES, AccountError, change_password, list_users, reset_password, revoke_own_token, set_active, tokens_of,
)

from web.deps import DbId
from web.auth import check_csrf
from web.deps import ApiError, Principal, api_user, get_db, get_now, page_user, roles

router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api/auth", tags=["登录 auth"])
admin_page = roles(*ADMIN_ROLES, api=False)
NO_SUCH_USER = "账号不存在 (no such account)"


def _render(request: Request, name: str, who: Principal, status: int = 200, **context):
    from web.shell import render

    return render(request, name, who, status=status, **context)


def token_rows(db: Session, who: Principal, now: datetime) -> list[dict]:
    return [{"id": t.id, "name": t.name, "prefix": t.prefix, "created_at": t.created_at, "expires_at": t.expires_at,
             "last_used_at": t.last_used_at,
             "status": "revoked" if t.revoked_at else "expired" if t.expires_at <= now else "active"}
            for t in tokens_of(db, who.user)]


# -- one's own account ------------------------------------------------------------------------------
@router.get("/account")
def account_page(request: Request, who: Principal = Depends(page_user), db: Session = Depends(get_db),
                 now: datetime = Depends(get_now)):
    return _render(request, "account.html", who, tokens=token_rows(db, who, now), error=None, done=None)


@router.post("/account/password")
def account_password(request: Request, old: str = Form(""), new: str = Form(""), again: str = Form(""),
                     csrf: str = Form(""), who: Principal = Depends(page_user), db: Session = Depends(get_db),
                     now: datetime = Depends(get_now)):
    check_csrf(who, csrf)
    try:
        if new != again:
            raise AccountError("两次输入的新密码不一致 (the new passwords differ)")
        change_password(db, who.user, old=old, new=new, now=now)
    except AccountError as exc:
        db.rollback()
        return _render(request, "account.html", who, status=422, tokens=token_rows(db, who, now), error=str(exc),
                       done=None)
    db.commit()  # every session (this one too) and token has ended: log in with the new password
    return RedirectResponse("/login", status_code=303)


@router.post("/account/tokens/{token_id}/revoke")
def account_revoke(request: Request, token_id: DbId, csrf: str = Form(""), who: Principal = Depends(page_user),
                   db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    check_csrf(who, csrf)
    if not revoke_own_token(db, who.user, token_id, now=now):
        raise ApiError(404, "令牌不存在或已注销 (no such token)")
    db.commit()
    return RedirectResponse("/account", status_code=303)


# -- administrators ---------------------------------------------------------------------------------
def _target(db: Session, user_id: int) -> User:
    user = db.get(User, user_id)
    if user is None:
        raise ApiError(404, NO_SUCH_USER)
    return user


@router.get("/admin/users")
def admin_users(request: Request, who: Principal = Depends(admin_page), db: Session = Depends(get_db),
                now: datetime = Depends(get_now)):
    return _render(request, "admin_users.html", who, users=list_users(db), new_password=None, now=now)


@router.post("/admin/users/{user_id}/active")
def admin_set_active(request: Request, user_id: DbId, active: bool = Form(...), csrf: str = Form(""),
                     who: Principal = Depends(admin_page), db: Session = Depends(get_db),
                     now: datetime = Depends(get_now)):
    check_csrf(who, csrf)
    try:
        set_active(db, _target(db, user_id), active, now=now, by=who.user)
    except AccountError as exc:
        raise ApiError(422, str(exc)) from None
    db.commit()
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/admin/users/{user_id}/password")
def admin_reset_password(request: Request, user_id: DbId, csrf: str = Form(""), who: Principal = Depends(admin_page),
                         db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    check_csrf(who, csrf)
    user = _target(db, user_id)
    try:
        password = reset_password(db, user, now=now, by=who.user)
    except AccountError as exc:
        raise ApiError(422, str(exc)) from None
    db.commit()
    if user.id == who.user.id:  # one's own sessions ended with it
        return RedirectResponse("/login", status_code=303)
    return _render(request, "admin_users.html", who, users=list_users(db), now=now,
                   new_password={"username": user.username, "password": password})


@router.post("/admin/users/from-staff")
def admin_add_from_staff(request: Request, username: str = Form(..., max_length=64), phone: str = Form(..., max_length=20),
                         csrf: str = Form(""), who: Principal = Depends(admin_page), db: Session = Depends(get_db),
                         now: datetime = Depends(get_now)):
    """An account for a person on the staff list (role and place from the record); its password shown once."""
    from store.access.staff_accounts import account_for_staff, staff_by_phone

    check_csrf(who, csrf)
    try:
        user, password = account_for_staff(db, staff_by_phone(db, phone), username=username, now=now, by=who.user)
    except AccountError as exc:
        raise ApiError(422, str(exc)) from None
    db.commit()
    return _render(request, "admin_users.html", who, users=list_users(db), now=now,
                   new_password={"username": user.username, "password": password})


@router.post("/admin/users/{user_id}/reassign")
def admin_reassign(request: Request, user_id: DbId, phone: str = Form(..., max_length=20), csrf: str = Form(""),
                   who: Principal = Depends(admin_page), db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    """The account now belongs to another staff record: role, place and classes follow it."""
    from store.access.staff_accounts import reassign, staff_by_phone

    check_csrf(who, csrf)
    try:
        reassign(db, _target(db, user_id), staff_by_phone(db, phone), now=now, by=who.user)
    except AccountError as exc:
        raise ApiError(422, str(exc)) from None
    db.commit()
    return RedirectResponse("/admin/users", status_code=303)


# -- the same for API clients -------------------------------------------------------------------------
class TokenInfo(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    status: str


class PasswordChange(BaseModel):
    old: str = Field(max_length=256, description="当前密码")
    new: str = Field(max_length=256, description="新密码（至少 8 位）")


@api_router.get("/tokens", response_model=list[TokenInfo], summary="我的访问令牌 (list my API tokens)")
def api_tokens(who: Principal = Depends(api_user), db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    return token_rows(db, who, now)


@api_router.delete("/tokens/{token_id}", status_code=204, summary="注销我的一个令牌 (revoke one of my tokens)")
def api_revoke(token_id: DbId, who: Principal = Depends(api_user), db: Session = Depends(get_db),
               now: datetime = Depends(get_now)):
    if not revoke_own_token(db, who.user, token_id, now=now):
        raise ApiError(404, "令牌不存在或已注销 (no such token)")
    db.commit()


@api_router.post("/password", status_code=204,
                 summary="修改我的密码：所有会话和令牌（含当前令牌）随之失效 (change my password)")
def api_password(body: PasswordChange, who: Principal = Depends(api_user), db: Session = Depends(get_db),
                 now: datetime = Depends(get_now)):
    try:
        change_password(db, who.user, old=body.old, new=body.new, now=now)
    except AccountError as exc:
        db.rollback()
        raise ApiError(422, str(exc)) from None
    db.commit()
