"""Roster import (学籍花名册): pupils with guardians into their school and class.

Every bad row is reported with its row number and reason; good rows are kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from sqlalchemy import select
from sqlalchemy.orm import Session

from machines.identity import InvalidIdNumber, birth_date, validate_id_number

from .models import Guardian, Pupil, School, SchoolClass
from .tabular import read_table, require_columns

COLUMNS = {
    "学校代码": "school_code", "学籍号": "student_no", "姓名": "name", "身份证号": "id_number", "性别": "gender",
    "年级": "grade", "班级": "class_name", "监护人": "guardian", "监护人姓名": "guardian", "关系": "relation",
    "与学生关系": "relation", "联系电话": "phone", "监护人电话": "phone", "家庭住址": "address",
    "特殊群体": "special_groups",
    "住校": "boarding", "是否住校": "boarding", "宿舍": "dorm",  # 住校生 (store/gate.py)
}
LABELS = {v: k for k, v in COLUMNS.items()}
REQUIRED = ["school_code", "student_no", "name", "grade", "class_name"]
GROUPS = {"孤儿": "orphan", "留守儿童": "left_behind", "留守": "left_behind", "残疾儿童": "disabled", "残疾": "disabled",
          "贫困": "poor", "贫困生": "poor",
          "学困生": "learning_difficulty", "学习困难": "learning_difficulty"}  # at-risk flags (store/risk.py)


@dataclass
class RosterResult:
    added: int = 0
    updated: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    census_closed: list[int] = field(default_factory=list)  # census cases closed by this import (排查)


def import_roster(session: Session, data: bytes, filename: str, *, only_school_id: int | None = None) -> RosterResult:
    rows = read_table(data, filename, aliases=COLUMNS)
    require_columns(rows, REQUIRED, LABELS)
    result = RosterResult()
    schools = {s.code: s for s in session.scalars(select(School))}
    classes = {(c.school_id, c.name): c for c in session.scalars(select(SchoolClass))}
    for n, r in rows:
        try:
            with session.begin_nested():
                added = _import_row(session, r, schools, classes, only_school_id)
            result.added += added
            result.updated += 1 - added
        except (ValueError, KeyError) as exc:
            result.errors.append((n, str(exc)))
    from .census import close_enrolled  # 排查: a 失学 child now on the roster closes its census case (已入学)
    result.census_closed = close_enrolled(session, actor="system:roster")
    return result


def _import_row(session, r, schools, classes, only_school_id) -> int:
    missing = [LABELS[c] for c in REQUIRED if not r.get(c)]
    if missing:
        raise ValueError("缺少 " + "、".join(missing))
    school = schools.get(r["school_code"])
    if school is None:
        raise ValueError(f"学校代码 {r['school_code']} 不存在")
    if only_school_id is not None and school.id != only_school_id:
        raise ValueError(f"无权导入其他学校 ({r['school_code']}) 的学生")
    try:
        grade = int(str(r["grade"]).rstrip("年级"))
    except ValueError:
        raise ValueError(f"年级应为 1–9 的数字: '{r['grade']}'") from None
    if not 1 <= grade <= 9:
        raise ValueError(f"年级应为 1–9: {grade}")
    klass = classes.get((school.id, r["class_name"]))
    if klass is None:
        klass = SchoolClass(school_id=school.id, grade=grade, name=r["class_name"])
        session.add(klass)
        session.flush()
        classes[(school.id, klass.name)] = klass
    id_number = None
    if r.get("id_number"):
        try:
            id_number = validate_id_number(r["id_number"])
        except InvalidIdNumber as exc:
            raise ValueError(str(exc)) from None
    groups = sorted({GROUPS[g.strip()] for g in r.get("special_groups", "").replace("，", ",").split(",")
                     if g.strip() in GROUPS})
    pupil = session.scalar(select(Pupil).where(Pupil.student_no == r["student_no"]))
    added = pupil is None
    if added:
        pupil = Pupil(student_no=r["student_no"])
        session.add(pupil)
    pupil.name, pupil.school_id, pupil.class_id = r["name"], school.id, klass.id
    pupil.id_number, pupil.gender, pupil.address = id_number, r.get("gender") or None, r.get("address") or None
    pupil.birth_date = birth_date(id_number) if id_number else None
    pupil.special_groups, pupil.enrolled = groups, True
    session.flush()
    if r.get("guardian") and not session.scalar(
        select(Guardian.id).where(Guardian.pupil_id == pupil.id, Guardian.name == r["guardian"])
    ):
        session.add(Guardian(pupil_id=pupil.id, name=r["guardian"], relation=r.get("relation") or "监护人",
                             phone=r.get("phone") or None))
    if r.get("boarding"):  # 住校 是/否 (store/gate.py keeps who boards)
        from .gate import boarding_from_roster
        boarding_from_roster(session, pupil, r["boarding"], r.get("dorm") or None)
    school.enrolled = (school.enrolled or 0) + (1 if added else 0)
    return int(added)
