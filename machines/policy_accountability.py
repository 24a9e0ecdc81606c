"""Accountability as policy data (seed 001 责任追究制度, seed 003 班主任控辍保学责任书): the 包保 chain's roles,
who signs the yearly 责任书 and by when, who may hold a 约谈, and whether the townships are ranked."""
from __future__ import annotations

import calendar

from pydantic import BaseModel, ConfigDict, Field, model_validator


class AccountabilityRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # 包保 chain of every pupil (seed 003 一 双线目标责任制: 校长包学校、班主任包班级…、镇长包全镇、村长包片)
    chain_roles: list[str] = Field(["head_teacher", "principal"], min_length=1)
    # the yearly 控辍保学目标责任书 (seed 003 一 逐级签订): who signs one, and the day it is due (month, day)
    pledge_roles: list[str] = ["head_teacher"]
    pledge_due_month: int = Field(9, ge=1, le=12)
    pledge_due_day: int = Field(30, ge=1, le=30)
    pledge_title: str = "班主任控辍保学责任书"
    # 约谈: the follow-up of the rectification is due this many days after the deadline is reached
    talk_followup_days: int = Field(0, ge=0, le=30)
    # township ranking by dropout rate and timeliness (seed 001 毕节 一–三; seed 003 五 每年度两次专项督查、通报)
    ranking: bool = False
    ranking_bottom: int = Field(2, ge=0, le=50)  # the bottom places named (后__位)
    # 评优一票否决 (seed 003 三.4, 五): hidden dropouts veto as well as a rate over the standard
    veto_hidden_dropouts: bool = True

    @model_validator(mode="after")
    def _pledge_day_exists(self) -> "AccountabilityRules":
        # a day every year has (no 30 February, no 29 February that three years in four lack)
        last = calendar.monthrange(2001, self.pledge_due_month)[1]
        if self.pledge_due_day > last:
            raise ValueError(f"责任书截止日 {self.pledge_due_month} 月 {self.pledge_due_day} 日不存在（该月最多 {last} 日） — "
                             f"pledge_due_day {self.pledge_due_day} does not exist in month {self.pledge_due_month}")
        return self

    def roles_used(self) -> list[str]:
        return [*self.chain_roles, *self.pledge_roles]
