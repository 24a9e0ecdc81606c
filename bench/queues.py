"""The work queues at province scale (issue 18 item 3): the time of each page of /stuck, /cases and
/risk, first byte to last (a page is sent whole; an export is written while its rows stream from the
database, ``store.streaming``), and how many rows a page holds.

    .venv/bin/python -m bench.queues sqlite:///$PWD/bench/_out/db/bench_big.sqlite
    BAOXUE_BENCH_PG_URL=… .venv/bin/python -m bench.queues "${BAOXUE_BENCH_PG_URL%/*}/bench_big"

On a population of ``bench.generate`` (1 M open cases: 1.1 M pupils, 5.5 M duties) it adds, once,
``--watch`` open watch entries (100 000 by default) with two watch duties each, half of them past
due, the indexes of revision 0007_queues if the population predates them, and a county, a
township and a school account; then it serves the app in-process and requests each page
``--repeat`` times (the first request warms the caches and is not counted), printing one JSON line
per page: the median and worst time in ms, the rows shown and the page size. A benchmark, not a
timed test: the target (300 ms) is printed beside each figure.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime

from sqlalchemy import func, inspect, select, text

from .common import emit, log
from .generate import AS_OF

TARGET_MS = 300
INDEXES = [("duties", "ix_duties_undone_due"), ("cases", "ix_cases_opened_keys"), ("pupils", "ix_pupils_name_id"),
           ("watch_entries", "ix_watch_open_order"), ("watch_duties", "ix_watch_duties_undone_due"),
           ("duties", "ix_duties_undone_case"), ("cases", "ix_cases_pupil"),
           ("watch_entries", "ix_watch_pupil_month")]  # 0011/0015_queues, 0017_search, 0018_risk
REPLACED = [("pupils", "ix_pupils_name"), ("cases", "ix_cases_pupil_keys"), ("cases", "ix_cases_opened")]  # 0017_search, 0019_pgwrites: dropped once the new ones exist


def ensure_indexes(engine) -> None:
    from store.schema import load_models

    meta = load_models()
    with engine.begin() as conn:
        made = []
        for table, name in INDEXES:
            if name not in {i["name"] for i in inspect(conn).get_indexes(table)}:
                next(i for i in meta.tables[table].indexes if i.name == name).create(conn)
                made.append(table)
        for table, name in REPLACED:
            if name in {i["name"] for i in inspect(conn).get_indexes(table)}:
                conn.execute(text(f"DROP INDEX {name}"))
        for table in sorted(set(made)):  # the planners' statistics know the new index
            conn.execute(text(f"ANALYZE {table}"))


def ensure_watch_list(engine, n: int) -> int:
    """``n`` open watch entries (every 11th pupil) with two duties each, half due before the run's day."""
    with engine.begin() as conn:
        have = conn.scalar(text("SELECT count(*) FROM watch_entries"))
        if have >= n:
            return have
        stamp, today = AS_OF.isoformat(sep=" "), AS_OF.date().isoformat()
        pg = engine.dialect.name == "postgresql"

        def day(p):
            return f"CAST({p} AS DATE)" if pg else p

        def ts(p):
            return f"CAST({p} AS TIMESTAMP)" if pg else p

        rules = '[{"rule": "poor", "label": "贫困生", "why": "建档立卡贫困家庭（学籍花名册）"}]'
        conn.execute(text(
            "INSERT INTO watch_entries (pupil_id, school_id, class_id, since, until, rules, helper_id, policy, updated_at) "
            f"SELECT p.id, p.school_id, p.class_id, {day(':since')}, NULL, {'CAST(:rules AS JSON)' if pg else ':rules'}, "
            f"c.head_teacher_id, 'default@1', {ts(':stamp')} "
            "FROM pupils p JOIN classes c ON c.id = p.class_id "
            "WHERE p.id % 11 = 0 AND p.id NOT IN (SELECT pupil_id FROM watch_entries) ORDER BY p.id LIMIT :n"),
            {"since": "2026-10-12", "rules": rules, "stamp": stamp, "n": n - have})
        for action, due_odd, due_even in (("home_contact", "2026-11-10", "2026-11-30"),
                                          ("subsidy_check", "2026-11-30", "2026-11-13")):
            conn.execute(text(
                "INSERT INTO watch_duties (entry_id, rule_id, action, role, status, created_at, done_at, owner_id, due_on) "
                f"SELECT e.id, 'poor', '{action}', 'head_teacher', "
                "CASE WHEN e.id % 2 = 1 THEN :st_odd ELSE :st_even END, "
                f"{ts(':stamp')}, NULL, e.helper_id, CASE WHEN e.id % 2 = 1 THEN {day(':due_odd')} ELSE {day(':due_even')} END "
                "FROM watch_entries e "
                f"WHERE NOT EXISTS (SELECT 1 FROM watch_duties d WHERE d.entry_id = e.id AND d.action = '{action}')"),
                {"due_odd": due_odd, "due_even": due_even, "stamp": stamp,
                 "st_odd": "overdue" if due_odd < today else "open", "st_even": "overdue" if due_even < today else "open"})
        if engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE watch_entries; ANALYZE watch_duties"))
        else:
            conn.execute(text("ANALYZE"))
        return conn.scalar(text("SELECT count(*) FROM watch_entries"))


def accounts(factory) -> dict[str, str]:
    """username → session cookie of a county, a township and a school account (made once)."""
    from store.access.accounts import Role, create_user, start_session
    from store.db import transaction
    from store.models import Jurisdiction, School, Staff
    from store.models.accounts import User

    out = {}
    with transaction(factory) as s:
        school = s.scalar(select(School).order_by(School.id).limit(1))
        plan = {"bench_county": dict(role=Role.county),
                "bench_township": dict(role=Role.township, township_id=school.township_id),
                "bench_school": dict(role=Role.school_staff, school_id=school.id,
                                     staff_id=s.scalar(select(Staff.id).where(Staff.school_id == school.id).limit(1)))}
        for name, place in plan.items():
            user = s.scalar(select(User).where(User.username == name)) or create_user(
                s, username=name, password="bench-2026-queues", now=AS_OF, **place)
            out[name] = start_session(s, user, now=AS_OF, hours=24)[0]
        assert s.scalar(select(func.count()).select_from(Jurisdiction)) > 0
    return out


def pupil_probe(engine) -> tuple[str, str]:
    """A name and a 学籍号 of a pupil with an open case, for the search figures."""
    with engine.connect() as conn:
        return tuple(conn.execute(text(
            "SELECT p.name, p.student_no FROM cases c JOIN pupils p ON p.id = c.pupil_id "
            "WHERE c.state = 'absent' ORDER BY c.id LIMIT 1")).one())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--watch", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", default="", help="time only the pages whose path contains this (e.g. 'q=', '/risk')")
    a = ap.parse_args()

    from fastapi.testclient import TestClient

    from store.db import Settings, make_engine, session_factory
    from web.app import create_app
    from web.deps import SESSION_COOKIE
    from web.services import InProcess

    engine = make_engine(a.url)
    t0 = time.perf_counter()
    ensure_indexes(engine)
    watch = ensure_watch_list(engine, a.watch)
    log(f"indexes and {watch} watch entries ready in {time.perf_counter() - t0:.1f}s")
    factory = session_factory(engine)
    cookies = accounts(factory)
    name, student_no = pupil_probe(engine)
    with engine.connect() as conn:
        cases = conn.scalar(text("SELECT count(*) FROM cases"))
    app = create_app(Settings(database_url=a.url, archive_dir=tempfile.mkdtemp()), factory=factory,
                     clock=lambda: AS_OF, deployments=InProcess(), init=False)
    pages = [
        ("bench_county", "/stuck"), ("bench_county", "/stuck?kind=case&sort=owner"),
        ("bench_county", "/stuck?kind=case&page=20"), ("bench_township", "/stuck"), ("bench_school", "/stuck"),
        ("bench_county", "/cases"), ("bench_county", "/cases?sort=due"), ("bench_county", "/cases?page=100"),
        ("bench_county", f"/cases?q={name}"), ("bench_county", f"/cases?q={name[0]}"),
        ("bench_county", f"/cases?q={student_no}"), ("bench_school", "/cases"), ("bench_school", f"/cases?q={name[0]}"),
        ("bench_county", "/risk"), ("bench_county", "/risk?overdue=1"), ("bench_county", "/risk?page=20"),
        ("bench_county", "/risk/outcomes"),
        ("bench_township", "/risk"), ("bench_school", "/risk"),
        ("bench_county", "/stuck.xlsx?kind=case"),
        ("bench_county", "/stuck?kind=watch"), ("bench_county", "/stuck?kind=all&per=100"),
    ]
    pages = [(user, path) for user, path in pages if a.only in path]
    backend = engine.dialect.name
    with TestClient(app) as client:
        for user, path in pages:
            if a.only and a.only not in path:
                continue
            client.cookies.set(SESSION_COOKIE, cookies[user])
            times, cpu, size, rows = [], [], 0, 0
            for i in range(a.repeat + 1):
                t, c = time.perf_counter(), time.process_time()
                r = client.get(path)
                ms = (time.perf_counter() - t) * 1000
                assert r.status_code == 200, (path, r.status_code, r.text[:300])
                if i:
                    times.append(ms)
                    cpu.append((time.process_time() - c) * 1000)
                size = len(r.content)
                rows = r.text.count("<tr") - 1 if path.split("?")[0] in ("/stuck", "/cases", "/risk") else 0
            med = statistics.median(times)
            # cpu_ms: this process's CPU time (the app and, on SQLite, the database engine; not PostgreSQL's server):
            # on a shared machine the wall time also holds the wait for a core and for the disk
            emit(f"page {path} ({user.removeprefix('bench_')})", med, "ms", db=backend, worst_ms=max(times), rows=rows,
                 cpu_ms=round(statistics.median(cpu), 1),
                 bytes=size, cases=cases, watch_entries=watch, target=TARGET_MS, met=med <= TARGET_MS,
                 at=datetime.now().isoformat(timespec="seconds"))


if __name__ == "__main__":
    main()
