"""A small real-looking county as the files a bureau already has: 区划 (12-digit 统计用区划代码),
学校 (10-digit 学校标识码), 教职工, 班级 and each school's 学籍 export, with the columns of the
全国中小学生学籍信息管理系统 (全国学籍号, 学籍辅号, 身份证件类型/号, 户口所在地, 现住址, 就读方式,
是否留守儿童, 是否孤儿, 残疾人类型, 成员1…). Deterministic from a seed.

A pupil's 户口所在地 and 现住址 name the same village (a few families live in the township seat),
so a paper sent to the village committee and the "家住…" it prints agree.

``docs/onboarding/sample/`` holds :func:`county_files` () as committed files (a test keeps them
equal); ``docs/onboarding.md`` walks a county IT person through importing them.
"""
from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from datetime import date

from machines.identity import id_check_digit

from store.ingest.onboarding import TEMPLATE_FILES, TEMPLATE_HEADERS

from demo.synthetic import GRADE_NAMES, RELATIONS, SURNAMES, _name, _phone

PROVINCE, CITY = "山西省", "忻州市"


@dataclass(frozen=True)
class Township:
    code: str
    name: str
    villages: tuple[tuple[str, str], ...]  # (code, name)
    schools: tuple[tuple[str, str, str, tuple[int, ...]], ...]  # (学校标识码, name, 学段, grades)


COUNTY = ("140999000000", "宁安县")
TOWNSHIPS = (
    Township("140999100000", "城关镇",
             (("140999100001", "城关社区"), ("140999100201", "石门村"), ("140999100202", "柳树村"),
              ("140999100203", "河湾村")),
             (("2114099101", "宁安县城关镇第一小学", "小学", (1, 2, 3, 4, 5, 6)),
              ("2114099102", "宁安县城关中学", "初中", (7, 8, 9)))),
    Township("140999101000", "柳河镇",
             (("140999101201", "杏花村"), ("140999101202", "东岭村"), ("140999101203", "西沟村")),
             (("2114099103", "宁安县柳河镇九年一贯制学校", "九年一贯制", (1, 2, 3, 4, 5, 6, 7, 8, 9)),)),
)
SCHOOL_ROLES = (("校长", "校长办公室"), ("教导处", "教导处"), ("政教处", "政教处"), ("包抓教师", "教导处"),
                ("控辍保学领导小组", "校长办公室"), ("管片领导", "校长办公室"), ("值日教师", "政教处"))
TOWNSHIP_ROLES = (("镇政府", "党政办"), ("包村干部", "党政办"), ("司法所", "司法所"), ("派出所", "派出所"),
                  ("村委会", "村委会"), ("教育管理中心", "教育管理中心"))
COUNTY_ROLES = (("教育局基教股", "基础教育股"),)
DISABILITY = ("视力残疾", "听力残疾", "肢体残疾", "智力残疾")

HEADERS = TEMPLATE_HEADERS
FILE_NAMES = {sheet: name + ".csv" for sheet, name in TEMPLATE_FILES.items()}


def county_rows(*, seed: int = 2026, pupils_per_class: int = 12, school_year_start: int = 2026,
                policy: str = "default") -> dict[str, list[list[str]]]:
    """The five sheets' rows (header first)."""
    rng = random.Random(seed)
    county_code, county_name = COUNTY
    sheets: dict[str, list[list[str]]] = {k: [list(h)] for k, h in HEADERS.items()}
    sheets["区划"].append([county_code, county_name, "县", ""])
    staff = sheets["教职工"]
    used_phones: set[str] = set()

    def person(role: str, unit: str, office: str) -> tuple[str, str]:
        name, phone = _name(rng), _phone(rng)
        while phone in used_phones:
            phone = _phone(rng)
        used_phones.add(phone)
        staff.append([name, phone, role, unit, office])
        return name, phone

    for role, office in COUNTY_ROLES:
        person(role, county_code, office)
    region = county_code[:6]
    issued: dict[date, int] = {}
    for t in TOWNSHIPS:
        sheets["区划"].append([t.code, t.name, "乡镇", county_code])
        for code, name in t.villages:
            sheets["区划"].append([code, name, "村", t.code])
        for role, office in TOWNSHIP_ROLES:
            person(role, t.code, office)
        for school_code, school_name, stage, grades in t.schools:
            sheets["学校"].append([school_code, school_name, t.code, stage, "是" if stage != "小学" else "否", policy,
                                 "default"])
            for role, office in SCHOOL_ROLES:
                person(role, school_code, office)
            for g in grades:
                teacher, phone = person("班主任", school_code, f"{GRADE_NAMES[g - 1]}年级")
                class_name = f"{GRADE_NAMES[g - 1]}年级(1)班"
                sheets["班级"].append([school_code, str(g), class_name, teacher, phone])
                for n in range(pupils_per_class):
                    sheets["学籍"].append(_pupil(rng, issued, region, t, school_code, school_name, stage, g,
                                                 school_year_start, n))
    return sheets


def _pupil(rng, issued, region, township: Township, school_code, school_name, stage, grade, year, n) -> list[str]:
    birth = date(year - 6 - grade + 1, rng.randint(1, 12), rng.randint(1, 28))
    seq = issued.get(birth, 0)
    issued[birth] = seq + 1
    first17 = f"{region}{birth:%Y%m%d}{seq % 1000:03d}"
    id_number = first17 + id_check_digit(first17)
    name = _name(rng)
    _, village = rng.choice(township.villages[1:] or township.villages)
    registered = f"{PROVINCE}{CITY}{COUNTY[1]}{township.name}{village}"
    lives = registered + f"{rng.randint(1, 9)}组" if rng.random() < 0.9 else \
        f"{PROVINCE}{CITY}{COUNTY[1]}{township.name}{township.villages[0][1]}{rng.randint(1, 30)}号（{village}户籍）"
    left_behind = rng.choices(["0", "1", "2"], weights=[80, 12, 8])[0]
    relation = rng.choice(RELATIONS[2:]) if left_behind != "0" else rng.choice(RELATIONS[:2])
    guardian = (name[0] if relation in ("父亲", "祖父") else rng.choice(SURNAMES)) + _name(rng)[1:]
    boards = stage != "小学" and grade >= 7 and rng.random() < 0.3
    return [school_code, school_name, name, rng.choice("12"), f"{birth:%Y%m%d}", "居民身份证", id_number,
            "G" + id_number, f"{school_code[2:]}{year}{grade:02d}{n:05d}",
            f"{GRADE_NAMES[grade - 1]}年级", "1班", registered, lives, "住校" if boards else "走读", left_behind,
            "1" if rng.random() < 0.005 else "0", rng.choice(DISABILITY) if rng.random() < 0.01 else "非残疾",
            guardian, relation, _phone(rng)]


def as_csv(rows: list[list[str]]) -> bytes:
    """UTF-8 with a BOM and CRLF: the CSV Excel opens without garbling the Chinese."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def county_files(**kwargs) -> dict[str, bytes]:
    """File name → CSV bytes, in import order (1-区划.csv … 5-学籍.csv)."""
    return {FILE_NAMES[sheet]: as_csv(rows) for sheet, rows in county_rows(**kwargs).items()}
