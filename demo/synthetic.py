"""A synthetic county, deterministic from a seed: for the demo, the tests and the benchmarks.

Townships, villages, schools, classes with head teachers, the staff and officials the policies
name, pupils with valid 身份证号 (GB 11643), guardians with phones and special-group flags.
Rows are written with ``executemany`` in chunks, so a province-size population stays cheap.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from machines.identity import id_check_digit

from store.models import Guardian, Jurisdiction, Pupil, School, SchoolClass, Staff

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "子涵欣怡梓涵晨曦浩宇宇轩一诺雨桐梓萱思远俊杰佳怡嘉怡诗涵浩然明轩若汐梦瑶天佑博文雅琪家豪志强秀英桂兰建国建华丽娟文静海燕春梅国强小龙晓东晓燕鹏飞振宇婷婷欣然梓豪子轩可馨紫涵沐阳昊天"
VILLAGES = "石门 柳树 河湾 杏花 东岭 西沟 南庄 北坡 红旗 新民 高家 李家 王家 塔底 双泉 马营 青龙 白杨 前进 团结".split()
RELATIONS = ["父亲", "母亲", "祖父", "祖母", "外祖母"]
SCHOOL_STAFF_ROLES = ["principal", "vice_principal", "academic_office", "grade_director", "mentor_teacher",
                      "leadership_group", "area_leader", "duty_teacher"]
TOWNSHIP_ROLES = ["township", "township_head", "judicial_office", "police", "village_committee", "education_center"]
COUNTY_ROLES = ["education_bureau"]
GRADE_NAMES = "一二三四五六七八九"


@dataclass
class Size:
    townships: int = 2
    schools_per_township: int = 3
    classes_per_grade: int = 1
    pupils_per_class: int = 55
    grades: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9)


def _name(rng: random.Random) -> str:
    given = rng.choice([GIVEN[i:i + 2] for i in range(0, len(GIVEN) - 1, 2)])
    return rng.choice(SURNAMES) + (given if rng.random() < 0.75 else given[0])


def _id_number(issued: dict[tuple[str, date], int], region: str, birth: date) -> str:
    """A valid, unique 身份证号: region, birth date, a per-day sequence (the next region after 999)."""
    n = issued.get((region, birth), 0)
    issued[(region, birth)] = n + 1
    first17 = f"{int(region) + n // 1000:06d}{birth:%Y%m%d}{n % 1000:03d}"
    return first17 + id_check_digit(first17)


def _phone(rng: random.Random) -> str:
    return f"1{rng.choice('3578')}{rng.randrange(10**9):09d}"


def generate_county(
    session: Session, *, seed: int = 7, size: Size | None = None, county_name: str = "宁安县",
    policy_name: str = "default", calendar_key: str = "default", school_year_start: int = 2026,
    code_prefix: str = "",
) -> dict[str, int]:
    """Write a county and return counts. Deterministic from ``seed``."""
    size = size or Size()
    rng = random.Random(seed)
    county = Jurisdiction(code=f"{code_prefix}C{seed}", name=county_name, level="county")
    session.add(county)
    session.flush()
    session.add(Staff(name=_name(rng), role="education_bureau", phone=_phone(rng), jurisdiction_id=county.id))
    region = f"1{rng.randrange(10000, 99999)}"
    issued: dict[tuple[str, date], int] = {}
    counts = {"townships": 0, "schools": 0, "classes": 0, "pupils": 0, "staff": 1}
    township_names = ["城关镇", "柳河镇", "石桥乡", "杏林镇", "东坡乡", "南山镇", "白水乡", "青石镇"]
    for t in range(size.townships):
        township = Jurisdiction(code=f"{county.code}T{t + 1}", name=township_names[t % 8] + ("" if t < 8 else str(t)),
                                level="township", parent_id=county.id)
        session.add(township)
        session.flush()
        counts["townships"] += 1
        villages = []
        for v in range(4):
            village = Jurisdiction(code=f"{township.code}V{v + 1}", name=VILLAGES[(t * 4 + v) % len(VILLAGES)] + "村",
                                   level="village", parent_id=township.id)
            session.add(village)
            villages.append(village)
        session.flush()
        session.execute(insert(Staff), [{"name": _name(rng), "role": r, "phone": _phone(rng),
                                         "school_id": None, "jurisdiction_id": township.id} for r in TOWNSHIP_ROLES])
        counts["staff"] += len(TOWNSHIP_ROLES)
        for s in range(size.schools_per_township):
            school_no = t * size.schools_per_township + s + 1
            village = villages[s % len(villages)]
            kind = "中学" if size.grades and min(size.grades) >= 7 else ("九年一贯制学校" if 9 in size.grades else "小学")
            school = School(code=f"{township.code}S{s + 1}", name=f"{township.name}{village.name[:-1]}{kind}",
                            township_id=township.id, calendar_key=calendar_key, policy_name=policy_name)
            session.add(school)
            session.flush()
            counts["schools"] += 1
            session.execute(insert(Staff), [{"name": _name(rng), "role": r, "phone": _phone(rng),
                                             "school_id": school.id, "jurisdiction_id": None} for r in SCHOOL_STAFF_ROLES])
            counts["staff"] += len(SCHOOL_STAFF_ROLES)
            pupils, guardians_for = [], []
            for g in size.grades:
                for k in range(size.classes_per_grade):
                    teacher = Staff(name=_name(rng), role="head_teacher", phone=_phone(rng), school_id=school.id)
                    session.add(teacher)
                    session.flush()
                    klass = SchoolClass(school_id=school.id, grade=g, name=f"{GRADE_NAMES[g - 1]}年级({k + 1})班",
                                        head_teacher_id=teacher.id)
                    session.add(klass)
                    session.flush()
                    counts["classes"] += 1
                    counts["staff"] += 1
                    for n in range(size.pupils_per_class):
                        birth = date(school_year_start - 6 - g + 1, rng.randint(1, 12), rng.randint(1, 28))
                        surname_name = _name(rng)
                        groups = [grp for grp, p in (("left_behind", 0.12), ("orphan", 0.005), ("disabled", 0.01),
                                                     ("poor", 0.05)) if rng.random() < p]
                        home = rng.choice(villages)  # one village: the committee the papers go to is where they live
                        pupils.append({
                            "student_no": f"G{region}{school_no:03d}{g}{k:02d}{n:03d}{seed % 1000:03d}{code_prefix}",
                            "name": surname_name, "id_number": _id_number(issued, region, birth),
                            "gender": rng.choice("男女"), "birth_date": birth, "school_id": school.id,
                            "class_id": klass.id, "village_id": home.id,
                            "address": f"{township.name}{home.name}{rng.randint(1, 12)}组",
                            "registered_address": f"{township.name}{home.name}",
                            "special_groups": groups, "enrolled": True,
                        })
                        guardians_for.append((surname_name[0], "left_behind" in groups))
            ids = list(session.scalars(insert(Pupil).returning(Pupil.id, sort_by_parameter_order=True), pupils))
            guardians = []
            for pid, (surname, left_behind) in zip(ids, guardians_for):
                relation = rng.choice(RELATIONS[2:]) if left_behind else rng.choice(RELATIONS[:2])
                name = (surname if relation in ("父亲", "祖父") else rng.choice(SURNAMES)) + _name(rng)[1:]
                guardians.append({"pupil_id": pid, "name": name, "relation": relation, "phone": _phone(rng)})
            session.execute(insert(Guardian), guardians)
            school.enrolled = len(ids)
            counts["pupils"] += len(ids)
    session.flush()
    from store.prevention.gate import generate_boarders  # 住校生: every fifth pupil of grade 4 and up boards (seed 000 §二.3)
    generate_boarders(session, county_id=county.id, since=date(school_year_start, 9, 1))
    return counts


def pupils_of(session: Session, school_code: str) -> list[Pupil]:
    return list(session.scalars(select(Pupil).join(School).where(School.code == school_code).order_by(Pupil.id)))
