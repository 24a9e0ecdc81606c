"""The demo's prevention story lines (issue 8 parts 2–3), called from demo/scenario.py.

* Truancy (旷课分级): three pupils are absent on single days spread over the four weeks — five,
  three and two separate truancies — so the daily advance gives tiers 1–4 (and tier 4 again).
* Boarders' gate (住校生出入校门): the synthetic county's boarders (demo/synthetic.py) leave at the
  10:30 round with the head teacher's approval, fetched by their guardian, due back at 14:00; most
  are recorded back on time at the 15:00 round, some late, some only the next morning; every
  seventh day one pupil walks out without approval. The advance's gate check opens the alerts;
  their owners close two of three (and of the truancy tier duties) at the afternoon round.
  On the last full day the first school's gate log is archived (阶段存档, the term runs on).
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime, time

from sqlalchemy import func, select

TRUANTS = ((2, 6, 10, 14, 18), (3, 9, 15), (5, 13))  # school days (1-based) of each truant's single-day absences
EXITS_PER_DAY = 2


def plan_truants(plan, pupils: list[tuple[str, str]]) -> list[str]:
    """Pick pupils not yet in the plan (from the end of the list) and mark their truancy days."""
    free = [p for p in reversed(pupils) if p[0] not in plan.school_of]
    chosen = []
    for (no, school), days in zip(free, TRUANTS):
        plan.school_of[no] = school
        for d in days:
            plan.mark(no, d, d)
        chosen.append(no)
    return chosen


def gate_round(factory, now: datetime, day_no: int, last_day_no: int) -> Counter:
    """The gate at the staff rounds: returns first, then (at 10:30) the day's exits."""
    from documents.gate_log import archive_term
    from store.prevention import gate
    from store.cases.context import CaseContext
    from store.db import transaction
    from store.models import Guardian, Pupil, School, SchoolClass, Staff
    from store.models.prevention import Boarder, GateMovement

    done: Counter = Counter()
    with transaction(factory) as s:
        ctx = CaseContext(s)
        away = s.execute(select(GateMovement.id, GateMovement.due_back_at, Pupil.student_no)
                         .join(Pupil, Pupil.id == GateMovement.pupil_id).where(GateMovement.in_at.is_(None))
                         .order_by(GateMovement.id)).all()
        for mid, due, no in away:
            if due.date() < now.date():                 # stayed away overnight: back at the morning round
                at = now
            elif now.time() < time(12, 0):
                continue
            elif mid % 6 == 1:                          # stays out tonight
                continue
            else:
                at = now if mid % 6 == 0 else due.replace(hour=13, minute=40)  # late, or on time
            gate.record_return(s, no, at=at, returned_with="家长", actor="demo:gate", now=now)
            done["gate_in"] += 1
        if now.time() < time(12, 0):
            boarders = s.execute(
                select(Pupil.student_no, Staff.name, func.min(Guardian.name), func.min(Guardian.relation))
                .join(Boarder, Boarder.pupil_id == Pupil.id).join(SchoolClass, SchoolClass.id == Pupil.class_id)
                .outerjoin(Staff, Staff.id == SchoolClass.head_teacher_id).outerjoin(Guardian, Guardian.pupil_id == Pupil.id)
                .where(Boarder.active.is_(True), ~select(GateMovement.id).where(
                    GateMovement.pupil_id == Pupil.id, GateMovement.in_at.is_(None)).exists())
                .group_by(Pupil.id, Pupil.student_no, Staff.name).order_by(Pupil.id)).all()
            for i in range(EXITS_PER_DAY):
                if not boarders:
                    break
                no, head, guardian, relation = boarders[(day_no * 37 + i * 11) % len(boarders)]
                walk_out = i == 0 and day_no % 7 == 3   # 未经批准、无人接送
                gate.record_exit(s, ctx, no, at=now, due_back_at=now.replace(hour=14, minute=0),
                                 approved_by=None if walk_out else head, approved_at=now.replace(hour=10, minute=0),
                                 fetched_by=None if walk_out else guardian, relation=relation,
                                 reason="自行离校" if walk_out else "看病", actor="demo:gate", now=now)
                done["gate_out_unapproved" if walk_out else "gate_out"] += 1
        if now.time() >= time(12, 0):  # owners close two of three alerts and tier duties the same afternoon
            from store.prevention.common import complete_duty
            from store.models.prevention import PreventionDuty
            for did, source in s.execute(select(PreventionDuty.id, PreventionDuty.source).where(
                    PreventionDuty.status.in_(("open", "overdue")), PreventionDuty.created_at <= now)).all():
                if did % 3:
                    complete_duty(s, did, actor="demo:owner", now=now,
                                  note="已联系家长，核实去向" if source == "gate" else "已按制度处理")
                    done[f"{source}_duty_done"] += 1
        if day_no == last_day_no and now.time() >= time(12, 0):
            code = s.scalar(select(School.code).order_by(School.code))
            archive_term(s, ctx, code, day=now.date(), actor="demo:gate", now=now, partial=True)
            done["gate_archive"] += 1
    return done


def summary(factory) -> dict:
    """What the prevention work left in the ledger when the clock stopped."""
    from store.db import transaction
    from store.models.prevention import Boarder, GateArchive, GateMovement, PreventionDuty, TruancyTierRecord

    with transaction(factory) as s:
        duties = {f"{src}:{kind}:{st}": n for src, kind, st, n in s.execute(
            select(PreventionDuty.source, PreventionDuty.kind, PreventionDuty.status, func.count())
            .group_by(PreventionDuty.source, PreventionDuty.kind, PreventionDuty.status))}
        return {
            "boarders": s.scalar(select(func.count()).select_from(Boarder)) or 0,
            "gate_movements": s.scalar(select(func.count()).select_from(GateMovement)) or 0,
            "gate_archives": [{"term": t, "movements": m, "path": p} for t, m, p in
                              s.execute(select(GateArchive.term, GateArchive.movements, GateArchive.path))],
            "truancy_tiers": {f"tier_{t}": n for t, n in s.execute(
                select(TruancyTierRecord.tier, func.count()).group_by(TruancyTierRecord.tier).order_by(TruancyTierRecord.tier))},
            "prevention_duties": duties,
        }
