"""The demo's county as the files a bureau would import (issue 19): the synthetic county is generated
in a scratch database, written out as the five onboarding files (区划, 学校, 教职工, 班级 and the
学籍 export's columns), and `make demo` imports those through :func:`store.ingest.onboarding.onboard`
— the path a real county takes — instead of writing the rows itself.
"""
from __future__ import annotations

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, aliased

from machines.vocabulary import SPECIAL_GROUP_LABELS

from store.ingest.onboarding import TEMPLATE_FILES, TEMPLATE_HEADERS
from store.models import Base, Guardian, Jurisdiction, Pupil, School, SchoolClass, Staff
from store.models.prevention import Boarder

from demo.county_files import as_csv
from demo.synthetic import GRADE_NAMES, Size, generate_county

LEVELS = {"county": "县", "township": "乡镇", "village": "村"}
PUPIL_HEADERS = TEMPLATE_HEADERS["学籍"] + ["特殊群体"]  # the roster also reads 特殊群体 (贫困生 …)


def generated_county_files(*, seed: int, size: Size, policy_name: str = "default") -> dict[str, bytes]:
    """File name → CSV bytes of the county :func:`demo.synthetic.generate_county` makes from ``seed``."""
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        generate_county(s, seed=seed, size=size, policy_name=policy_name)
        s.flush()
        sheets = _sheets(s)
    engine.dispose()
    return {TEMPLATE_FILES[k] + ".csv": as_csv(rows) for k, rows in sheets.items()}


def _sheets(s: Session) -> dict[str, list[list[str]]]:
    parent = aliased(Jurisdiction)
    places = s.execute(select(Jurisdiction, parent.code).outerjoin(parent, parent.id == Jurisdiction.parent_id)
                       .order_by(Jurisdiction.id)).all()
    codes = {j.id: j.code for j, _ in places}
    schools = s.scalars(select(School).order_by(School.id)).all()
    by_id = {x.id: x for x in schools}
    sheets = {k: [list(h)] for k, h in TEMPLATE_HEADERS.items()}
    sheets["学籍"] = [PUPIL_HEADERS]
    sheets["区划"] += [[j.code, j.name, LEVELS[j.level], p or ""] for j, p in places]
    sheets["学校"] += [[x.code, x.name, codes[x.township_id], "九年一贯制", "否", x.policy_name, x.calendar_key]
                     for x in schools]
    sheets["教职工"] += [[p.name, p.phone, p.role, by_id[p.school_id].code if p.school_id else codes[p.jurisdiction_id], ""]
                      for p in s.scalars(select(Staff).order_by(Staff.id))]
    teachers = {p.id: p for p in s.scalars(select(Staff).where(Staff.role == "head_teacher"))}
    classes = {c.id: c for c in s.scalars(select(SchoolClass).order_by(SchoolClass.id))}
    sheets["班级"] += [[by_id[c.school_id].code, str(c.grade), c.name, teachers[c.head_teacher_id].name,
                      teachers[c.head_teacher_id].phone] for c in classes.values()]
    guardians = {g.pupil_id: g for g in s.scalars(select(Guardian).order_by(Guardian.id.desc()))}
    boarders = set(s.scalars(select(Boarder.pupil_id).where(Boarder.active.is_(True))))
    villages = {j.id: j.name for j, _ in places}
    for p in s.scalars(select(Pupil).order_by(Pupil.id)):
        c, g, school = classes[p.class_id], guardians.get(p.id), by_id[p.school_id]
        groups = set(p.special_groups or [])
        sheets["学籍"].append([
            school.code, school.name, p.name, p.gender or "", f"{p.birth_date:%Y%m%d}" if p.birth_date else "",
            "居民身份证", p.id_number or "", p.student_no, "", f"{GRADE_NAMES[c.grade - 1]}年级", c.name,
            p.registered_address or villages.get(p.village_id, ""), p.address or "",
            "住校" if p.id in boarders else "走读", "1" if "left_behind" in groups else "0",
            "1" if "orphan" in groups else "0", "肢体残疾" if "disabled" in groups else "非残疾",
            g.name if g else "", g.relation if g else "", g.phone if g else "",
            "，".join(SPECIAL_GROUP_LABELS[k] for k in sorted(groups - {"left_behind", "orphan", "disabled"}))])
    return sheets
