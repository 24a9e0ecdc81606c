"""The county's organisation from the files it already has (区划、学校、教职工、班级).

Four sheets with Chinese headers, each a whole list for the county:

========== ================================================================ =====================
sheet      columns (required in bold)                                         key
========== ================================================================ =====================
区划       **区划代码**, **名称**, 级别, 上级代码                               区划代码
学校       **学校标识码**, **学校名称**, **所属乡镇**, 学段, 是否寄宿, 控辍策略, 校历   学校标识码
教职工     **姓名**, **手机号**, **角色**, **单位代码**, 科室/职务               姓名 + 手机号
班级       **学校标识码**, **年级**, **班级**, 班主任, 班主任手机号                学校 + 班级
========== ================================================================ =====================

区划代码 may be the 12-digit 统计用区划代码 (县 ``xxxxxx000000``, 乡镇 ``xxxxxxxxx000``, 村 the rest):
then 级别 and 上级代码 follow from the code when left blank, and a given 上级代码 must agree with it.

An import is a *plan* (what will be added, changed and retired, and every bad row with its row
number and reason) that is applied only when asked and only when no row is bad: one rule with the
morning-check upload (a file is taken whole or not at all). Re-importing a file updates and never
duplicates. A row missing from a later file is *retired* (``retired_on``), never deleted, so the
history that names it stays readable; a retired staff member's accounts are switched off.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Annotated, Callable, Iterable

from pydantic import AfterValidator, BaseModel, BeforeValidator, ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from store.access.staff_accounts import sync_head_teachers
from store.duties.handover import hand_over_class
from store.ingest.tabular import read_table, require_columns
from store.models import Jurisdiction, School, SchoolClass, Staff
from store.models.accounts import User

LEVELS = {"县": "county", "县区": "county", "区": "county", "county": "county",
          "乡镇": "township", "镇": "township", "乡": "township", "街道": "township", "township": "township",
          "村": "village", "社区": "village", "村/社区": "village", "village": "village"}
LEVEL_LABELS = {"county": "县", "township": "乡镇", "village": "村"}
STAGES = {"小学": "小学", "初中": "初中", "初级中学": "初中", "九年一贯制": "九年一贯制", "九年一贯制学校": "九年一贯制",
          "完全中学": "完全中学", "教学点": "教学点"}
YES = {"是", "1", "y", "yes", "true", "寄宿", "寄宿制"}
NO = {"否", "0", "n", "no", "false", "走读", "非寄宿", ""}
GRADE_NAMES = "一二三四五六七八九"
# role words a county writes (the policies' [roles] labels are added at run time) → role id
ROLE_WORDS = {"班主任": "head_teacher", "科任教师": "subject_teacher", "任课教师": "subject_teacher",
              "教导处": "academic_office", "教务处": "academic_office", "政教处": "moral_office",
              "年级主任": "grade_director", "年级组长": "grade_director", "包抓教师": "mentor_teacher",
              "校长": "principal", "副校长": "vice_principal", "主管校长": "vice_principal",
              "值日教师": "duty_teacher", "管片领导": "area_leader", "控辍保学领导小组": "leadership_group",
              "村委会": "village_committee", "包村干部": "village_cadre", "镇政府": "township",
              "乡镇政府": "township", "主管镇长": "township_head", "司法所": "judicial_office",
              "派出所": "police", "公安机关": "police", "教育管理中心": "education_center", "教育中心": "education_center",
              "中心校": "education_center", "教育局": "education_bureau", "教育局基教股": "education_bureau",
              "基教股": "education_bureau"}

DIVISION_COLUMNS = {"区划代码": "code", "统计用区划代码": "code", "代码": "code", "名称": "name", "区划名称": "name",
                    "级别": "level", "层级": "level", "上级代码": "parent", "上级区划代码": "parent"}
SCHOOL_COLUMNS = {"学校标识码": "code", "学校代码": "code", "学校名称": "name", "名称": "name", "所属乡镇": "township",
                  "乡镇代码": "township", "学段": "stage", "办学类型": "stage", "是否寄宿": "boarding",
                  "寄宿制": "boarding", "控辍策略": "policy", "策略": "policy", "校历": "calendar"}
STAFF_COLUMNS = {"姓名": "name", "手机号": "phone", "手机号码": "phone", "联系电话": "phone", "角色": "role",
                 "岗位": "role", "单位代码": "unit", "学校标识码": "unit", "区划代码": "unit",
                 "科室": "office", "职务": "office", "科室/职务": "office"}
CLASS_COLUMNS = {"学校标识码": "school", "学校代码": "school", "年级": "grade", "班级": "name", "班级名称": "name",
                 "班主任": "teacher", "班主任姓名": "teacher", "班主任手机号": "teacher_phone", "班主任电话": "teacher_phone"}


def _text(limit: int, label: str = "", required: bool = False):
    def check(value: str) -> str:
        value = (value or "").strip()
        if any(ord(ch) < 32 for ch in value):
            raise ValueError("含有控制字符 (control character)")
        if len(value) > limit:
            raise ValueError(f"超过 {limit} 个字 (longer than {limit})")
        if required and not value:
            raise ValueError(f"缺少{label}")
        return value
    return AfterValidator(check)


def _code(label: str):
    def check(value: str) -> str:
        if not re.fullmatch(r"[0-9A-Za-z_-]{1,32}", value):
            raise ValueError(f"{label}只能是 1–32 位数字或字母: '{value}'")
        return value
    return AfterValidator(check)


def _choice(words: dict[str, str], label: str, lower: bool = False):
    def check(value: str) -> str:
        value = value.lower() if lower else value
        if value and value not in words:
            raise ValueError(f"{label}应为 {'、'.join(dict.fromkeys(k for k in words if not k.isascii()))} 之一: '{value}'")
        return words.get(value, "")
    return AfterValidator(check)


def _phone(value: str) -> str:
    value = re.sub(r"[\s-]", "", value)
    if value and not re.fullmatch(r"1[3-9]\d{9}|0\d{9,11}", value):
        raise ValueError(f"手机号应为 11 位手机号或带区号的固定电话: '{value}'")
    return value


BOARDING = {**{w: "是" for w in YES}, **{w: "否" for w in NO}}


class DivisionRow(BaseModel):
    code: Annotated[str, _text(32, "区划代码", True), _code("区划代码")]
    name: Annotated[str, _text(64, "名称", True)]
    level: Annotated[str, _text(16), _choice(LEVELS, "级别")] = ""
    parent: Annotated[str, _text(32)] = ""


class SchoolRow(BaseModel):
    code: Annotated[str, _text(32, "学校标识码", True), _code("学校标识码")]
    name: Annotated[str, _text(64, "学校名称", True)]
    township: Annotated[str, _text(64, "所属乡镇", True)]
    stage: Annotated[str, _text(16), _choice(STAGES, "学段")] = ""
    boarding: Annotated[str, _text(8), _choice(BOARDING, "是否寄宿", lower=True)] = ""
    policy: Annotated[str, _text(32)] = ""
    calendar: Annotated[str, _text(32)] = ""


class StaffRow(BaseModel):
    name: Annotated[str, _text(32, "姓名", True)]
    phone: Annotated[str, _text(20, "手机号", True), AfterValidator(_phone)]
    role: Annotated[str, _text(32, "角色", True)]
    unit: Annotated[str, _text(32, "单位代码", True)]
    office: Annotated[str, _text(32)] = ""


class ClassRow(BaseModel):
    school: Annotated[str, _text(32, "学校标识码", True)]
    grade: Annotated[int, BeforeValidator(lambda v: parse_grade(str(v)))]
    name: Annotated[str, _text(32, "班级", True)]
    teacher: Annotated[str, _text(32)] = ""
    teacher_phone: Annotated[str, _text(20), AfterValidator(_phone)] = ""


def parse_grade(value: str) -> int:
    """1–9 from "3", "3年级", "三年级", "初一" (7) …"""
    v = (value or "").strip().removesuffix("年级")
    junior = {"初一": 7, "初二": 8, "初三": 9, "七": 7, "八": 8, "九": 9}
    if v in junior:
        return junior[v]
    if len(v) == 1 and v in GRADE_NAMES:
        return GRADE_NAMES.index(v) + 1
    try:
        grade = int(v)
    except ValueError:
        raise ValueError(f"年级应为 1–9: '{value}'") from None
    if not 1 <= grade <= 9:
        raise ValueError(f"年级应为 1–9: '{value}'")
    return grade


def division_of_code(code: str) -> tuple[str, str] | None:
    """(level, parent code) of a 12-digit 统计用区划代码, or None for another kind of code."""
    if not re.fullmatch(r"\d{12}", code):
        return None
    if code[6:] == "000000":
        return "county", ""
    if code[9:] == "000":
        return "township", code[:6] + "000000"
    return "village", code[:9] + "000"


# -- the plan ---------------------------------------------------------------------------------------
@dataclass
class Change:
    what: str       # add | change | retire | restore
    key: str        # the row's key as the file writes it
    label: str      # what a person reads: 名称 and where
    fields: dict[str, tuple[object, object]] = field(default_factory=dict)  # changed field → (old, new)

    def line(self) -> str:
        verb = {"add": "新增", "change": "修改", "retire": "停用", "restore": "恢复"}[self.what]
        detail = "；".join(f"{k}: {_show(a)} → {_show(b)}" for k, (a, b) in self.fields.items())
        return f"{verb} {self.label}（{self.key}）" + (f"：{detail}" if detail and self.what == "change" else "")


def _show(value) -> str:
    return "（空）" if value in (None, "") else str(value)


@dataclass
class Plan:
    sheet: str
    rows: int = 0
    changes: list[Change] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    applied: bool = False
    handovers: int = 0  # open duties handed to a class's new head teacher
    pupils: dict[str, int] | None = None  # the roster sheet: pupils added and updated

    def count(self, what: str) -> int:
        return sum(1 for c in self.changes if c.what == what)

    @property
    def summary(self) -> dict[str, int]:
        return ({w: self.count(w) for w in ("add", "change", "retire", "restore")}
                | {"errors": len(self.errors), "handovers": self.handovers})

    def as_dict(self) -> dict:
        return {"sheet": self.sheet, "rows": self.rows, "applied": self.applied, **self.summary,
                **({"pupils": self.pupils} if self.pupils is not None else {}),
                "changes": [{"what": c.what, "key": c.key, "label": c.label, "line": c.line()} for c in self.changes],
                "errors": [{"row": n, "reason": m} for n, m in self.errors]}


def _rows(data: bytes, filename: str, aliases: dict[str, str], model: type[BaseModel], required: list[str],
          labels: dict[str, str], plan: Plan) -> list[tuple[int, BaseModel]]:
    rows = read_table(data, filename, aliases=aliases)
    require_columns(rows, required, labels)
    plan.rows = len(rows)
    good = []
    for n, r in rows:
        try:
            good.append((n, model(**{k: v for k, v in r.items() if k in model.model_fields})))
        except ValidationError as exc:
            plan.errors.append((n, "；".join(_reason(e, labels) for e in exc.errors())))
    return good


def _reason(error: dict, labels: dict[str, str]) -> str:
    where = labels.get(str(error["loc"][0]), str(error["loc"][0])) if error.get("loc") else ""
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    return f"{where}: {message}" if where and where not in message else message


def _labels(columns: dict[str, str]) -> dict[str, str]:
    first: dict[str, str] = {}
    for header, key in columns.items():
        first.setdefault(key, header)
    return first


def _duplicates(rows: Iterable[tuple[int, BaseModel]], key: Callable[[BaseModel], str], plan: Plan) -> list:
    seen: dict[str, int] = {}
    kept = []
    for n, row in rows:
        k = key(row)
        if k in seen:
            plan.errors.append((n, f"与第 {seen[k]} 行重复 ({k})"))
            continue
        seen[k] = n
        kept.append((n, row))
    return kept


def _set(obj, values: dict[str, object], names: dict[str, str], change: Change) -> None:
    for attr, new in values.items():
        old = getattr(obj, attr)
        if old != new:
            change.fields[names.get(attr, attr)] = (old, new)
            setattr(obj, attr, new)


# -- the four sheets --------------------------------------------------------------------------------
def plan_divisions(session: Session, data: bytes, filename: str, *, today: date) -> Plan:
    plan = Plan("区划")
    labels = _labels(DIVISION_COLUMNS)
    rows = _duplicates(_rows(data, filename, DIVISION_COLUMNS, DivisionRow, ["code", "name"], labels, plan),
                       lambda r: r.code, plan)
    given = {r.code: (n, r) for n, r in rows}
    resolved: dict[str, tuple[str, str]] = {}
    for code, (n, r) in given.items():
        derived = division_of_code(code)
        level, parent = r.level, r.parent
        if derived:
            if level and level != derived[0]:
                plan.errors.append((n, f"级别 {LEVEL_LABELS[level]} 与区划代码 {code} 不符（应为{LEVEL_LABELS[derived[0]]}）"))
                continue
            if parent and parent != derived[1]:
                plan.errors.append((n, f"上级代码 {parent} 与区划代码 {code} 不符（应为 {derived[1]}）"))
                continue
            level, parent = derived[0], parent or derived[1]
        if not level:
            plan.errors.append((n, "缺少级别（县、乡镇、村），或使用 12 位统计用区划代码"))
            continue
        resolved[code] = (level, parent)
    existing = {j.code: j for j in session.scalars(select(Jurisdiction))}
    for code, (level, parent) in resolved.items():
        n = given[code][0]
        want_parent = {"county": None, "township": "county", "village": "township"}[level]
        if want_parent is None:
            if parent:
                plan.errors.append((n, "县级区划不应有上级代码"))
            continue
        if not parent:
            plan.errors.append((n, f"缺少上级代码（{LEVEL_LABELS[level]}的上级是{LEVEL_LABELS[want_parent]}）"))
        elif parent in given and parent not in resolved:
            plan.errors.append((n, f"上级 {parent} 本行无误，但上级所在的第 {given[parent][0]} 行有错误"))
        elif parent in resolved:
            if resolved[parent][0] != want_parent:
                plan.errors.append((n, f"上级代码 {parent} 不是{LEVEL_LABELS[want_parent]}"))
        elif parent not in existing or existing[parent].level != want_parent:
            plan.errors.append((n, f"上级代码 {parent} 不在本文件中，也不是已有的{LEVEL_LABELS[want_parent]}"))
    if plan.errors:
        return plan
    names = {"name": "名称", "level": "级别", "parent_id": "上级", "retired_on": "停用日期"}
    # parents first, so a child's parent_id can be resolved in the same pass
    order = sorted(resolved, key=lambda c: ("county", "township", "village").index(resolved[c][0]))
    for code in order:
        level, parent = resolved[code]
        r = given[code][1]
        row = existing.get(code)
        change = Change("add" if row is None else "change", code, f"{LEVEL_LABELS[level]} {r.name}")
        if row is None:
            row = Jurisdiction(code=code, name=r.name, level=level)
            session.add(row)
            existing[code] = row
        elif row.retired_on is not None:
            change.what = "restore"
        parent_row = existing.get(parent) if parent else None
        if parent_row is not None and parent_row.id is None:
            session.flush()
        values = {"name": r.name, "level": level, "parent_id": parent_row.id if parent_row else None, "retired_on": None}
        if change.what == "add":
            for attr, value in values.items():
                setattr(row, attr, value)
            session.flush()
            plan.changes.append(change)
        else:
            _set(row, values, names, change)
            if change.fields:
                plan.changes.append(change)
    _retire(plan, [j for c, j in existing.items() if c not in resolved and j.retired_on is None],
            lambda j: (j.code, f"{LEVEL_LABELS.get(j.level, j.level)} {j.name}"), today)
    return plan


def plan_schools(session: Session, data: bytes, filename: str, *, today: date, policies: set[str],
                 calendars: set[str]) -> Plan:
    plan = Plan("学校")
    labels = _labels(SCHOOL_COLUMNS)
    rows = _duplicates(_rows(data, filename, SCHOOL_COLUMNS, SchoolRow, ["code", "name", "township"], labels, plan),
                       lambda r: r.code, plan)
    townships = {j.code: j for j in session.scalars(select(Jurisdiction).where(
        Jurisdiction.level == "township", Jurisdiction.retired_on.is_(None)))}
    by_name = {j.name: j for j in townships.values()}
    existing = {s.code: s for s in session.scalars(select(School))}
    names = {"name": "学校名称", "township_id": "所属乡镇", "stage": "学段", "boarding": "是否寄宿",
             "policy_name": "控辍策略", "calendar_key": "校历", "retired_on": "停用日期"}
    planned = []
    for n, r in rows:
        township = townships.get(r.township) or by_name.get(r.township)
        if township is None:
            plan.errors.append((n, f"所属乡镇 {r.township} 不存在：请先导入区划"))
            continue
        policy = r.policy or "default"
        if policy not in policies:
            plan.errors.append((n, f"控辍策略 {policy} 不存在（可用：{'、'.join(sorted(policies))}）"))
            continue
        calendar = r.calendar or "default"
        if calendar not in calendars:
            plan.errors.append((n, f"校历 {calendar} 不存在（可用：{'、'.join(sorted(calendars))}）"))
            continue
        planned.append((r, {"name": r.name, "township_id": township.id, "stage": r.stage or None,
                            "boarding": r.boarding == "是", "policy_name": policy, "calendar_key": calendar,
                            "retired_on": None}))
    if plan.errors:
        return plan
    for r, values in planned:
        row = existing.get(r.code)
        if row is None:
            session.add(School(code=r.code, enrolled=0, **values))
            plan.changes.append(Change("add", r.code, f"学校 {r.name}"))
            continue
        change = Change("restore" if row.retired_on else "change", r.code, f"学校 {r.name}")
        _set(row, values, names, change)
        if change.fields:
            plan.changes.append(change)
    session.flush()
    seen = {r.code for r, _ in planned}
    _retire(plan, [s for c, s in existing.items() if c not in seen and s.retired_on is None],
            lambda s: (s.code, f"学校 {s.name}"), today)
    return plan


def plan_staff(session: Session, data: bytes, filename: str, *, today: date, role_words: dict[str, str]) -> Plan:
    plan = Plan("教职工")
    labels = _labels(STAFF_COLUMNS)
    rows = _duplicates(_rows(data, filename, STAFF_COLUMNS, StaffRow, ["name", "phone", "role", "unit"], labels, plan),
                       lambda r: f"{r.name} {r.phone}", plan)
    schools = {s.code: s for s in session.scalars(select(School).where(School.retired_on.is_(None)))}
    places = {j.code: j for j in session.scalars(select(Jurisdiction).where(Jurisdiction.retired_on.is_(None)))}
    existing = {(s.name, s.phone or ""): s for s in session.scalars(select(Staff))}
    names = {"role": "角色", "school_id": "学校", "jurisdiction_id": "单位", "office": "科室/职务", "retired_on": "停用日期"}
    planned = []
    for n, r in rows:
        role = role_words.get(r.role, r.role if r.role in set(role_words.values()) else None)
        if role is None:
            plan.errors.append((n, f"角色 {r.role} 不认识（可用：{'、'.join(sorted(k for k in role_words if not k.isascii()))}）"))
            continue
        school, place = schools.get(r.unit), places.get(r.unit)
        if school is None and place is None:
            plan.errors.append((n, f"单位代码 {r.unit} 既不是学校标识码也不是区划代码：请先导入学校和区划"))
            continue
        planned.append((r, {"role": role, "school_id": school.id if school else None,
                            "jurisdiction_id": None if school else place.id, "office": r.office or None,
                            "retired_on": None}, (school or place).name))
    if plan.errors:
        return plan
    seen = set()
    for r, values, unit_name in planned:
        key = (r.name, r.phone)
        seen.add(key)
        row = existing.get(key)
        label = f"{unit_name} {r.name}"
        if row is None:
            session.add(Staff(name=r.name, phone=r.phone, **values))
            plan.changes.append(Change("add", r.phone, label))
            continue
        change = Change("restore" if row.retired_on else "change", r.phone, label)
        _set(row, values, names, change)
        if change.fields:
            plan.changes.append(change)
    session.flush()
    leaving = [s for k, s in existing.items() if k not in seen and s.retired_on is None]
    _retire(plan, leaving, lambda s: (s.phone or "", f"{s.name}"), today)
    if leaving:  # a person who left cannot sign in any more; the accounts stay for the history
        session.execute(update(User).where(User.staff_id.in_([s.id for s in leaving])).values(active=False))
    return plan


def plan_classes(session: Session, data: bytes, filename: str, *, now: datetime) -> Plan:
    today = now.date()
    plan = Plan("班级")
    labels = _labels(CLASS_COLUMNS)
    rows = _duplicates(_rows(data, filename, CLASS_COLUMNS, ClassRow, ["school", "grade", "name"], labels, plan),
                       lambda r: f"{r.school} {r.name}", plan)
    schools = {s.code: s for s in session.scalars(select(School).where(School.retired_on.is_(None)))}
    teachers: dict[tuple[int, str], list[Staff]] = {}
    for s in session.scalars(select(Staff).where(Staff.school_id.is_not(None), Staff.retired_on.is_(None))):
        teachers.setdefault((s.school_id, s.name), []).append(s)
    existing = {(c.school_id, c.name): c for c in session.scalars(select(SchoolClass))}
    names = {"grade": "年级", "head_teacher_id": "班主任", "retired_on": "停用日期"}
    staff_names = dict(session.execute(select(Staff.id, Staff.name).where(Staff.school_id.is_not(None))).all())
    planned = []
    for n, r in rows:
        school = schools.get(r.school)
        if school is None:
            plan.errors.append((n, f"学校标识码 {r.school} 不存在：请先导入学校"))
            continue
        teacher_id = None
        if r.teacher:
            found = [t for t in teachers.get((school.id, r.teacher), []) if not r.teacher_phone or t.phone == r.teacher_phone]
            if not found:
                plan.errors.append((n, f"班主任 {r.teacher} 不在 {school.name} 的教职工名单中：请先导入教职工"))
                continue
            if len(found) > 1:
                plan.errors.append((n, f"{school.name} 有 {len(found)} 位 {r.teacher}：请填写班主任手机号"))
                continue
            teacher_id = found[0].id
        planned.append((school, r, {"grade": r.grade, "head_teacher_id": teacher_id, "retired_on": None}))
    if plan.errors:
        return plan
    seen, handed_over = set(), []
    for school, r, values in planned:
        seen.add((school.id, r.name))
        row = existing.get((school.id, r.name))
        label = f"{school.name} {r.name}"
        if row is None:
            session.add(SchoolClass(school_id=school.id, name=r.name, **values))
            plan.changes.append(Change("add", f"{school.code} {r.name}", label))
            continue
        change = Change("restore" if row.retired_on else "change", f"{school.code} {r.name}", label)
        old_teacher = row.head_teacher_id
        _set(row, values, names, change)
        if "班主任" in change.fields:  # a person reads names, not record numbers
            change.fields["班主任"] = tuple(staff_names.get(i) for i in change.fields["班主任"])
        if change.fields:
            plan.changes.append(change)
        if old_teacher and values["head_teacher_id"] and old_teacher != values["head_teacher_id"]:
            handed_over.append((row, old_teacher, values["head_teacher_id"]))
    session.flush()
    for klass, old, new in handed_over:  # 班主任变更: her open duties for the class go to the successor
        plan.handovers += hand_over_class(session, klass, old, new, now=now)
    files_schools = {school.id for school, _, _ in planned}
    _retire(plan, [c for k, c in existing.items() if k[0] in files_schools and k not in seen and c.retired_on is None],
            lambda c: (str(c.id), c.name), today)
    sync_head_teachers(session)  # a class handed over or retired moves between the head teachers' accounts
    return plan


def _retire(plan: Plan, rows: list, describe: Callable, today: date) -> None:
    for row in rows:
        key, label = describe(row)
        row.retired_on = today
        plan.changes.append(Change("retire", key, label))
