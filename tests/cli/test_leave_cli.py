"""`baoxue leave|transfer|lesson`: a routed, approved leave; an unapproved one and an unconfirmed 转出 open cases."""
from __future__ import annotations

import json

from tests.cli.test_cli import baoxue, county, pupil_numbers  # noqa: F401 - the county fixture

AT = "2026-11-16T07:30"


def test_leave_transfer_and_lesson_commands(county):  # noqa: F811
    db = county
    a, b, c, d = pupil_numbers(db)[:4]
    made = json.loads(baoxue(db, "leave", "apply", a, "--kind", "病假", "--first", "2026-11-16", "--last", "2026-11-18",
                             "--at", AT, "--json"))
    assert (made["days"], made["role"]) == (3, "principal")
    pending = json.loads(baoxue(db, "leave", "list", "--pending", "--json"))
    assert [p["id"] for p in pending] == [made["id"]]
    done = json.loads(baoxue(db, "leave", "approve", str(made["id"]), "--actor", "校长", "--at", AT, "--json"))
    assert done["decision"] == "approved"
    assert "不能更改" in baoxue(db, "leave", "refuse", str(made["id"]), "--at", AT, code=1)
    out = json.loads(baoxue(db, "transfer", "out", b, "--to-school", "外县中学", "--day", "2026-11-16", "--at", AT,
                            "--json"))
    assert out["due_at"] == "2026-11-30 17:00:00"
    assert sorted(r["结果"] for r in json.loads(baoxue(db, "leave", "list", "--json"))) == ["已批准", "待确认转入"]
    code = _school_code(db)
    lesson = json.loads(baoxue(db, "lesson", "absent", code, c, "--lesson", "5", "--day", "2026-11-16",
                               "--at", "2026-11-16T14:00", "--json"))
    assert lesson["case_id"] and not lesson["duplicate"]
    assert json.loads(baoxue(db, "lesson", "not-home", d, "--parent", "王母", "--day", "2026-11-16",
                             "--at", "2026-11-16T18:00", "--json"))["duty_id"]
    baoxue(db, "advance", "--as-of", "2026-12-01T09:30")
    cases = {x["student_no"]: x for x in json.loads(baoxue(db, "cases", "--json"))}
    assert b in cases and cases[b]["opened_on"] == "2026-11-16"  # the unconfirmed 转出: a case
    assert c in cases and a not in cases


def _school_code(db: str) -> str:
    from sqlalchemy import select
    from store.db import make_engine
    from store.models import School
    engine = make_engine(db)
    with engine.connect() as conn:
        code = conn.scalar(select(School.code).order_by(School.id))
    engine.dispose()
    return code
