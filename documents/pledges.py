"""The yearly 责任书 (seed 003 班主任控辍保学责任书) rendered per person through the archive: one report
document per (person, school year), key ``report:responsibility_pledge:school:<code>:<year>-<staff id>``;
rendering again returns the archived file (a duplicate request never issues a second 责任书)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from machines.vocabulary import ACCOUNTABILITY_GROUNDS
from store.models import Pupil, School, SchoolClass, Staff
from store.models.accountability import CareChainMember, Pledge
from store.policy_files import PolicyRegistry

# seed 003 二 (1)–(7): the grounds the 责任书 itself lists
CLAUSES = [
    "对学生辍学不采取必要措施，听之任之的；",
    "对管辖范围内学生辍学，底数不清或弄虚作假、隐瞒辍学人数的；",
    "对学生不到校没有及时家访做动员说服工作，以致贻误规劝学生返校复学时机的；",
    "因工作方法不当或处事不公平、讽刺、挖苦学习困难的学生、行为偏差学生，伤害了学生的自尊心，造成学生辍学的；",
    "对家庭经济困难学生，不及时采取救助措施，造成学生辍学的；",
    "片面追求升学率，故意让学习困难学生、行为偏差学生转学或退学的。",
]


def pledge_data(session: Session, pledge: Pledge) -> dict[str, Any]:
    school = session.get(School, pledge.school_id)
    policy = PolicyRegistry(session).get(school.policy_name)
    person = session.scalar(select(Staff.name).where(Staff.id == pledge.staff_id))
    roles = dict(session.execute(select(CareChainMember.pupil_id, CareChainMember.role)
                                 .where(CareChainMember.staff_id == pledge.staff_id)).all())
    pupils = [{"name": n, "student_no": no, "class_name": c, "role_label": policy.role_label(roles.get(pid, pledge.role))}
              for pid, n, no, c in session.execute(
                  select(Pupil.id, Pupil.name, Pupil.student_no, SchoolClass.name).join(SchoolClass, SchoolClass.id == Pupil.class_id)
                  .where(Pupil.id.in_(pledge.pupil_ids or [-1])).order_by(SchoolClass.grade, SchoolClass.name, Pupil.name))]
    return {"level": "school", "unit": {"name": school.name, "code": school.code}, "period": f"{pledge.year}-{pledge.staff_id}",
            "title": pledge.title, "year": pledge.year, "person": person, "role_label": policy.role_label(pledge.role),
            "pupils": pupils, "clauses": CLAUSES, "standard_rate": policy.standard_dropout_rate,
            "ground_seed": ACCOUNTABILITY_GROUNDS["pledge"][0]}


def render_pledge(session: Session, pledge_id: int, *, actor: str, now: datetime, fmt: str = "pdf"):
    """The 责任书's file in ``fmt`` (archived once; its path kept on the 责任书)."""
    from documents.archive import render_report

    pledge = session.get(Pledge, pledge_id)
    if pledge is None:
        raise LookupError(f"责任书 {pledge_id} 不存在 (pledge not found)")
    data = pledge_data(session, pledge)
    out = render_report(session, "responsibility_pledge", scope=f"school:{data['unit']['code']}", period=data["period"],
                        actor=actor, fmt=fmt, now=now, data=data)
    pledge.files = {**(pledge.files or {}), fmt: out.path}
    session.flush()
    return out


def render_year(session: Session, year: int, *, actor: str, now: datetime, school_ids: list[int] | None = None,
                fmt: str = "pdf", limit: int | None = None) -> int:
    """Every 责任书 of ``year`` (in ``school_ids``) without a file in ``fmt`` rendered now (at most ``limit``);
    returns how many."""
    q = select(Pledge).where(Pledge.year == year)
    if school_ids is not None:
        q = q.where(Pledge.school_id.in_(school_ids or [-1]))
    n = 0
    for pledge in session.scalars(q.order_by(Pledge.id)).all():
        if limit is not None and n >= limit:
            break
        if fmt not in (pledge.files or {}):
            render_pledge(session, pledge.id, actor=actor, now=now, fmt=fmt)
            n += 1
    return n
