"""The demo county's at-risk pupils and its schools' monthly submissions (issue 8 parts 4–5).

- :func:`flag_learning_difficulty`: about 3% of the pupils marked 学困生 on the roster (the generator
  already marks 留守儿童 and 贫困生), so each flag rule has pupils;
- :func:`plan_rising_absences`: two pupils whose unexcused absences rise week on week (0→1→1→2),
  so the ``absences_rising`` rule fires during the fourth week (relapses happen by themselves);
- :func:`submit_monthly_figures`: in the days before the schools' due date every school submits its
  月报 figures — honestly, except the school with most pupils out of school, which leaves two out
  (瞒报): the flow's reconciliation on the 23rd lists the difference with the cases behind it;
- :func:`review_submissions`: after the reconciliation the township reviews (审核) its schools'
  submissions: honest ones are accepted, the one hiding open cases is refused without an
  explanation and stays pending (the difference goes to the county's 责任追究 evidence);
- :func:`helpers_round`: the named helpers (帮扶责任人) do most of their preventive duties on time
  (tutoring, subsidy check, talks); about one in eight is left to go overdue;
- :func:`summary`: the watch list and the reconciliation as the clock stopped.
"""
from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

UNDER_REPORTED_BY = 2


def flag_learning_difficulty(session: Session, seed: int, share: float = 0.03) -> int:
    from store.models import Pupil

    rng = random.Random(seed * 31 + 5)
    n = 0
    for p in session.scalars(select(Pupil).order_by(Pupil.id)):
        if rng.random() < share:
            p.special_groups = sorted(set(p.special_groups or []) | {"learning_difficulty"})
            n += 1
    session.flush()
    return n


def plan_rising_absences(plan, pupils: list[tuple[str, str]], seed: int, count: int = 2) -> list[str]:
    """Absent on school days 7, 12, 17 and 18 (weeks 2, 3, 4 of the demo): 0→1→1→2 per week."""
    rng = random.Random(seed * 17 + 3)
    free = [p for p in pupils if p[0] not in plan.school_of]
    chosen = rng.sample(free, count)
    for no, school in chosen:
        plan.school_of[no] = school
        for day in (7, 12, 17, 18):
            plan.mark(no, day, day)
    return [no for no, _ in chosen]


def submit_monthly_figures(factory, now: datetime) -> Counter:
    """Each school's figures of the month, once, within three days before its due date."""
    from store.reporting import reconcile as rc
    from store.db import transaction
    from store.models import School
    from store.policy_files import PolicyRegistry
    from store.models.reconcile import SubmittedReport

    done: Counter = Counter()
    period = f"{now:%Y-%m}"
    with transaction(factory) as s:
        schools = s.execute(select(School.id, School.code, School.policy_name).order_by(School.code)).all()
        registry = PolicyRegistry(s)
        due = {sid: now.replace(day=registry.get(policy).reports.school_due_day).date() for sid, _, policy in schools}
        todo = [(sid, code) for sid, code, _ in schools if timedelta(0) <= due[sid] - now.date() <= timedelta(days=3)]
        seen = set(s.scalars(select(SubmittedReport.school_id).where(SubmittedReport.period == period)))
        todo = [(sid, code) for sid, code in todo if sid not in seen]
        if not todo:
            return done
        ledger = rc.ledger_cases(s, [sid for sid, _ in todo], period)
        worst = max(todo, key=lambda t: len(ledger[t[0]]["out_of_school"]))[0]
        for sid, code in todo:
            figures = {k: len(v) for k, v in ledger[sid].items()}
            if sid == worst:
                for k in ("dropouts", "out_of_school"):
                    figures[k] = max(0, figures[k] - UNDER_REPORTED_BY)
            rc.submit_figures(s, school_code=code, period=period, figures=figures, by=f"demo:{code}:principal", at=now)
            done["monthly_figures_submitted"] += 1
    return done


def review_submissions(factory, now: datetime) -> Counter:
    """The township reviews its schools' reconciled submissions the day before its own 月报 is due:
    honest ones are accepted; one that hides open cases is refused (no explanation) and stays pending."""
    from store.reporting import reconcile as rc
    from store.db import transaction
    from store.models import School
    from store.policy_files import PolicyRegistry
    from store.models.reconcile import SubmittedReport

    done: Counter = Counter()
    with transaction(factory) as s:
        registry = PolicyRegistry(s)
        pending = [sub_id for sub_id, policy in s.execute(
            select(SubmittedReport.id, School.policy_name).join(School, School.id == SubmittedReport.school_id)
            .where(SubmittedReport.status == "submitted", SubmittedReport.reconciled_at.is_not(None)))
            if now.day == registry.get(policy).reports.township_due_day - 1]
    for sub_id in pending:
        try:
            with transaction(factory) as s:
                rc.accept_submission(s, sub_id, by="demo:township:教办主任", at=now)
            done["monthly_figures_accepted"] += 1
        except rc.ReconcileError:  # hides open cases: the school must explain before it can be accepted
            done["monthly_figures_refused"] += 1
    return done


def helpers_round(factory, now: datetime) -> Counter:
    """In the afternoon, the helpers complete the preventive duties due within two days — all but
    about one in eight (picked by id), which the daily advance then marks overdue."""
    from store.db import transaction
    from store.prevention.risk import complete_duty
    from store.models.risk import WatchDuty

    done: Counter = Counter()
    if now.hour < 12:
        return done
    with transaction(factory) as s:
        for duty_id in s.scalars(select(WatchDuty.id).where(
                WatchDuty.status == "open", WatchDuty.due_on <= now.date() + timedelta(days=2))).all():
            if duty_id % 8:
                complete_duty(s, duty_id, actor="demo:helper", at=now, note="已按帮扶计划完成")
                done["watch_duty_done"] += 1
    return done


def summary(factory) -> dict:
    """The watch list (open entries by rule, duties by status) and the submissions by status."""
    from store.db import transaction
    from store.models.reconcile import SubmittedReport
    from store.models.risk import WatchDuty, WatchEntry

    with transaction(factory) as s:
        by_rule: Counter = Counter()
        for rules in s.scalars(select(WatchEntry.rules).where(WatchEntry.until.is_(None))):
            by_rule.update(r["rule"] for r in rules or [])
        subs = s.scalars(select(SubmittedReport)).all()
        return {
            "on_watch": s.scalar(select(func.count()).select_from(WatchEntry).where(WatchEntry.until.is_(None))) or 0,
            "left_watch": s.scalar(select(func.count()).select_from(WatchEntry).where(WatchEntry.until.is_not(None))) or 0,
            "on_watch_by_rule": dict(sorted(by_rule.items())),
            "watch_duties": dict(s.execute(select(WatchDuty.status, func.count()).group_by(WatchDuty.status)).all()),
            "submissions": dict(Counter(sub.status for sub in subs)),
            "submissions_hiding_open_cases": [
                {"school_id": sub.school_id, "period": sub.period, "status": sub.status,
                 "differences": [{k: d[k] for k in ("label", "submitted", "ledger")} for d in sub.differences if d.get("hides")]}
                for sub in subs if sub.hides_open_cases],
        }
