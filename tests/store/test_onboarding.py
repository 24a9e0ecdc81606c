"""Onboarding a county from its files (issue 19): the organisation sheets and the 学籍 export,
previewed then applied whole, re-imported without duplicates, retired never deleted."""
from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from demo.county_files import county_files, county_rows
from store.access.scope import Scope
from store.bootstrap import init_store  # noqa: F401  (the store's own set-up is what the engine fixture ran)
from store.calendars import calendars, materialise
from store.ingest.onboarding import OnboardingError, onboard, sheet_of
from store.ingest.organisation import division_of_code
from store.models import CaseEvent, Duty, Jurisdiction, Pupil, School, SchoolClass, Staff
from store.models.accounts import User
from store.policy_files import load_policies_into
from store.reporting.directory import list_pupils, list_schools, list_staff

NOW = datetime(2026, 11, 16, 7, 30)
SAMPLE = Path(__file__).resolve().parents[2] / "docs" / "onboarding" / "sample"


@pytest.fixture
def store(session):
    load_policies_into(session, now=NOW)
    for cal in calendars().values():
        materialise(session, cal)
    session.flush()
    return session


def _files(rows: dict[str, list[list[str]]] | None = None) -> list[tuple[str, bytes]]:
    if rows is None:
        return list(county_files().items())
    from demo.county_files import FILE_NAMES, as_csv
    return [(FILE_NAMES[sheet], as_csv(r)) for sheet, r in rows.items()]


def _count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_the_committed_sample_files_are_what_the_generator_writes():
    assert sorted(p.name for p in SAMPLE.iterdir()) == sorted(county_files())
    for name, data in county_files().items():
        assert (SAMPLE / name).read_bytes() == data, name


def test_a_preview_writes_nothing_and_the_applied_import_writes_everything_once(store):
    before = {m: _count(store, m) for m in (Jurisdiction, School, Staff, SchoolClass, Pupil)}
    preview = onboard(store, _files(), now=NOW, apply=False)
    assert not preview.applied and preview.errors == 0
    assert {m: _count(store, m) for m in before} == before
    sheets = {p.sheet: p for p in preview.plans}
    assert [p.sheet for p in preview.plans] == ["区划", "学校", "教职工", "班级", "学籍"]
    assert sheets["区划"].count("add") == 10 and sheets["学校"].count("add") == 3 and sheets["班级"].count("add") == 18

    applied = onboard(store, _files(), now=NOW, apply=True)
    assert applied.applied
    assert _count(store, School) - before[School] == 3 and _count(store, SchoolClass) - before[SchoolClass] == 18
    assert _count(store, Pupil) - before[Pupil] == sheets["学籍"].pupils["added"] == 216
    again = onboard(store, _files(), now=NOW, apply=True)  # the same files again: nothing new, nothing retired
    assert all(p.count("add") == p.count("change") == p.count("retire") == 0 for p in again.plans[:4])
    assert again.plans[4].pupils == {"added": 0, "updated": 216}
    assert _count(store, Pupil) - before[Pupil] == 216 and _count(store, Staff) - before[Staff] == 52


def test_twelve_digit_division_codes_give_level_and_parent():
    assert division_of_code("140999000000") == ("county", "")
    assert division_of_code("140999101000") == ("township", "140999000000")
    assert division_of_code("140999101203") == ("village", "140999101000")
    assert division_of_code("C7T1") is None


def test_the_export_columns_land_where_the_papers_read_them(store):
    onboard(store, _files(), now=NOW, apply=True)
    rows = county_rows()["学籍"]
    header = rows[0]
    for raw in rows[1:40]:
        r = dict(zip(header, raw))
        pupil = store.scalar(select(Pupil).where(Pupil.student_no == r["全国学籍号"]))
        village = store.get(Jurisdiction, pupil.village_id)
        assert village.level == "village" and village.name in r["户口所在地"]  # the registered village
        assert pupil.registered_address == r["户口所在地"] and pupil.address == r["现住址"]
        assert pupil.gender == {"1": "男", "2": "女"}[r["性别"]]
        klass = store.get(SchoolClass, pupil.class_id)
        assert klass.name == r["年级"] + "(1)班"  # the export's "1班" is the organisation file's class
        assert ("left_behind" in pupil.special_groups) == (r["是否留守儿童"] != "0")
        assert ("disabled" in pupil.special_groups) == (r["残疾人类型"] != "非残疾")


def test_a_changed_file_retires_who_left_hands_duties_over_and_switches_off_accounts(store, factory):
    onboard(store, _files(), now=NOW, apply=True)
    rows = county_rows()
    staff_header, leaver = rows["教职工"][0], rows["教职工"][10]
    assert leaver[2] != "班主任"
    gone = store.scalar(select(Staff).where(Staff.name == leaver[0], Staff.phone == leaver[1]))
    store.add(User(username="leaver", display_name=leaver[0], role="school_staff", staff_id=gone.id,
                   school_id=gone.school_id, created_at=NOW))
    # a case of the first class with an open duty owned by its head teacher
    first_class = rows["班级"][1]
    old_teacher = store.scalar(select(Staff).where(Staff.name == first_class[3], Staff.phone == first_class[4]))
    klass = store.scalar(select(SchoolClass).join(School).where(School.code == first_class[0],
                                                                SchoolClass.name == first_class[2]))
    pupil = store.scalar(select(Pupil).where(Pupil.class_id == klass.id).limit(1))
    from tests.engine_helpers import morning, sweep
    from datetime import date
    store.commit()
    morning(factory, first_class[0], date(2026, 11, 16), [pupil.student_no])
    sweep(factory, date(2026, 11, 16))
    store.expire_all()
    duty = store.scalar(select(Duty).where(Duty.owner_id == old_teacher.id))
    assert duty is not None and duty.status == "open"

    rows["教职工"] = [r for r in rows["教职工"] if r != leaver] + [["新来的", "13900000001", "班主任", first_class[0], "一年级"]]
    rows["班级"][1] = first_class[:3] + ["新来的", "13900000001"]
    rows["学校"][1][1] = "宁安县城关镇第一完全小学"
    preview = onboard(store, _files(rows), now=NOW, apply=False)
    lines = [c.line() for p in preview.plans for c in p.changes]
    assert f"停用 {leaver[0]}（{leaver[1]}）" in lines
    assert any(line.startswith("修改 学校 宁安县城关镇第一完全小学") and "学校名称: 宁安县城关镇第一小学 → 宁安县城关镇第一完全小学" in line
               for line in lines)
    assert any(f"班主任: {old_teacher.name} → 新来的" in line for line in lines)

    onboard(store, _files(rows), now=NOW, apply=True)
    store.expire_all()
    assert store.get(Staff, gone.id).retired_on == NOW.date()  # kept, not deleted
    assert store.scalar(select(User.active).where(User.username == "leaver")) is False
    successor = store.scalar(select(Staff).where(Staff.phone == "13900000001"))
    assert store.get(Duty, duty.id).owner_id == successor.id
    event = store.scalar(select(CaseEvent).where(CaseEvent.case_id == duty.case_id, CaseEvent.event == "duty_handover"))
    assert event.payload["from_staff"] == old_teacher.id and event.payload["to_staff"] == successor.id
    assert old_teacher.name in event.reason and "新来的" in event.reason


def test_every_bad_row_is_reported_with_its_number_and_nothing_is_applied(store):
    rows = county_rows()
    rows["区划"][2][3] = "140999200000"  # a township whose parent is not the county its code names
    rows["区划"].append(["140999100204", "新村", "", ""])  # fine: level and parent from the code
    before = _count(store, Jurisdiction)
    out = onboard(store, _files({"区划": rows["区划"]}), now=NOW, apply=True)
    errors = out.plans[0].errors
    assert not out.applied and errors[0] == (3, "上级代码 140999200000 与区划代码 140999100000 不符（应为 140999000000）")
    # the township's villages (rows 4–7 and the new one) wait for it; every other row is fine
    assert [n for n, _ in errors[1:]] == [4, 5, 6, 7, 12] and all("第 3 行有错误" in m for _, m in errors[1:])
    assert _count(store, Jurisdiction) == before

    onboard(store, _files({"区划": county_rows()["区划"], "学校": rows["学校"]}), now=NOW, apply=True)
    staff = [rows["教职工"][0], ["张三", "12345", "班主任", "2114099101", ""], ["李四", "13900000002", "厨师", "2114099101", ""],
             ["王五", "13900000003", "校长", "9999999999", ""], ["赵六", "13900000004", "校长", "2114099101", ""],
             ["赵六", "13900000004", "校长", "2114099101", ""]]
    out = onboard(store, _files({"教职工": staff}), now=NOW, apply=True)
    errors = dict(out.plans[0].errors)
    assert not out.applied and sorted(errors) == [2, 3, 4, 6]
    assert "手机号" in errors[2] and "角色 厨师 不认识" in errors[3] and "单位代码 9999999999" in errors[4]
    assert errors[6] == "与第 5 行重复 (赵六 13900000004)"
    assert store.scalar(select(Staff).where(Staff.name == "赵六")) is None  # the good row waits for the file to be right


def test_files_are_named_by_sheet_and_unknown_names_are_refused(store):
    assert sheet_of("2-学校.xlsx") == "schools" and sheet_of("学生信息导出.csv") == "pupils" and sheet_of("x.pdf") is None
    with pytest.raises(OnboardingError, match="文件名应含"):
        onboard(store, [("名单.csv", b"a,b\n")], now=NOW, apply=False)
    with pytest.raises(OnboardingError, match="都是学校表"):
        onboard(store, [("学校.csv", b"a\n"), ("2-学校.xlsx", b"")], now=NOW, apply=False)


def test_the_directory_lists_only_the_callers_schools_with_ids_masked(store):
    onboard(store, _files(), now=NOW, apply=True)
    school = store.scalar(select(School).where(School.code == "2114099102"))
    mine = Scope(school_ids=frozenset({school.id}))
    page = list_pupils(store, mine, limit=10)
    assert page["total"] == store.scalar(select(func.count()).select_from(Pupil).where(Pupil.school_id == school.id))
    assert len(page["rows"]) == 10 and {r["school"] for r in page["rows"]} == {school.name}
    assert all("*" in r["id_number"] for r in page["rows"])
    assert list_schools(store, mine)["total"] == 1
    assert {r["unit"] for r in list_staff(store, mine)["rows"]} == {school.name}
    some = page["rows"][3]
    found = list_pupils(store, mine, search=some["student_no"][-8:])["rows"]
    assert [r["student_no"] for r in found] == [some["student_no"]]
    masked = list_pupils(store, mine, limit=1, mask_names=True)["rows"][0]["name"]
    assert "*" in masked


def test_a_generated_pupil_lives_in_the_village_whose_committee_gets_the_papers(store):
    from demo.synthetic import Size, generate_county
    generate_county(store, seed=5, size=Size(townships=1, schools_per_township=1, grades=(3,), pupils_per_class=30))
    rows = store.execute(select(Pupil.address, Pupil.registered_address, Jurisdiction.name)
                         .join(Jurisdiction, Jurisdiction.id == Pupil.village_id)).all()
    assert len(rows) >= 30 and all(village in address and village in registered for address, registered, village in rows)


def test_an_account_follows_its_staff_record_and_a_class_moves_with_its_head_teacher(store):
    from store.access.accounts import AccountError, scope_of
    from store.access.staff_accounts import account_for_staff, reassign, staff_by_phone

    onboard(store, _files(), now=NOW, apply=True)
    rows = county_rows()
    first_class, second_class = rows["班级"][1], rows["班级"][2]
    teacher, _ = account_for_staff(store, staff_by_phone(store, first_class[4]), username="t1", now=NOW)
    assert teacher.role == "head_teacher"
    klass = store.scalar(select(SchoolClass).where(SchoolClass.name == first_class[2]).join(School)
                         .where(School.code == first_class[0]))
    assert scope_of(store, teacher).class_ids == frozenset({klass.id})
    township_person = next(r for r in rows["教职工"] if r[2] == "镇政府")
    officer, password = account_for_staff(store, staff_by_phone(store, township_person[1]), username="town", now=NOW)
    assert officer.role == "township" and len(password) >= 12
    village_person = next(r for r in rows["教职工"] if r[2] == "村委会")
    with pytest.raises(AccountError, match="已有账号"):
        account_for_staff(store, staff_by_phone(store, first_class[4]), username="t1b", now=NOW)
    principal = next(r for r in rows["教职工"] if r[2] == "校长" and r[3] == first_class[0])
    with pytest.raises(AccountError, match="教职工名单中没有"):
        staff_by_phone(store, "13000000000")
    # the class goes to the second class's teacher in a new class list: both accounts follow
    rows["班级"][1] = first_class[:3] + second_class[3:]
    onboard(store, _files({"班级": rows["班级"]}), now=NOW, apply=True)
    store.expire_all()
    assert scope_of(store, teacher).class_ids == frozenset()
    successor, _ = account_for_staff(store, staff_by_phone(store, second_class[4]), username="t2", now=NOW)
    assert klass.id in scope_of(store, successor).class_ids
    reassign(store, teacher, staff_by_phone(store, principal[1]), now=NOW)
    store.expire_all()
    assert (teacher.role, teacher.display_name) == ("school_staff", principal[0])
    assert village_person[3].endswith(tuple("0123456789"))
