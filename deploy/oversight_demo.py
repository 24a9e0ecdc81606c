"""The demo county's at-risk pupils and its schools' monthly submissions (issue 8 parts 4–5).

- :func:`flag_learning_difficulty`: about 3% of the pupils marked 学困生 on the roster (the generator
  already marks 留守儿童 and 贫困生), so each flag rule has pupils;
- :func:`plan_rising_absences`: two pupils whose unexcused absences rise week on week (0→1→1→2),
  so the ``absences_rising`` rule fires during the fourth week (relapses happen by themselves);
- :func:`submit_monthly_figures`: in the days before the schools' due date every school submits its
  月报 figures — honestly, except the school with most pupils out of school, which leaves two out
  (瞒报): the flow's reconciliation on the 23rd lists the difference with the cases behind it.
"""
from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import select
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
    from store import reconcile as rc
    from store.db import transaction
    from store.models import School
    from store.policy_files import PolicyRegistry
    from store.reconcile_models import SubmittedReport

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
