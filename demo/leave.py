"""The demo county's leave, transfers, lesson counts and 放学未回家 (issue 17 items 5, 6, 8).

Story lines, on top of the scenario's plan:

- ``approved``: the head teacher applies on day 2 for a 3-day 病假 (days 3–5) with the doctor's note;
  routed to the principal (三天以上), approved that day: the 病假 marks excuse, no case opens;
- ``unapproved``: 事假 marked on days 7–8, never approved: the leave holds until its deadline, then
  counts as unexcused absence from day 7 and a case opens;
- ``transferred``: 转出 on day 2 to a school outside the county, whose receipt never comes: after the
  policy's ``confirm_school_days`` the transfer opens a case (a hidden dropout) and the overdue
  confirmation is on the stuck list;
- ``noon``: present at the morning check on day 4, missing at the 5th lesson: the subject teacher's
  report opens a case; ``not_home``: a parent reports on day 5 that the pupil did not come home.

Every other leave a morning-check mark applies for is approved at the staff rounds by its routed
approver (the scenario's 病假/事假 story lines), so only ``unapproved`` goes unapproved.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime, time

from sqlalchemy import func, select

NOTE = b"%PDF-1.4\n% demo: a doctor's note (\xe7\x97\x85\xe5\x81\x87\xe6\x9d\xa1)\n%%EOF\n"


def plan_leave(plan, pupils: list[tuple[str, str]]) -> dict[str, str]:
    """Pick pupils not yet in the plan and mark their days; returns story line → student_no."""
    free = [p for p in pupils if p[0] not in plan.school_of]
    step = max(1, len(free) // 6)  # spread over the county's schools
    free = iter(free[step // 2::step])
    chosen = {}
    for line in ("approved", "unapproved", "transferred", "noon", "not_home"):
        no, school = next(free)
        plan.school_of[no] = school
        chosen[line] = no
    plan.mark(chosen["approved"], 3, 5, "病假")
    plan.mark(chosen["unapproved"], 7, 8, "事假")
    plan.stop_listing[chosen["transferred"]] = 2  # gone from the class list from day 2
    return chosen


def leave_round(factory, now: datetime, day_no: int, chosen: dict[str, str], archive_dir=None) -> Counter:
    """One staff round: the day's story lines, then the routed approvers decide the pending leave."""
    from store.cases.context import CaseContext
    from store.cases.leave import apply_for, attach_certificate, decide
    from store.cases.lessons import report_lesson_absence, report_not_home
    from store.db import settings, transaction
    from store.models import Pupil, School
    from store.models.leave import LeaveRequest
    from store.models.prevention import PreventionDuty
    from store.prevention.common import complete_duty

    done: Counter = Counter()
    first_round = now.time() < time(12, 0)
    with transaction(factory) as s:
        ctx = CaseContext(s)
        pid = dict(s.execute(select(Pupil.student_no, Pupil.id).where(Pupil.student_no.in_(list(chosen.values())))).all())
        if day_no == 2 and first_round:
            r = apply_for(s, ctx, pupil_id=pid[chosen["approved"]], kind="sick_leave", first_day=_day(factory, now, 1),
                          last_day=_day(factory, now, 3), source="web", actor="班主任", now=now, reason="发烧住院")
            attach_certificate(s, r.id, NOTE, "医院证明.pdf", actor="班主任", now=now,
                               archive_dir=archive_dir or settings().archive_dir, max_bytes=10 * 1024 * 1024)
            decide(s, ctx, r.id, approve=True, actor=f"staff:{r.owner_id}（校长）", now=now, note="同意，按时返校")
            apply_for(s, ctx, pupil_id=pid[chosen["transferred"]], kind="transfer", first_day=now.date(), source="web",
                      actor="教务处", now=now, reason="随父母外出", to_school_name="邻县第三中学")
            done["leave_applied"] += 1
            done["transfer_out"] += 1
        if day_no == 4 and not first_round:
            code = s.scalar(select(School.code).join(Pupil, Pupil.school_id == School.id)
                            .where(Pupil.student_no == chosen["noon"]))
            report_lesson_absence(s, ctx, school_code=code, student_no=chosen["noon"], day=now.date(), lesson=5,
                                  subject="数学", actor="科任教师", now=now)
            done["lesson_absence"] += 1
        if day_no == 5 and not first_round:
            report_not_home(s, ctx, pupil_id=pid[chosen["not_home"]], day=now.date(), parent_name="家长",
                            parent_phone=None, note="放学两小时未到家", actor="班主任", now=now)
            done["not_home"] += 1
        if day_no == 6 and first_round:  # found at a relative's the evening before (done late: it stays on record)
            for duty_id in s.scalars(select(PreventionDuty.id).where(PreventionDuty.source == "after_school",
                                                                     PreventionDuty.status.in_(("open", "overdue")))):
                complete_duty(s, duty_id, actor="班主任", note="当晚在亲戚家找到", now=now)
        skip = pid[chosen["unapproved"]]
        for r in s.scalars(select(LeaveRequest).where(LeaveRequest.decision == "pending", LeaveRequest.source == "mark",
                                                      LeaveRequest.kind.in_(("sick_leave", "personal_leave")),
                                                      LeaveRequest.pupil_id != skip)):
            policy = ctx.policies.get(s.scalar(select(School.policy_name).where(School.id == r.school_id)))
            decide(s, ctx, r.id, approve=True, actor=f"staff:{r.owner_id}（{policy.role_label(r.role)}）", now=now,
                   note="假条已收")
            done["leave_approved"] += 1
    return done


def _day(factory, now: datetime, n: int):
    from store.calendars import calendars
    return calendars()["default"].add_school_days(now.date(), n)


def summary(factory) -> dict:
    from store.db import transaction
    from store.models.leave import AfterSchoolReport, LeaveRequest, LessonAbsence

    with transaction(factory) as s:
        return {
            "requests": {f"{k}:{d}": n for k, d, n in s.execute(
                select(LeaveRequest.kind, LeaveRequest.decision, func.count())
                .group_by(LeaveRequest.kind, LeaveRequest.decision))},
            "counted_unapproved": s.scalar(select(func.count()).select_from(LeaveRequest)
                                           .where(LeaveRequest.counted_at.is_not(None))) or 0,
            "cases_from_requests": s.scalar(select(func.count()).select_from(LeaveRequest)
                                            .where(LeaveRequest.case_id.is_not(None))) or 0,
            "lesson_absences": s.scalar(select(func.count()).select_from(LessonAbsence)) or 0,
            "not_home": s.scalar(select(func.count()).select_from(AfterSchoolReport)) or 0,
        }
