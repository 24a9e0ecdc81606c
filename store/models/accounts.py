"""Accounts: users with a role and a place (school, township, classes), page sessions, API tokens.

Passwords are stored as argon2id hashes; session cookies and API tokens only as their SHA-256, so
a copy of the database lets nobody log in. What a user may see follows from the role and the
place (``store.access.accounts.scope_of``), never from the request.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from store.models import Base


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str | None] = mapped_column(String(255))  # None: token-only account
    role: Mapped[str] = mapped_column(String(16))  # head_teacher | school_staff | township | county | operator
    school_id: Mapped[int | None] = mapped_column(ForeignKey("schools.id"), index=True)
    township_id: Mapped[int | None] = mapped_column(ForeignKey("jurisdictions.id"), index=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime)

    classes: Mapped[list["UserClass"]] = relationship(cascade="all, delete-orphan", order_by="UserClass.class_id")


class UserClass(Base):
    """Classes a head teacher account covers besides those the staff record heads."""

    __tablename__ = "user_classes"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"), primary_key=True)


class LoginSession(Base):
    """A browser session: the cookie holds the raw token, the row its hash and the form (CSRF) token."""

    __tablename__ = "login_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime)


class ApiToken(Base):
    """A bearer token for the REST API (``Authorization: Bearer bx_…``)."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))  # shown in lists: "bx_AbCd…"
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
