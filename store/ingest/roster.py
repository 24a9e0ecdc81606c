"""Roster import (学籍花名册): pupils with guardians into their school and class.

Every bad row is reported with its row number and reason; good rows are kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import re
from datetime import date, datetime

from sqlalchemy import inspect, select, update
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from machines.identity import InvalidIdNumber, birth_date, validate_id_number
from machines.vocabulary import SPECIAL_GROUP_LABELS

from store.models import Case, Guardian, Jurisdiction, Pupil, School, SchoolClass
from store.ingest.organisation import parse_grade
from store.ingest.tabular import read_table, require_columns

COLUMNS = {
    "学校代码": "school_code", "学校标识码": "school_code", "学籍号": "student_no", "全国学籍号": "student_no",
    "学籍辅号": "aux_no", "姓名": "name", "身份证号": "id_number", "身份证件号": "id_number",
    "身份证件类型": "id_type", "出生日期": "birth", "性别": "gender",
    "年级": "grade", "班级": "class_name", "监护人": "guardian", "监护人姓名": "guardian", "关系": "relation",
    "与学生关系": "relation", "联系电话": "phone", "监护人电话": "phone", "家庭住址": "address", "现住址": "address",
    "户口所在地": "registered_address", "户籍地址": "registered_address",
    "特殊群体": "special_groups",
    "住校": "boarding", "是否住校": "boarding", "就读方式": "boarding", "宿舍": "dorm",  # 住校生 (store/prevention/gate.py)
    # the 全国中小学生学籍信息管理系统 export: family member 1 is the guardian, its flags are special groups
    "成员1姓名": "guardian", "成员1关系": "relation", "成员1联系电话": "phone",
    "是否留守儿童": "flag_left_behind", "是否孤儿": "flag_orphan", "残疾人类型": "flag_disabled",
    "住校": "boarding", "是否住校": "boarding", "宿舍": "dorm",  # 住校生 (store/prevention/gate.py)
    "包保班主任": "chain_1", "包保校领导": "chain_2", "包保乡镇干部": "chain_3", "包保村干部": "chain_4",  # 包保 chain (store/accountability/chain.py)
}
LABELS = {v: k for k, v in COLUMNS.items()}
REQUIRED = ["school_code", "name", "grade", "class_name"]  # and 学籍号 or 学籍辅号
# the export's codes (学籍信息填报说明): 性别 1-男 2-女; 就读方式 1-走读 2-住校; flags 0-否 1-是
GENDERS = {"男": "男", "女": "女", "1": "男", "2": "女"}
BOARDING_WORDS = {"住校": "是", "2": "是", "走读": "否", "1": "否"}
NOT_FLAGGED = {"", "0", "否", "无", "非留守儿童", "非残疾", "非残疾人"}
RESIDENT_ID = {"", "居民身份证", "1"}  # other 身份证件类型 (护照, 港澳台证件) are not GB 11643 numbers
# the database column each text field is stored in: a longer value is a row error, not a crash
STORED_IN = {"student_no": Pupil.student_no, "name": Pupil.name, "gender": Pupil.gender, "address": Pupil.address,
             "class_name": SchoolClass.name, "guardian": Guardian.name, "relation": Guardian.relation,
             "phone": Guardian.phone, "registered_address": Pupil.registered_address, "aux_no": Pupil.student_no}
# the roster's 特殊群体 words: each group's label (machines.vocabulary) and the short forms schools write
GROUPS = {label: key for key, label in SPECIAL_GROUP_LABELS.items()} | {
    "留守": "left_behind", "残疾": "disabled", "贫困": "poor", "贫困生": "poor", "学习困难": "learning_difficulty"}


@dataclass
class RosterResult:
    added: int = 0
    updated: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    census_closed: list[int] = field(default_factory=list)  # census cases closed by this import (排查)


def import_roster(session: Session, data: bytes, filename: str, *, now: datetime,
                  only_school_id: int | None = None) -> RosterResult:
    """Import the rows at ``now``; ``only_school_id`` (a school's own account) refuses other schools' rows
    and pupils; a 身份证号 born after ``now``'s day is a row error."""
    rows = read_table(data, filename, aliases=COLUMNS)
    require_columns(rows, REQUIRED, LABELS)
    result = RosterResult()
    schools = {s.code: s for s in session.scalars(select(School))}
    classes = {(c.school_id, c.name): c for c in session.scalars(select(SchoolClass))}
    villages = _villages(session)
    for n, r in rows:
        try:
            with session.begin_nested():
                added = _import_row(session, r, schools, classes, villages, only_school_id, now)
            result.added += added
            result.updated += 1 - added
        except (ValueError, KeyError) as exc:
            result.errors.append((n, str(exc)))
        except (IntegrityError, DataError) as exc:  # the savepoint is rolled back; the other rows stay
            result.errors.append((n, f"数据库拒绝此行，请检查学籍号、身份证号是否重复 (rejected: {type(exc.orig).__name__})"))
        else:
            continue
        for key in [k for k, c in classes.items() if not inspect(c).persistent]:  # created by the rolled-back row
            del classes[key]
    from store.prevention.census import close_enrolled  # 排查: a 失学 child now on the roster closes its census case (已入学)
    result.census_closed = close_enrolled(session, actor="system:roster", now=now)
    return result


def _normalise_export(r: dict[str, str]) -> None:
    """The 学籍 export's codes as the roster's words (性别 1/2, 就读方式 1/2)."""
    if r.get("gender"):
        if r["gender"] not in GENDERS:
            raise ValueError(f"性别应为 男、女（或 1、2）: '{r['gender']}'")
        r["gender"] = GENDERS[r["gender"]]
    if r.get("boarding") in BOARDING_WORDS:
        r["boarding"] = BOARDING_WORDS[r["boarding"]]


def _birth(text: str) -> date | None:
    """出生日期 as the export writes it (20150301, 2015-03-01, 2015/3/1), for a pupil without a 身份证号."""
    text = text.strip()
    if not text:
        return None
    match = re.fullmatch(r"(\d{4})[-/.]?(\d{1,2})[-/.]?(\d{1,2})", text)
    try:
        return date(*(int(g) for g in match.groups())) if match else date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"出生日期应为 YYYYMMDD: '{text}'") from None


def _same_class(classes: dict, school_id: int, grade: int, name: str):
    """The school's class of the grade with the same number: the export's "1班" or "(1)班" is the
    organisation file's "一年级(1)班"."""
    number = re.findall(r"\d+", name)
    if not number:
        return None
    found = [c for (sid, _), c in classes.items()
             if sid == school_id and c.grade == grade and re.findall(r"\d+", c.name) == number]
    return found[0] if len(found) == 1 else None


def _villages(session: Session) -> list:
    return session.execute(select(Jurisdiction.id, Jurisdiction.name, Jurisdiction.parent_id).where(
        Jurisdiction.level == "village", Jurisdiction.retired_on.is_(None))).all()


def _village_of(villages: list, school: School, *addresses: str | None) -> int | None:
    """The village (村/社区) an address names, among the school's township's villages first: the
    户口所在地, else the 现住址. The longest name wins (石门村 before 门村)."""
    ranked = sorted(villages, key=lambda v: (v.parent_id != school.township_id, -len(v.name)))
    for address in addresses:
        for v in ranked if address else ():
            if v.name in address:
                return v.id
    return None


def _import_row(session, r, schools, classes, villages, only_school_id, now: datetime) -> int:
    today = now.date()
    if not r.get("student_no") and r.get("aux_no"):  # a pupil without a 全国学籍号 yet has a 学籍辅号
        r["student_no"] = r["aux_no"]
    missing = [LABELS[c] for c in REQUIRED + ["student_no"] if not r.get(c)]
    if missing:
        raise ValueError("缺少 " + "、".join(missing))
    for key, value in r.items():
        if any(ord(ch) < 32 for ch in value):
            raise ValueError(f"{LABELS.get(key, key)} 含有控制字符 (control character in {key})")
        column = STORED_IN.get(key)
        if column is not None and column.type.length and len(value) > column.type.length:
            raise ValueError(f"{LABELS[key]} 超过 {column.type.length} 个字 ({key} longer than {column.type.length})")
    _normalise_export(r)
    school = schools.get(r["school_code"])
    if school is None:
        raise ValueError(f"学校代码 {r['school_code']} 不存在")
    if only_school_id is not None and school.id != only_school_id:
        raise ValueError(f"无权导入其他学校 ({r['school_code']}) 的学生")
    grade = parse_grade(r["grade"])
    id_number = None
    if r.get("id_number") and r.get("id_type", "") in RESIDENT_ID:
        try:
            id_number = validate_id_number(r["id_number"])
        except InvalidIdNumber as exc:
            raise ValueError(str(exc)) from None
        if birth_date(id_number) > today:
            raise ValueError(f"身份证号出生日期 {birth_date(id_number)} 晚于今天 (birth date in the future)")
        holder = session.execute(select(Pupil.student_no, Pupil.school_id).where(
            Pupil.id_number == id_number, Pupil.student_no != r["student_no"])).first()
        if holder is not None:
            if only_school_id is None or holder.school_id == only_school_id:  # a pupil the importer may read
                raise ValueError(f"身份证号与本校学籍号 {holder.student_no} 的学生重复 (ID number already used by another pupil)")
            # another school's pupil: neither who nor where (issue 14 row 14)
            raise ValueError("该身份证号已在其他学籍中登记，请核对；转学请由县教育局办理 (ID number already registered elsewhere)")
    groups = sorted({GROUPS[g.strip()] for g in r.get("special_groups", "").replace("，", ",").split(",")
                     if g.strip() in GROUPS} | {g for g in ("left_behind", "orphan", "disabled")
                                                if r.get(f"flag_{g}", "") not in NOT_FLAGGED})
    pupil = session.scalar(select(Pupil).where(Pupil.student_no == r["student_no"]))
    added = pupil is None
    if not added and only_school_id is not None and pupil.school_id not in (None, school.id):
        raise ValueError("该学籍号已在其他学校登记，转学请由县教育局办理 (student number already registered elsewhere)")
    # a new class only once the row is known good: its savepoint may still roll back (see import_roster)
    klass = classes.get((school.id, r["class_name"])) or _same_class(classes, school.id, grade, r["class_name"])
    if klass is None:
        klass = SchoolClass(school_id=school.id, grade=grade, name=r["class_name"])
        session.add(klass)
        session.flush()
        classes[(school.id, klass.name)] = klass
    if added:
        pupil = Pupil(student_no=r["student_no"])
        session.add(pupil)
    pupil.name, pupil.school_id, pupil.class_id = r["name"], school.id, klass.id
    pupil.id_number, pupil.gender, pupil.address = id_number, r.get("gender") or None, r.get("address") or None
    pupil.registered_address = r.get("registered_address") or None
    pupil.birth_date = birth_date(id_number) if id_number else _birth(r.get("birth", ""))
    village = _village_of(villages, school, pupil.registered_address, pupil.address)
    if village is not None or added:
        pupil.village_id = village
    if not added and (pupil.special_groups or []) != groups:  # the cases on the ledger count them (store.reporting.reports)
        session.execute(update(Case).where(Case.pupil_id == pupil.id, Case.closed_on.is_(None))
                        .values(special_groups=groups))
    pupil.special_groups, pupil.enrolled = groups, True
    session.flush()
    if r.get("guardian") and not session.scalar(
        select(Guardian.id).where(Guardian.pupil_id == pupil.id, Guardian.name == r["guardian"])
    ):
        session.add(Guardian(pupil_id=pupil.id, name=r["guardian"], relation=r.get("relation") or "监护人",
                             phone=r.get("phone") or None))
    if r.get("boarding"):  # 住校 是/否 (store/prevention/gate.py keeps who boards)
        from store.prevention.gate import boarding_from_roster
        boarding_from_roster(session, pupil, r["boarding"], r.get("dorm") or None, now=now)
    if any(r.get(f"chain_{i}") for i in range(1, 5)):  # 包保 chain, in the order of the policy's chain roles
        from store.accountability.chain import from_roster
        from_roster(session, pupil, r, now=now)
    school.enrolled = (school.enrolled or 0) + (1 if added else 0)
    return int(added)
