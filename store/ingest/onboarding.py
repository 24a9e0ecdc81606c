"""Onboarding a county from a folder of files, in the one order that works (区划 → 学校 → 教职工 →
班级 → 学籍), as one dry run or one applied transaction.

Each sheet runs in the same transaction after the ones before it, so the preview of the schools
sheet already sees the townships the divisions sheet adds: the preview *is* the import, rolled
back. Nothing is applied unless asked and unless every sheet is free of bad rows (a county's
files are taken whole or not at all, the rule of every upload).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePath

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.calendars import calendars
from store.ingest import organisation as org
from store.ingest.roster import import_roster
from store.ingest.tabular import TableError
from store.models import PolicyVersion

# sheet id, the words a file name may carry, its Chinese name
SHEETS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("divisions", ("区划", "divisions"), "区划"),
    ("schools", ("学校", "schools"), "学校"),
    ("staff", ("教职工", "staff"), "教职工"),
    ("classes", ("班级", "classes"), "班级"),
    ("pupils", ("学籍", "学生", "roster", "pupils"), "学籍"),
)
SHEET_NAMES = {sheet: name for sheet, _, name in SHEETS}
# the templates' columns (a bureau's files may carry more; the importers also read common variants)
TEMPLATE_HEADERS: dict[str, list[str]] = {
    "区划": ["区划代码", "名称", "级别", "上级代码"],
    "学校": ["学校标识码", "学校名称", "所属乡镇", "学段", "是否寄宿", "控辍策略", "校历"],
    "教职工": ["姓名", "手机号", "角色", "单位代码", "科室/职务"],
    "班级": ["学校标识码", "年级", "班级", "班主任", "班主任手机号"],
    "学籍": ["学校标识码", "学校名称", "姓名", "性别", "出生日期", "身份证件类型", "身份证件号", "全国学籍号", "学籍辅号",
           "年级", "班级", "户口所在地", "现住址", "就读方式", "是否留守儿童", "是否孤儿", "残疾人类型",
           "成员1姓名", "成员1关系", "成员1联系电话"],
}
TEMPLATE_FILES = {"区划": "1-区划", "学校": "2-学校", "教职工": "3-教职工", "班级": "4-班级", "学籍": "5-学籍"}
TEMPLATE_NOTES = {
    "区划": "县、乡镇、村（社区）各一行。区划代码可用 12 位统计用区划代码，此时级别和上级代码可不填。",
    "学校": "学校标识码为教育部 10 位代码。所属乡镇填乡镇的区划代码或名称。学段：小学、初中、九年一贯制、完全中学。",
    "教职工": "每人一行，姓名+手机号确定一人。角色如 班主任、校长、教导处、政教处、包村干部、司法所、派出所、教育局基教股。"
              "单位代码填学校标识码（学校人员）或区划代码（乡镇、村、县的人员）。名单中没有的人会被停用，不会删除。",
    "班级": "每班一行。年级填 1–9 或 一年级…九年级。班主任须已在教职工表中。",
    "学籍": "可直接使用全国中小学生学籍信息管理系统导出的学生信息表（列名相同即可，多余的列不读）。",
}
SUFFIXES = (".csv", ".xlsx")


class OnboardingError(ValueError):
    pass


def sheet_of(filename: str) -> str | None:
    """Which sheet a file holds, from its name ("2-学校.xlsx" → schools)."""
    name = PurePath(filename).name.lower()
    if not name.endswith(SUFFIXES):
        return None
    stem = re.sub(r"^\d+[-_ .]*", "", name.rsplit(".", 1)[0])
    for sheet, words, _ in SHEETS:
        if any(w in stem for w in words):
            return sheet
    return None


@dataclass
class Onboarding:
    plans: list[org.Plan] = field(default_factory=list)
    applied: bool = False

    @property
    def errors(self) -> int:
        return sum(len(p.errors) for p in self.plans)

    def as_dict(self) -> dict:
        return {"applied": self.applied, "errors": self.errors, "sheets": [p.as_dict() for p in self.plans]}


def role_words(session: Session) -> dict[str, str]:
    """Role word → role id: the organisation's words and every loaded policy's [roles] labels."""
    from store.policy_files import parse_policy

    words = dict(org.ROLE_WORDS)
    for body, name in session.execute(select(PolicyVersion.body, PolicyVersion.name)):
        for role, label in parse_policy(body, source=name).roles.items():
            words.setdefault(label, role)
    words.update({role: role for role in set(words.values())})
    return words


def import_sheet(session: Session, sheet: str, data: bytes, filename: str, *, now: datetime) -> org.Plan:
    """One sheet into the open transaction; the caller commits or rolls back."""
    today = now.date()
    if sheet == "divisions":
        return org.plan_divisions(session, data, filename, today=today)
    if sheet == "schools":
        policies = set(session.scalars(select(PolicyVersion.name).distinct()))
        return org.plan_schools(session, data, filename, today=today, policies=policies or {"default"},
                                calendars=set(calendars()))
    if sheet == "staff":
        return org.plan_staff(session, data, filename, today=today, role_words=role_words(session))
    if sheet == "classes":
        return org.plan_classes(session, data, filename, now=now)
    if sheet == "pupils":
        result = import_roster(session, data, filename, now=now)
        return org.Plan("学籍", rows=result.added + result.updated + len(result.errors), errors=list(result.errors),
                        pupils={"added": result.added, "updated": result.updated})
    raise OnboardingError(f"不认识的表: {sheet}")


def onboard(session: Session, files: list[tuple[str, bytes]], *, now: datetime, apply: bool) -> Onboarding:
    """Import ``files`` (name, bytes) in the sheets' order, inside a savepoint; kept only when
    ``apply`` and no sheet has a bad row. A file no sheet claims, or two files for one sheet,
    is refused before anything runs."""
    chosen: dict[str, tuple[str, bytes]] = {}
    for name, data in files:
        sheet = sheet_of(name)
        if sheet is None:
            raise OnboardingError(f"{name}: 文件名应含 区划、学校、教职工、班级 或 学籍，格式 CSV 或 XLSX")
        if sheet in chosen:
            raise OnboardingError(f"{chosen[sheet][0]} 和 {name} 都是{SHEET_NAMES[sheet]}表，请只留一个")
        chosen[sheet] = (name, data)
    if not chosen:
        raise OnboardingError("没有找到要导入的文件（区划、学校、教职工、班级、学籍）")
    out = Onboarding()
    savepoint = session.begin_nested()
    try:
        for sheet, _, _ in SHEETS:
            if sheet not in chosen:
                continue
            name, data = chosen[sheet]
            try:
                plan = import_sheet(session, sheet, data, name, now=now)
            except TableError as exc:
                plan = org.Plan(SHEET_NAMES[sheet], errors=[(0, f"{name}: {exc}")])
            out.plans.append(plan)
            if plan.errors:  # a later sheet would only report what this one's rows were missing
                break
    except BaseException:
        savepoint.rollback()
        raise
    if apply and not out.errors:
        savepoint.commit()
        out.applied = True
        for plan in out.plans:
            plan.applied = True
    else:
        savepoint.rollback()
    return out
