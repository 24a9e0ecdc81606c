"""The demo's census (排查) and hand-off receipts (送达回证), called from demo/scenario.py's staff rounds.

- school day 2, 10:30: the townships' village registers arrive (one CSV under out/census/: enrolled
  children, children enrolled nowhere, approved deferrals, too young/old, and the rows clerks get
  wrong); the import is recorded and the ``census_import`` flow runs once for it;
- school day 6: one of the children is enrolled (a roster import of the ID) and its case closes;
  another turns out to have an approved deferral (exempted); the villages record persuasion;
- every morning round from day 3: the bodies that received papers sign for about two thirds of
  them a day or more after they were sent; the rest stay open and, past the policy's time, make
  their cases stuck.
"""
from __future__ import annotations

import csv
import io
import random
from collections import Counter
from datetime import datetime, time as dtime, timedelta
from pathlib import Path

from sqlalchemy import func, select

IMPORT_DAY, ENROL_DAY = 2, 6
SIGNERS = {"village_committee": "村委会主任", "township": "镇政府办公室", "judicial_office": "司法所", "police": "派出所",
           "education_bureau": "教育局基教股"}


def census_round(factory, now: datetime, day_no: int, out: Path, run=None) -> Counter:
    """``run``: the demo's runner of deployment flow runs (the census-import deployment), else a plain flow call."""
    done: Counter = Counter()
    if now.time() != dtime(10, 30):
        return done
    if day_no == IMPORT_DAY:
        done += _import(factory, now, out, run)
    if day_no == ENROL_DAY:
        done += _enrol_and_exempt(factory, now)
    if day_no >= 3:
        done += _acknowledge(factory, now)
    return done


def _import(factory, now: datetime, out: Path, run=None) -> Counter:
    from flows.census import census_import
    from store.prevention.census import import_census
    from demo.census_register import village_register
    from store.db import transaction

    with transaction(factory) as s:
        reg = village_register(s, seed=now.day, year=now.year, enrolled=120, unenrolled=14, exempted=4, out_of_age=4)
        folder = out / "census"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / reg.filename).write_bytes(reg.content)
        imported = import_census(s, reg.content, reg.filename, actor="镇政府（村委会排查名单）", now=now, source="村委会入户排查")
    if run is not None:  # one run of the census-import deployment for the whole register
        from deploy.deployments import spec

        run(spec("census-import"), import_id=imported.import_id, as_of=now)
    else:
        census_import(import_id=imported.import_id, as_of=now)
    return Counter({"census_import": 1})


def _enrol_and_exempt(factory, now: datetime) -> Counter:
    from store.prevention import census
    from store.models.census import CensusCase
    from store.db import transaction
    from store.models import School, SchoolClass
    from store.ingest.roster import import_roster

    done: Counter = Counter()
    with transaction(factory) as s:
        open_cases = s.scalars(select(CensusCase).where(CensusCase.state == "not_enrolled").order_by(CensusCase.id)).all()
        if len(open_cases) < 3:
            return done
        child = open_cases[0]
        school = s.get(School, child.school_id)
        klass = s.scalars(select(SchoolClass).where(SchoolClass.school_id == school.id).order_by(SchoolClass.grade)).first()
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["学校代码", "学籍号", "姓名", "身份证号", "年级", "班级", "监护人"])
        w.writerow([school.code, f"GCENSUS{child.id:05d}", child.name, child.id_number, klass.grade, klass.name, child.guardian or ""])
        result = import_roster(s, buf.getvalue().encode(), "enrolment.csv", now=now)  # 入学: closes the census case
        done["census_enrolled"] += len(result.census_closed)
        census.act(s, open_cases[1].id, "exempt", actor="县教育局", reason="延缓入学：身体原因，经县教育局批准延缓一年",
                   now=now)
        done["census_exempted"] += 1
        for c in open_cases[2:6]:
            census.act(s, c.id, "record_persuasion", actor="村委会", action="village_persuasion", now=now,
                       reason="村干部入户动员，监护人表示将送子女入学")
            done["census_persuasion"] += 1
    return done


def _acknowledge(factory, now: datetime) -> Counter:
    from store.models.census import Handoff
    from store.db import transaction
    from store.duties.handoffs import acknowledge

    done: Counter = Counter()
    with transaction(factory) as s:
        pending = s.scalars(select(Handoff).where(Handoff.received_at.is_(None), Handoff.sent_at <= now - timedelta(days=1))
                            .order_by(Handoff.id)).all()
        for h in pending:
            if random.Random(h.id * 7919).random() < 2 / 3:
                acknowledge(s, h.id, received_by=f"{SIGNERS.get(h.recipient, '')} 经办人", received_at=now,
                            actor="demo:staff", now=now)
                done["handoff_ack"] += 1
    return done


def summary(factory, as_of: datetime) -> dict:
    from store.models.census import CensusCase, CensusImport, Handoff
    from store.db import transaction

    with transaction(factory) as s:
        imp = s.scalar(select(CensusImport).order_by(CensusImport.id.desc()).limit(1))
        return {
            "register": imp.summary if imp else {},
            "cases_by_state": dict(s.execute(select(CensusCase.state, func.count()).group_by(CensusCase.state)).all()),
            "handoffs": s.scalar(select(func.count()).select_from(Handoff)) or 0,
            "handoffs_received": s.scalar(select(func.count()).select_from(Handoff).where(Handoff.received_at.is_not(None))) or 0,
            "handoffs_overdue": s.scalar(select(func.count()).select_from(Handoff).where(
                Handoff.received_at.is_(None), Handoff.due_at <= as_of)) or 0,
        }
