"""Issue 16 in the demo: referred cases are followed up until they return (移交跟踪, 销号).

A small 五台山 township (policy ``wutaishan``) joins the county: one of its pupils goes missing (去向不明,
referred on day 1) and one goes to work (外出务工, referred on day 3); both keep their follow-up duties
(查找下落, 回访, 劝返监护人, 劝返用工单位) and come back through the morning check (复学, 台账销号). The
county's own referred pupils (default policy) stay absent and followed up to the end, and the refusal after
the legal notice is referred to the judicial office with its 提请依法处理函. The 台账 is written to
``out/ledger_book.{pdf,xlsx}``."""
from __future__ import annotations

import random
import shutil
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, time as dtime, timedelta
from pathlib import Path

WUTAI_TOWN = "台怀镇"
NOTES = {
    "record_police_search": "派出所会同村委会走访亲属，继续查找下落",
    "record_follow_up": "班主任电话回访家长，了解学生现状",
    "record_guardian_persuasion": "班主任入户劝返监护人",
    "record_employer_persuasion": "村委会联系用工单位，告知不得招用未成年人，劝其返校",
    "record_judicial_progress": "司法所已受理，正在调查",
}


@dataclass
class WutaiSchool:
    code: str
    pupils: list[str]


def add_wutaishan_school(session, seed: int) -> WutaiSchool:
    """One township (台怀镇) with one school under ``wutaishan``, moved into the demo's county."""
    from sqlalchemy import delete, select

    from demo.synthetic import Size, generate_county
    from store.models import Jurisdiction, Pupil, School, Staff

    county = session.scalar(select(Jurisdiction).where(Jurisdiction.level == "county").order_by(Jurisdiction.id))
    generate_county(session, seed=seed + 500, size=Size(townships=1, schools_per_township=1, pupils_per_class=12,
                                                        grades=(5, 8)), policy_name="wutaishan", code_prefix="W")
    extra = session.scalar(select(Jurisdiction).where(Jurisdiction.code == f"WC{seed + 500}"))
    town = session.scalar(select(Jurisdiction).where(Jurisdiction.parent_id == extra.id))
    town.parent_id, town.name = county.id, WUTAI_TOWN
    session.execute(delete(Staff).where(Staff.jurisdiction_id == extra.id))
    session.flush()
    session.delete(extra)
    session.flush()
    school = session.scalar(select(School).where(School.township_id == town.id))
    pupils = list(session.scalars(select(Pupil.student_no).where(Pupil.school_id == school.id).order_by(Pupil.id)))
    return WutaiSchool(school.code, pupils)


def plan_stories(plan, school: WutaiSchool) -> None:
    """The 五台山 stories, and the county's referred pupils kept absent (and followed up) to the end."""
    n = len(plan.days)
    for no, first in list(plan.stop_listing.items()):  # referred: absent until the clock stops, never dropped
        del plan.stop_listing[no]
        plan.mark(no, first, n)
    lost, away = school.pupils[0], school.pupils[1]
    for no in (lost, away):
        plan.school_of[no] = school.code
    plan.mark(lost, 1, 8)                       # 去向不明 from the first day; found and back on day 9
    plan.outside[1].append((lost, "whereabouts_unknown", dtime(15, 0)))
    plan.mark(away, 2, 12)                      # 外出务工 after the home visit; persuaded back on day 13
    plan.outside[3].append((away, "working_away", dtime(15, 0)))


def followup_round(factory, now: datetime) -> Counter:
    """The follow-up duties of referred cases: most done on time (by their owners), some left to go overdue."""
    from sqlalchemy import select

    from machines.states import REFERRED_STATES
    from store.cases.actions import act
    from store.cases.context import CaseContext
    from store.db import transaction
    from store.models import Case, Duty

    done: Counter = Counter()
    with transaction(factory) as s:
        rows = s.execute(select(Duty.id, Duty.case_id, Duty.action, Duty.due_at, Duty.owner_id)
                         .join(Case, Case.id == Duty.case_id)
                         .where(Duty.status == "open", Duty.step.like("escalated:%"),
                                Case.state.in_([x.value for x in REFERRED_STATES]), Duty.created_at <= now,
                                Duty.due_at <= now + timedelta(days=2)).order_by(Duty.id)).all()
    for duty_id, case_id, action, due_at, owner in rows:
        if random.Random(duty_id * 104729).random() > 0.75:
            continue  # left undone: overdue at its deadline, the next round comes anyway
        with transaction(factory) as s:
            act(s, CaseContext(s), case_id, action, actor=f"staff:{owner}" if owner else "staff:township", at=now, now=now,
                payload={"result": NOTES.get(action, "跟踪")}, idempotency_key=f"demo:followup:{duty_id}")
        done[action] += 1
    return done


def summary(factory, out: Path, stop_at: datetime) -> dict:
    """Referred cases with their rounds and 销号; the county's 台账 written to out/ledger_book.{pdf,xlsx}."""
    from sqlalchemy import func, select

    from store.db import transaction
    from store.models import Case, CaseEvent, DocumentRequest, Duty, Jurisdiction

    with transaction(factory) as s:
        referred = s.execute(select(Case.id, Case.policy_name, Case.outcome_reason, Case.state, Case.closed_on)
                             .join(CaseEvent, CaseEvent.case_id == Case.id)
                             .where(CaseEvent.event == "escalate_outside").order_by(Case.id)).all()
        rounds = {(cid, st): n for cid, st, n in s.execute(
            select(Duty.case_id, Duty.status, func.count()).where(Duty.step.like("escalated:%"))
            .group_by(Duty.case_id, Duty.status))}
        judicial = s.scalar(select(func.count()).select_from(DocumentRequest)
                            .where(DocumentRequest.kind == "judicial_referral")) or 0
        county = s.scalar(select(Jurisdiction.code).where(Jurisdiction.level == "county").order_by(Jurisdiction.id))
    files = {}
    try:
        from documents.archive import file_path, render_report

        for fmt in ("xlsx", "pdf"):
            with transaction(factory) as s:
                rec = render_report(s, "referral_ledger", scope=f"county:{county}", period=f"{stop_at:%Y-%m}",
                                    actor="demo", fmt=fmt, now=stop_at)
                target = out / f"ledger_book.{fmt}"
                shutil.copyfile(file_path(rec), target)
                files[fmt] = target.name
    except Exception as exc:  # noqa: BLE001 - the demo reports it instead of stopping
        files["error"] = str(exc)[:200]
    return {
        "referred": [{"case": cid, "policy": pol, "reason": reason, "state": state,
                      "closed_on": closed.isoformat() if closed else None,
                      "rounds_done": rounds.get((cid, "done"), 0), "rounds_overdue": rounds.get((cid, "overdue"), 0),
                      "rounds_open": rounds.get((cid, "open"), 0)} for cid, pol, reason, state, closed in referred],
        "returned_and_closed": sum(1 for r in referred if r[3] == "returned"),
        "judicial_referrals": judicial,
        "ledger_book": files,
    }
