"""The life of a referred case after the school's ladder, as policy data (``[referral.<reason>]``).

A case handed outside the school (``escalate_outside``: whereabouts unknown, working away, refusal after
the legal notice) is not closed: it is tracked until the pupil returns (seed 000 §二.5, §三.2–3; seed 001
二.6 追踪和回访; seed 002 3.5 辍学追踪). Each referral reason names the papers issued on referral and the
follow-up duties that recur every ``every_school_days`` school days until the case returns or is excused.
"""
from __future__ import annotations

from datetime import time

from pydantic import BaseModel, ConfigDict, Field, field_validator

from machines.states import FOLLOW_UP_ACTIONS, LADDER_ACTIONS, Action


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FollowUpDuty(_Strict):
    """A recurring duty of a referred case: the next one is due ``every_school_days`` school days after
    the sweep finds the previous one done or overdue (the first: after the referral)."""

    action: Action
    role: str
    every_school_days: int = Field(ge=1, le=60)
    due_time: time = time(17, 0)

    @field_validator("action")
    @classmethod
    def _follow_up_action(cls, v: Action) -> Action:
        if v not in FOLLOW_UP_ACTIONS and v not in LADDER_ACTIONS:
            raise ValueError(f"{v.value} is not an action")
        return v


class ReferralSpec(_Strict):
    """What a referral for one reason brings: its papers and its recurring duties."""

    documents: list[str] = Field([], description="document kinds issued on referral, besides the outside rule's")
    duties: list[FollowUpDuty] = []
    legal_measure: str = Field("", max_length=40, description="e.g. 提起公诉 / 提起诉讼 / 行政处罚 (refusal only)")
