"""API of the people's reporting (issue 17 items 1–3): the same operations as web/pages_reports.py."""
from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from store.access.accounts import Role
from store.reporting import people

from web.deps import OFFICES, PUPIL_READERS, DbId, Principal, get_db, get_now, roles
from web.pages_reports import (
    READERS, parse_day, parse_period, parse_quarter, readable_reports, record_result, resolve_result, submit_count,
    weekly_for, write_report,
)

router = APIRouter(prefix="/api")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

TAG = "报表报送 reports"


class ReportText(Strict):
    kind: str = Field("monthly", max_length=16)
    period: str = Field(..., max_length=16, description="2026-11，或学期第一天 20260901")
    problems: str | None = Field(None, max_length=2000, description="存在问题")
    next_steps: str | None = Field(None, max_length=2000, description="下一步工作安排")
    prepared_by: str | None = Field(None, max_length=32, description="填表人")
    approved_by: str | None = Field(None, max_length=32, description="负责人")
    reason: str | None = Field(None, max_length=255, description="更正原因")
    submit: bool = Field(False, description="true：签署报送（冻结为新版本）；false：保存草稿")


class WeeklyCountIn(Strict):
    class_id: int = Field(..., ge=1, lt=2**31)
    day: str = Field(..., max_length=10, description="2026-11-23")
    enrolled: int | None = Field(None, ge=0, le=10000)
    present: int | None = Field(None, ge=0, le=10000)
    absent: int | None = Field(None, ge=0, le=10000)
    dropouts: int | None = Field(None, ge=0, le=10000)
    note: str = Field("", max_length=255)


class SpotResultIn(Strict):
    quarter: str = Field(..., max_length=8)
    class_id: int = Field(..., ge=1, lt=2**31)
    enrolled: int = Field(..., ge=0, le=10000)
    present: int = Field(..., ge=0, le=10000)
    absent: int = Field(..., ge=0, le=10000)
    discrepancies: int = Field(0, ge=0, le=10000)
    findings: str = Field("", max_length=2000)
    inspector: str = Field(..., min_length=1, max_length=32, description="检查人员签字")


class Explanation(Strict):
    explanation: str = Field(..., min_length=1, max_length=2000)


@router.get("/submissions", tags=[TAG], summary="报告报送情况：起草、签署、各版本、逾期")
def list_submissions(kind: str = "monthly", period: str | None = None, who: Principal = Depends(roles(*READERS)),
                     db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    return readable_reports(db, who, kind, parse_period(kind, period, now), now)


@router.post("/submissions", tags=[TAG], summary="填写或签署报送本单位报告（学校、乡镇、县）")
def post_submission(body: ReportText, who: Principal = Depends(roles(*READERS)), db: Session = Depends(get_db),
                    now: datetime = Depends(get_now)):
    return write_report(db, who, now, body.model_dump(), submit=body.submit)


@router.get("/weekly-counts", tags=[TAG], summary="周查表：班级、学校、乡镇汇总")
def get_weekly(day: str | None = None, who: Principal = Depends(roles(*PUPIL_READERS)), db: Session = Depends(get_db),
               now: datetime = Depends(get_now)):
    return weekly_for(db, who, parse_day(day, now), now)


@router.post("/weekly-counts", tags=[TAG], summary="班主任报送本班周查（在册、在校、缺勤、辍学）")
def post_weekly(body: WeeklyCountIn, who: Principal = Depends(roles(Role.head_teacher)), db: Session = Depends(get_db),
                now: datetime = Depends(get_now)):
    return submit_count(db, who, now, body.model_dump())


@router.get("/spot-results", tags=[TAG], summary="季查结果：抽查班级的核查记录")
def get_spot_results(quarter: str | None = None, who: Principal = Depends(roles(*READERS)), db: Session = Depends(get_db),
                     now: datetime = Depends(get_now)):
    from store.access.accounts import school_ids_in

    return people.spot_results(db, quarter=parse_quarter(quarter, now),
                               school_ids=None if who.role is Role.county else school_ids_in(db, who.scope))


@router.post("/spot-results", tags=[TAG], summary="检查人员签署一个抽查班级的季查结果")
def post_spot_result(body: SpotResultIn, who: Principal = Depends(roles(*OFFICES)), db: Session = Depends(get_db),
                     now: datetime = Depends(get_now)):
    return record_result(db, who, now, body.model_dump())


@router.post("/spot-results/{result_id}/resolve", tags=[TAG], summary="季查差异说明销号")
def post_spot_resolve(result_id: DbId, body: Explanation, who: Principal = Depends(roles(*OFFICES)),
                      db: Session = Depends(get_db), now: datetime = Depends(get_now)):
    return resolve_result(db, who, now, result_id, body.explanation)
