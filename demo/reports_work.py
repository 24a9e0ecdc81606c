"""The demo county's people at their reports (issue 17 items 1–3).

- :func:`reports_round` (each staff round): the schools' 填表人/负责人 sign their 月报 the day before
  it is due — except the last school, which signs a day late (a late report in the evidence); the
  townships sign on their day, the county at month end. On the policy's weekday the head teachers
  submit the weekly class count pre-filled from the ledger, except one class in ten (a missing count:
  an overdue duty). After the quarter's sealed draw a township inspector records the sampled
  classes: every class as the ledger says, except one, where a pupil marked present was not there
  (a discrepancy: a reconciliation item and the school's duty to explain it).
- :func:`summary`: what was submitted, late, missing, and the 季查 results.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import func, select

LATE_SCHOOLS = 1           # the last school(s) by code sign the day after the due date
MISSING_EVERY = 10         # one class in ten leaves its weekly count out
SIGNED_AT = (10, 30)       # the round in which people sign


def reports_round(factory, now: datetime) -> Counter:
    from store.db import transaction

    done: Counter = Counter()
    if (now.hour, now.minute) != SIGNED_AT:
        return done
    with transaction(factory) as s:
        done += _monthly(s, now)
        done += _weekly(s, now)
        done += _spot(s, now)
    return done


def _monthly(s, now: datetime) -> Counter:
    from store.models.report_work import ReportDuty
    from store.reporting import people

    done: Counter = Counter()
    duties = s.scalars(select(ReportDuty).where(ReportDuty.action == "submit_report", ReportDuty.status.in_(("open", "overdue")))
                       .order_by(ReportDuty.level, ReportDuty.scope_code)).all()
    schools = sorted(d.scope_code for d in duties if d.level == "school")
    late = set(schools[-LATE_SCHOOLS:]) if schools else set()
    for d in duties:
        days_left = (d.due_at.date() - now.date()).days
        wanted = (days_left == -1) if d.scope_code in late and d.level == "school" else (
            0 <= days_left <= (1 if d.level == "school" else 0))
        if not wanted:
            continue
        people.submit(s, policy=people.policy_for(s, d.level, d.scope_code), kind=d.report_kind, level=d.level,
                      code=d.scope_code, period=d.period, now=now, actor=f"demo:{d.scope_code}:{d.role}",
                      problems=PROBLEMS[d.level], next_steps=NEXT_STEPS[d.level])
        done[f"report_signed_{d.level}"] += 1
        done["report_signed_late"] += now > d.due_at
    return done


PROBLEMS = {"school": "个别留守儿童家庭监护缺位，劝返后易反复；部分家长法律意识淡薄。",
            "township": "个别学校晨检上报不及时；外出务工家庭学生劝返难度大。",
            "county": "乡镇之间工作进展不平衡；部分学校台账与上报数据存在差异。"}
NEXT_STEPS = {"school": "落实三帮一跟踪帮扶，每周家访一次；配合镇政府依法送达返校通知书。",
              "township": "督促各校按时上报，对劝返困难的学生由镇村干部包保入户。",
              "county": "开展季度随机抽查，对迟报漏报单位约谈通报。"}


def _weekly(s, now: datetime) -> Counter:
    from store.models.report_work import ReportDuty
    from store.reporting import people

    done: Counter = Counter()
    day = now.date()
    duties = s.scalars(select(ReportDuty).where(ReportDuty.action == "submit_weekly_count", ReportDuty.period == day.isoformat(),
                                                ReportDuty.status == "open").order_by(ReportDuty.class_id)).all()
    if not duties:
        return done
    prefill = people.weekly_prefill(s, [d.class_id for d in duties], day)
    for d in duties:
        if d.class_id % MISSING_EVERY == 0:
            done["weekly_count_left_missing"] += 1
            continue
        people.submit_weekly(s, class_id=d.class_id, day=day, counts={}, now=now, actor=f"demo:teacher:{d.owner_id}",
                             prefilled=prefill[d.class_id])
        done["weekly_count_submitted"] += 1
    return done


def _spot(s, now: datetime) -> Counter:
    """Two days after the draw, the township inspector records every sampled class (once)."""
    from store.models.report_work import SpotCheckResult
    from store.models.reports import SpotCheck
    from store.reporting import people

    done: Counter = Counter()
    check = s.scalar(select(SpotCheck).order_by(SpotCheck.id.desc()).limit(1))
    if check is None or (now.date() - check.drawn_at.date()).days < 2 or s.scalar(
            select(func.count()).select_from(SpotCheckResult).where(SpotCheckResult.spot_check_id == check.id)):
        return done
    rows = people.spot_results(s, quarter=check.quarter)
    for i, row in enumerate(rows):
        n = row["ledger_enrolled"]
        absent = min(n, row["ledger_open"] + (1 if i == 0 else 0))
        people.record_spot_result(
            s, quarter=check.quarter, class_id=row["class_id"], now=now, actor="demo:township:inspector",
            counts={"enrolled": n, "present": n - absent, "absent": absent, "discrepancies": 1 if i == 0 else 0},
            findings="一名学生晨检记为到校，现场核查未到校" if i == 0 else "账实相符",
            inspector=_inspector(s, row["school_id"]) or "督学", inspector_role="township")
        done["spot_results_recorded"] += 1
        done["spot_discrepancies"] += i == 0
    return done


def _inspector(s, school_id: int) -> str | None:
    from store.models import School, Staff

    return s.scalar(select(Staff.name).join(School, School.township_id == Staff.jurisdiction_id)
                    .where(School.id == school_id, Staff.role == "education_center").order_by(Staff.id).limit(1))


def summary(factory) -> dict:
    from store.db import transaction
    from store.models.report_work import ReportDuty, ReportVersion, SpotCheckResult, WeeklyCount

    with transaction(factory) as s:
        duties = Counter(f"{kind}:{status}{':late' if late else ''}" for kind, status, late in s.execute(
            select(ReportDuty.report_kind, ReportDuty.status, ReportDuty.done_late)))
        return {"duties": dict(sorted(duties.items())),
                "report_versions_submitted": s.scalar(select(func.count()).select_from(ReportVersion).where(ReportVersion.version > 0)),
                "late_reports": s.scalar(select(func.count()).select_from(ReportVersion).where(ReportVersion.late)),
                "weekly_counts": s.scalar(select(func.count()).select_from(WeeklyCount)),
                "spot_results": dict(Counter(s.scalars(select(SpotCheckResult.status))))}
