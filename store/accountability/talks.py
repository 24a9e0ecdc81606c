"""约谈 as a record (seed 001 四.1 诫勉谈话; 毕节 二: 约谈 the heads of the units at the bottom of the ranking).

A township or county official records a talk: who held it (the interviewer), with whom (a staff member or a
named head of a unit), when, about what (free text and the accountability evidence keys it cites), the
rectification items and their deadline. Its follow-up is a duty (kind ``talk`` of the duty ledger) of the
interviewer, due on the deadline; recording the outcome (整改到位 or not) completes it. A resubmission with
the same key records nothing new.
"""
from __future__ import annotations

import hashlib
from datetime import date, datetime, time, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from machines.vocabulary import INTERVIEW_LEVEL_LABELS, INTERVIEW_STATUS_LABELS

from store.access.scope import EVERYTHING, Scope
from store.models import School, Staff
from store.models.accountability import Interview, TalkDuty
from store.policy_files import PolicyRegistry

LEVEL_ROLE = {"township": "township", "county": "education_bureau"}  # who owes the follow-up, as a duty role


class TalkError(ValueError):
    """The talk cannot be recorded as asked; the message is for staff (中文 English)."""


def _text(v: str) -> str:
    v = (v or "").strip()
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in v):
        raise ValueError("含有控制字符 (control character)")
    return v


class TalkForm(BaseModel):
    """What the official enters (page, API, CLI): bounded, checked before anything is written."""

    model_config = ConfigDict(extra="forbid")
    interviewee: str = Field(min_length=1, max_length=32)
    interviewee_staff_id: int | None = Field(None, ge=1)
    interviewee_role: str | None = Field(None, max_length=32)
    school_code: str | None = Field(None, max_length=32)
    held_at: datetime
    subject: str = Field(min_length=1, max_length=255)
    evidence: list[str] = Field([], max_length=200)
    items: list[str] = Field(min_length=1, max_length=20)
    deadline: date
    key: str | None = Field(None, max_length=64, description="幂等键：重复提交不重复记录")

    _clean = field_validator("interviewee", "subject", "interviewee_role", "school_code")(
        lambda v: _text(v) if v is not None else v)

    @field_validator("items", "evidence")
    @classmethod
    def _lines(cls, v: list[str]) -> list[str]:
        out = [_text(x)[:200] for x in v]
        return [x for x in out if x]


def record_talk(session: Session, form: TalkForm, *, level: str, interviewer: str, interviewer_id: int | None,
                actor: str, now: datetime, scope: Scope = EVERYTHING) -> tuple[Interview, bool]:
    """Record the talk and its follow-up duty; returns (talk, created). Idempotent on ``form.key``."""
    if level not in LEVEL_ROLE:
        raise TalkError(f"约谈层级应为 township 或 county (level {level!r})")
    if not form.items:
        raise TalkError("至少填写一项整改事项 (at least one rectification item)")
    if form.deadline < form.held_at.date():
        raise TalkError("整改期限不能早于约谈日期 (deadline before the talk)")
    key = form.key or hashlib.sha256(f"{level}|{interviewer}|{form.interviewee}|{form.held_at.isoformat()}|{form.subject}"
                                     .encode()).hexdigest()[:40]
    found = session.scalar(select(Interview).where(Interview.key == key))
    if found is not None:
        return found, False
    school = None
    if form.school_code:
        school = session.scalar(select(School).where(School.code == form.school_code))
        if school is None or not school_in_scope(session, school.id, scope):
            raise TalkError(f"学校 {form.school_code} 不存在或不在您的管辖范围内 (school not in scope)")
    staff = session.get(Staff, form.interviewee_staff_id) if form.interviewee_staff_id else None
    if form.interviewee_staff_id and staff is None:
        raise TalkError("被约谈人不存在 (no such staff member)")
    talk = Interview(key=key, level=level, interviewer_id=interviewer_id, interviewer=interviewer[:32],
                     interviewee=form.interviewee, interviewee_staff_id=staff.id if staff else None,
                     interviewee_role=form.interviewee_role or (staff.role if staff else None),
                     school_id=school.id if school else (staff.school_id if staff else None), held_at=form.held_at,
                     subject=form.subject, evidence=form.evidence, items=form.items, deadline=form.deadline,
                     status="open", recorded_by=actor, recorded_at=now)
    session.add(talk)
    session.flush()
    days = _followup_days(session, talk.school_id)
    session.add(TalkDuty(interview_id=talk.id, school_id=talk.school_id, action="talk_followup", role=LEVEL_ROLE[level],
                         owner_id=interviewer_id, label=f"约谈整改跟踪：{form.subject}"[:128],
                         due_at=datetime.combine(form.deadline + timedelta(days=days), time(17, 0)), status="open",
                         created_at=now))
    session.flush()
    return talk, True


def _followup_days(session: Session, school_id: int | None) -> int:
    policy_name = session.scalar(select(School.policy_name).where(School.id == school_id)) if school_id else None
    try:
        return PolicyRegistry(session).get(policy_name or "default").accountability.talk_followup_days
    except Exception:  # no such policy loaded (a bare test database): the follow-up is due on the deadline
        return 0


def record_outcome(session: Session, talk_id: int, *, rectified: bool, outcome: str, actor: str, now: datetime,
                   scope: Scope = EVERYTHING) -> Interview:
    """The follow-up's result: 整改到位 (rectified) or not, in words; completes the follow-up duty. Recording it
    again changes nothing (the first outcome stands)."""
    talk = talk_in_scope(session, talk_id, scope)
    if talk is None:
        raise TalkError("约谈记录不存在，或不在您的管辖范围内 (talk not found)")
    outcome = _text(outcome)[:2000]
    if not outcome:
        raise TalkError("请填写整改结果 (the outcome is required)")
    if talk.status != "open":
        return talk
    talk.status, talk.outcome, talk.outcome_at, talk.outcome_by = ("rectified" if rectified else "not_rectified",
                                                                    outcome, now, actor)
    duty = session.scalar(select(TalkDuty).where(TalkDuty.interview_id == talk.id))
    if duty is not None and duty.status in ("open", "overdue"):
        duty.status, duty.done_at, duty.done_by = "done", now, actor
    session.flush()
    return talk


def talk_in_scope(session: Session, talk_id: int, scope: Scope) -> Interview | None:
    talk = session.get(Interview, talk_id)
    if talk is None:
        return None
    if scope.township_ids is None and scope.school_ids is None and scope.class_ids is None:
        return talk
    return talk if talk.school_id is not None and school_in_scope(session, talk.school_id, scope) else None


def school_in_scope(session: Session, school_id: int, scope: Scope) -> bool:
    """A school an office may hold talks about: any (county), its townships' (township); never a class's reader."""
    if scope.class_ids is not None:
        return False
    q = select(School.id).where(School.id == school_id)
    if scope.school_ids is not None:
        q = q.where(School.id.in_(scope.school_ids))
    if scope.township_ids is not None:
        q = q.where(School.township_id.in_(scope.township_ids))
    return session.scalar(q) is not None


def talks(session: Session, scope: Scope = EVERYTHING, *, status: str | None = None) -> list[dict[str, Any]]:
    q = select(Interview, School.name, TalkDuty).outerjoin(School, School.id == Interview.school_id) \
        .outerjoin(TalkDuty, TalkDuty.interview_id == Interview.id).order_by(Interview.held_at.desc(), Interview.id.desc())
    if status:
        q = q.where(Interview.status == status)
    whole = scope.township_ids is None and scope.school_ids is None and scope.class_ids is None
    if not whole:
        if scope.class_ids is not None:
            return []
        q = scope.apply(q, school_col=Interview.school_id, class_col=Interview.school_id)
    return [as_dict(t, school, duty) for t, school, duty in session.execute(q)]


def as_dict(t: Interview, school: str | None, duty: TalkDuty | None) -> dict[str, Any]:
    return {"id": t.id, "level": t.level, "level_label": INTERVIEW_LEVEL_LABELS.get(t.level, t.level),
            "interviewer": t.interviewer, "interviewee": t.interviewee, "interviewee_role": t.interviewee_role,
            "school": school, "held_at": t.held_at, "subject": t.subject, "evidence": list(t.evidence or []),
            "items": list(t.items or []), "deadline": t.deadline, "status": t.status,
            "status_label": INTERVIEW_STATUS_LABELS.get(t.status, t.status), "outcome": t.outcome,
            "outcome_at": t.outcome_at, "outcome_by": t.outcome_by, "recorded_by": t.recorded_by,
            "followup": None if duty is None else {"duty_id": duty.id, "due_at": duty.due_at, "status": duty.status,
                                                   "done_at": duty.done_at}}


def talk_detail(session: Session, talk_id: int, scope: Scope = EVERYTHING) -> dict[str, Any] | None:
    talk = talk_in_scope(session, talk_id, scope)
    if talk is None:
        return None
    school = session.scalar(select(School.name).where(School.id == talk.school_id)) if talk.school_id else None
    duty = session.scalar(select(TalkDuty).where(TalkDuty.interview_id == talk.id))
    return as_dict(talk, school, duty)
