"""A village register (排查名单) for a generated county: for the demo and the tests.

Most children on it are enrolled pupils (they match by 身份证号); the rest are what a census is
for: children of school age enrolled nowhere, some with an approved deferral or exemption,
some too young or too old, and the rows a clerk gets wrong (bad check digit, one ID twice, a name
that differs from the roster, a birth date that differs from the ID, a village that does not exist).
"""
from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from machines.identity import id_check_digit

from store.models import Guardian, Jurisdiction, Pupil
from demo.synthetic import SURNAMES, _name

HEADER = ["姓名", "身份证号", "出生日期", "性别", "村（社区）", "乡镇", "监护人", "联系电话", "家庭住址", "缓免学", "缓免原因"]


@dataclass
class Register:
    content: bytes
    filename: str
    expected: dict[str, list[str]] = field(default_factory=dict)  # outcome → names


def _id(region: int, birth: date, n: int) -> str:
    first17 = f"{region:06d}{birth:%Y%m%d}{n:03d}"
    return first17 + id_check_digit(first17)


def village_register(session: Session, *, seed: int = 11, year: int = 2026, enrolled: int = 30, unenrolled: int = 6,
                     exempted: int = 2, out_of_age: int = 2, bad_rows: bool = True, villages: int | None = None) -> Register:
    """A CSV register of the county's villages (or of the first ``villages`` of them)."""
    rng = random.Random(seed)
    q = select(Jurisdiction).where(Jurisdiction.level == "village").order_by(Jurisdiction.id)
    vs = session.scalars(q).all()[:villages] if villages else session.scalars(q).all()
    townships = {j.id: j.name for j in session.scalars(select(Jurisdiction).where(Jurisdiction.level == "township"))}
    rows: list[list[str]] = []
    expected: dict[str, list[str]] = {k: [] for k in ("enrolled", "not_enrolled", "exempted", "out_of_age", "ambiguous", "invalid")}
    pupils = session.execute(select(Pupil, Guardian.name).join(Guardian, Guardian.pupil_id == Pupil.id)
                             .where(Pupil.village_id.in_([v.id for v in vs]), Pupil.id_number.is_not(None))
                             .order_by(Pupil.id)).all()
    seen = set()
    picked = []
    for p, g in pupils:
        if p.id not in seen:
            seen.add(p.id)
            picked.append((p, g))
    picked = picked[:enrolled]
    by_id = {v.id: v for v in vs}

    def row(name, idn, birth, gender, village, guardian, exemption="", reason=""):
        return [name, idn, birth, gender, village.name, townships.get(village.parent_id, ""), guardian,
                f"13{rng.randrange(10**9):09d}", f"{townships.get(village.parent_id, '')}{village.name}{rng.randint(1, 9)}组",
                exemption, reason]

    for p, g in picked:
        v = by_id.get(p.village_id, vs[0])
        rows.append(row(p.name, p.id_number, p.birth_date.isoformat(), p.gender or "", v, g))
        expected["enrolled"].append(p.name)
    region = 990000 + seed % 9000
    n = 0

    def child(age: int) -> tuple[str, str, date, str]:
        nonlocal n
        n += 1
        birth = date(year - age, rng.randint(1, 8), rng.randint(1, 28))  # before 08-31: ``age`` on the reference date
        idn = _id(region, birth, n)
        return _name(rng), idn, birth, "男" if int(idn[16]) % 2 else "女"

    for i in range(unenrolled):
        name, idn, birth, gender = child(rng.choice([6, 7, 9, 12, 14, 15]))
        rows.append(row(name, idn, birth.isoformat(), gender, vs[i % len(vs)], rng.choice(SURNAMES) + "建国"))
        expected["not_enrolled"].append(name)
    for i in range(exempted):
        name, idn, birth, gender = child(rng.choice([6, 8, 11]))
        kind, why = [("延缓入学", "身体原因，经县教育局批准延缓一年"), ("免予入学", "重度残疾，送教上门")][i % 2]
        rows.append(row(name, idn, birth.isoformat(), gender, vs[(i + 1) % len(vs)], rng.choice(SURNAMES) + "秀英", kind, why))
        expected["exempted"].append(name)
    for i in range(out_of_age):
        name, idn, birth, gender = child([4, 17][i % 2])
        rows.append(row(name, idn, birth.isoformat(), gender, vs[i % len(vs)], rng.choice(SURNAMES) + "国强"))
        expected["out_of_age"].append(name)
    if bad_rows and picked:
        name, idn, birth, gender = child(10)
        bad = idn[:17] + ("0" if idn[17] != "0" else "1")
        rows.append(row(name, bad, birth.isoformat(), gender, vs[0], "王建华"))  # wrong check digit
        expected["invalid"].append(name)
        name, idn, birth, gender = child(8)
        rows.append(row(name, idn, birth.isoformat(), gender, vs[0], "李桂兰"))
        rows.append(row(name + "之弟", idn, birth.isoformat(), gender, vs[0], "李桂兰"))  # the same ID twice
        expected["ambiguous"] += [name, name + "之弟"]
        p, g = picked[0]
        rows.append(row(p.name[0] + "某某", p.id_number, p.birth_date.isoformat(), p.gender or "", by_id.get(p.village_id, vs[0]), g))
        expected["ambiguous"].append(p.name[0] + "某某")  # a roster ID under another name
        expected["enrolled"].remove(p.name)
        rows = [r for r in rows if not (r[1] == p.id_number and r[0] == p.name)]
        name, idn, birth, gender = child(9)
        rows.append(row(name, idn, date(birth.year, birth.month, birth.day % 28 + 1).isoformat(), gender, vs[0], "赵春梅"))
        expected["ambiguous"].append(name)  # the birth date differs from the ID
        name, idn, birth, gender = child(7)
        nowhere = row(name, idn, birth.isoformat(), gender, vs[0], "孙海燕")
        nowhere[4:6] = ["桃源村", ""]
        rows.append(nowhere)
        expected["invalid"].append(name)  # no such village
    rng.shuffle(rows)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(HEADER)
    w.writerows(rows)
    return Register(buf.getvalue().encode("utf-8-sig"), f"census-{year}-{seed}.csv", expected)
