"""三帮一 (seed 000 §三.1: 确定每名辍学学生有三名帮扶责任人): who the helpers of a dropout must be.

Pure: the policy says how many named helpers a case needs (``Policy.helpers_required``) and which
of its roles they must cover (``[three_helpers] roles``; seed 003's 双线责任制 — 班主任包班级、任课教师包学生、
村(队)长包村 — gives the default 班主任, a teacher and a village cadre). :func:`helper_problems` says, in
Chinese, what an ``assign_helpers`` is missing; the store refuses the action while it says anything.
"""
from __future__ import annotations

from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field


class HelperRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    roles: list[str] = Field(default_factory=list, description="policy roles the named helpers must cover, one helper each at least")


def resolve_role(role: str, roles: Mapping[str, str]) -> str | None:
    """A helper's role as entered (the policy's role id or its Chinese label) → the role id, or None."""
    role = (role or "").strip()
    if role in roles:
        return role
    return next((rid for rid, label in roles.items() if label == role), None)


def helper_problems(helpers: list[Mapping[str, Any]], *, required: int, must_cover: list[str],
                    roles: Mapping[str, str]) -> list[str]:
    """What ``helpers`` (name, role) lack for the policy's 三帮一; empty when complete."""
    if required == 0 and not must_cover:  # a policy without 三帮一 (seed 002 靖边): any named helper will do
        return []
    problems: list[str] = []
    names = {h.get("name", "").strip() for h in helpers if h.get("name", "").strip()}
    if len(names) < required:
        problems.append(f"三帮一须落实{required}名帮扶责任人（不同的人），本次只有{len(names)}名")
    unknown = [h.get("role") or "" for h in helpers if resolve_role(h.get("role") or "", roles) is None]
    if unknown:
        allowed = "、".join(roles[r] for r in must_cover) if must_cover else "、".join(roles.values())
        problems.append("帮扶责任人的职务须为本策略的角色（如" + allowed + "），不认识："
                        + "、".join(u or "（未填）" for u in unknown))
    covered = {resolve_role(h.get("role") or "", roles) for h in helpers}
    missing = [r for r in must_cover if r not in covered]
    if missing:
        problems.append("三帮一须包括：" + "、".join(roles.get(r, r) for r in missing))
    return problems
