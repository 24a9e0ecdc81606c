"""The figures: each runs in its own process (``python -m bench.figures NAME URL …``), on a copy
of a generated population, and prints JSON lines (see ``bench.common``).

Populations are made by ``bench.generate`` (the runner builds them first); every figure that
writes works on a fresh copy, and its baseline on another fresh copy of the same rows.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import statistics
import time
from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import Date, DateTime, bindparam, func, select, text
from sqlalchemy.orm import Session

from machines.case_machine import escalation_pairs
from store.cases.advance import BATCH_SIZES, advance, overdue_batch
from store.bulk import paused_gc
from store.cases.context import CaseContext, effective_day
from store.db import make_engine, session_factory, transaction

from .common import backend_of, copy_db, emit, log, peak_rss_mb, reset_peak_rss, timer
from .generate import AS_OF

TARGETS = {
    "advance_vs_raw": 0.40, "advance_vs_spiff": 50, "advance_vs_per_case": 15, "scale_cost": 2.0,
    "intake_vs_executemany": 0.50, "bulk_vs_copy": 0.50, "report_vs_raw": 4.0, "rss_mb": 500,
}


def _copy(base: str, suffix: str) -> str:
    dst = base.replace(".sqlite", f"_{suffix}.sqlite") if backend_of(base) == "sqlite" else f"{base}_{suffix}"
    copy_db(base, dst)
    return dst


def _drop(url: str) -> None:
    from .common import drop_db

    drop_db(url)


def _policies(factory) -> list:
    with transaction(factory) as s:
        ctx = CaseContext(s)
        groups = s.execute(text("SELECT DISTINCT policy_name, policy_version FROM cases")).all()
        return [ctx.policy(n, v) for n, v in groups]


# -- raw set-based UPDATE … RETURNING of the rows the advance moves -------------------------------
def sweep_steps(factory, as_of: datetime):
    """The advance's own plan: (policy, version, calendar, source → target, max opened_seq) per step."""
    from store.cases.advance import plan

    with transaction(factory) as s:
        return plan(s, CaseContext(s), as_of)


def raw_escalation_sql(steps, as_of: datetime, *, postgres: bool, select_only: bool = False):
    """One statement for every due case of every step: the same range predicate on ``opened_seq``
    (index ``ix_cases_due``) the advance uses, so both read exactly the same rows the same way.

    Steps run in ladder order in the advance, but a case matches at most one step (its state), so
    one UPDATE over all steps moves the same set.
    """
    values, params = [], {}
    i = "CAST({} AS INTEGER)" if postgres else "{}"
    for k, st in enumerate(steps):
        values.append(f"(:n{k}, {i.format(':v' + str(k))}, :c{k}, :s{k}, :t{k}, {i.format(':m' + str(k))})")
        params.update({f"n{k}": st.policy_name, f"v{k}": st.policy_version, f"c{k}": st.calendar_key,
                       f"s{k}": st.source, f"t{k}": st.target, f"m{k}": st.max_opened_seq})
    due = f"""
        WITH steps(policy_name, policy_version, calendar_key, source, target, max_seq) AS (VALUES {", ".join(values)}),
        due AS (
            SELECT c.id, p.target FROM steps p
            JOIN cases c ON c.policy_name = p.policy_name AND c.policy_version = p.policy_version
                        AND c.calendar_key = p.calendar_key AND c.state = p.source AND c.opened_seq <= p.max_seq
        )"""
    if select_only:
        return text(due + " SELECT id FROM due ORDER BY id"), params
    sql = text(due + """
        UPDATE cases SET state = due.target, version = cases.version + 1, updated_at = :as_of
        FROM due WHERE cases.id = due.id
        RETURNING cases.id""").bindparams(bindparam("as_of", type_=DateTime))
    params["as_of"] = as_of
    return sql, params


RAW_OVERDUE = text("UPDATE duties SET status = 'overdue', overdue_at = :a WHERE status = 'open' AND due_at <= :a "
                   "RETURNING id").bindparams(bindparam("a", type_=DateTime))


def run_raw_update(url: str, as_of: datetime) -> tuple[int, float, int, float]:
    """The raw set-based statements: escalations (one UPDATE … RETURNING), then overdue duties."""
    eng = make_engine(url)
    factory = session_factory(eng)
    steps = sweep_steps(factory, as_of)  # planned outside the timing, as the advance plans before its batches
    sql, params = raw_escalation_sql(steps, as_of, postgres=backend_of(url) == "postgresql")
    with timer() as t:
        with transaction(factory) as s:
            n = len(s.execute(sql, params).all())
    with timer() as t2:
        with transaction(factory) as s:
            n2 = len(s.execute(RAW_OVERDUE, {"a": as_of}).all())
    eng.dispose()
    return n, t["s"], n2, t2["s"]


def run_advance(url: str, as_of: datetime, batch_size: int | None) -> tuple[dict, float, float, float]:
    """store.cases.advance.advance; returns its report, total seconds, escalation-phase seconds, peak RSS."""
    eng = make_engine(url)
    factory = session_factory(eng)
    marks: list[tuple[str, float]] = []
    reset_peak_rss()
    t0 = time.perf_counter()
    report = advance(factory, as_of, batch_size=batch_size, keep_ids=False,
                     progress=lambda what, n: marks.append((what, time.perf_counter() - t0)))
    total = time.perf_counter() - t0
    rss = peak_rss_mb()
    eng.dispose()
    # the escalation phase: up to the commit of its last batch (reported through ``progress``); the run's
    # one WAL checkpoint (SQLite) comes after the overdue duties, in the whole run's time
    esc_end = max((t for what, t in marks if what not in ("overdue", "checkpoint")), default=total)
    return report.as_dict(), total, esc_end, rss


def fig_advance(base: str, label: str, batch_size: int, keep: bool = False) -> None:
    """Daily advance beside one raw set-based UPDATE … RETURNING of the same rows."""
    db = backend_of(base)
    raw_url, adv_url = _copy(base, "raw"), _copy(base, "adv")
    n_raw, t_raw, n_raw_ovd, t_raw_ovd = run_raw_update(raw_url, AS_OF)
    rep, t_all, t_esc, rss = run_advance(adv_url, AS_OF, batch_size)
    batch_size = batch_size or BATCH_SIZES[db]
    n = rep["total_transitions"]
    if n != n_raw:
        log(f"WARNING: advance moved {n}, raw UPDATE {n_raw}")
    ratio = (n / t_esc) / (n_raw / t_raw)
    emit(f"advance {label} [{db}]: escalations (state + history + duties + documents)", n / t_esc, "transitions/s",
         n_raw / t_raw, db=db, figure="advance", transitions=n, seconds=t_esc, raw_seconds=t_raw,
         batch_size=batch_size, rss_mb=rss, target=TARGETS["advance_vs_raw"], met=ratio >= TARGETS["advance_vs_raw"],
         note="baseline: one UPDATE cases … RETURNING of the same rows (state only)")
    emit(f"advance {label} [{db}]: whole daily run incl. overdue duties", (n + rep["overdue"]) / t_all, "rows/s",
         (n_raw + n_raw_ovd) / (t_raw + t_raw_ovd), db=db, figure="advance_all", transitions=n,
         overdue=rep["overdue"], seconds=t_all, raw_seconds=t_raw + t_raw_ovd, rss_mb=rss,
         note="escalations + duties marked overdue; baseline: the two raw UPDATE … RETURNING statements")
    if not keep:
        _drop(raw_url)
        _drop(adv_url)


def derive_fewer_due(base: str, dst: str, keep_due: int) -> None:
    """A copy of ``base`` where only ``keep_due`` of its due cases remain (the others never happened).

    Used for the largest point of the cost-against-size curve: generating a second population of a
    million open cases takes minutes, deleting 90 k of the big one's due cases takes seconds. The
    kept cases are spread over every transition (every k-th due case by id).
    """
    copy_db(base, dst)
    eng = make_engine(dst)
    factory = session_factory(eng)
    select_due, params = raw_escalation_sql(sweep_steps(factory, AS_OF), AS_OF,
                                            postgres=backend_of(dst) == "postgresql", select_only=True)
    eng.dispose()
    from sqlalchemy import create_engine

    plain = create_engine(dst)  # no foreign_keys pragma: the deletions below keep the rows consistent
    with plain.begin() as s:
        if backend_of(dst) == "postgresql":
            s.execute(text("SET LOCAL session_replication_role = replica"))
        ids = s.scalars(select_due, params).all()
        step = max(1, len(ids) // keep_due)
        keep = set(ids[::step][:keep_due])
        gone = [i for i in ids if i not in keep]
        s.execute(text("CREATE TEMPORARY TABLE gone (id INTEGER PRIMARY KEY)"))
        s.execute(text("INSERT INTO gone (id) VALUES (:id)"), [{"id": i} for i in gone])
        s.execute(text("UPDATE cases SET relapse_of = NULL WHERE relapse_of IN (SELECT id FROM gone)"))
        for t in ("document_requests", "duties", "case_events"):
            s.execute(text(f"DELETE FROM {t} WHERE case_id IN (SELECT id FROM gone)"))
        s.execute(text("DELETE FROM cases WHERE id IN (SELECT id FROM gone)"))
    plain.dispose()  # planner statistics: the base's (copied with it) still describe 91 % of the rows
    log(f"derived {dst}: kept {len(keep)} of {len(ids)} due cases")


def fig_scale(base: str, open_cases: int, due: int, batch_size: int) -> None:
    """The same number of due cases at a given number of open cases (one point of the curve)."""
    db = backend_of(base)
    url = _copy(base, "scale")
    rep, t_all, t_adv, rss = run_advance(url, AS_OF, batch_size)
    emit(f"advance {due:,} due at {open_cases:,} open [{db}]: escalation phase", t_adv, "s", db=db, figure="scale",
         open=open_cases, due=due, transitions=rep["total_transitions"], overdue=rep["overdue"], whole_run_s=t_all,
         rate=rep["total_transitions"] / t_adv, rss_mb=rss,
         note="the duties falling due grow with the open cases: the whole run's time (whole_run_s) includes them")
    _drop(url)


def fig_per_case(base: str, label: str, batch_size: int, with_reference: bool = False) -> None:
    """The per-case path (python-statemachine bound to each ORM row) beside the set-based advance.

    The target's line (issue 20): the per-case loop as a competent developer writes it with
    ``opened_seq`` — candidates read through ``ix_cases_due``, a streak by subtraction
    (``advance_per_case(…, streaks="opened_seq")``). ``with_reference``: also the reference path
    that counts every open case's school days in its calendar (the figure before issue 20)."""
    db = backend_of(base)
    set_url = _copy(base, "set")
    rep, t_set, _, _ = run_advance(set_url, AS_OF, batch_size)
    _drop(set_url)
    set_rate = rep["total_transitions"] / t_set
    from store.cases.per_case import advance_per_case

    for streaks in ("opened_seq", "calendar") if with_reference else ("opened_seq",):
        pc_url = _copy(base, "pc")
        eng = make_engine(pc_url)
        factory = session_factory(eng)
        reset_peak_rss()
        cpu0 = time.process_time()
        with timer() as t:
            with transaction(factory) as s:
                res = advance_per_case(s, CaseContext(s), AS_OF, streaks=streaks)
        cpu = time.process_time() - cpu0
        rss = peak_rss_mb()
        eng.dispose()
        _drop(pc_url)
        if res["transitions"] != rep["total_transitions"]:
            log(f"WARNING: per-case ({streaks}) moved {res['transitions']}, the advance {rep['total_transitions']}")
        pc_rate = res["transitions"] / t["s"]
        target = streaks == "opened_seq"
        what = ("opened_seq streaks, candidates by index" if target
                else "school days counted per case, every open case (reference, before issue 20)")
        emit(f"per-case path {label}, {what} [{db}]", pc_rate, "transitions/s", set_rate, ratio=set_rate / pc_rate,
             db=db, figure="per_case" if target else "per_case_calendar", seconds=t["s"], cpu_seconds=cpu,
             set_seconds=t_set, transitions=res["transitions"], rss_mb=rss,
             note="ratio = set-based advance ÷ per-case path, same population",
             **({"target": TARGETS["advance_vs_per_case"], "met": set_rate / pc_rate >= TARGETS["advance_vs_per_case"]}
                if target else {}))


# -- duty-deadline sweep ----------------------------------------------------------------------------
def fig_sweep(base: str, label: str, due_duties: int, batch_size: int) -> None:
    """Marking overdue duties among ``open duties`` (status open), beside one raw UPDATE … RETURNING."""
    db = backend_of(base)
    prep = _copy(base, "sweep")
    eng = make_engine(prep)
    # every open case's latest duty becomes an open one: due later this week, or (1 in k) since
    # yesterday's sweep, so this sweep has exactly those to mark
    later, since = AS_OF + timedelta(days=2, hours=7, minutes=30), AS_OF - timedelta(hours=16, minutes=30)
    with eng.begin() as c:
        c.execute(text("""UPDATE duties SET status = 'open', done_at = NULL, overdue_at = NULL, due_at = :later
                          WHERE id IN (SELECT max(d.id) FROM duties d JOIN cases k ON k.id = d.case_id
                                       WHERE k.state NOT IN ('returned', 'excused', 'escalated') GROUP BY d.case_id)""")
                  .bindparams(bindparam("later", type_=DateTime)), {"later": later})
        n_open = c.scalar(text("SELECT count(*) FROM duties WHERE status = 'open'"))
        ids = c.scalars(text("SELECT id FROM duties WHERE status = 'open' ORDER BY id")).all()
        step = max(1, len(ids) // due_duties)
        chosen = ids[::step][:due_duties]
        c.execute(text("CREATE TEMPORARY TABLE pick (id INTEGER PRIMARY KEY)"))
        c.execute(text("INSERT INTO pick (id) VALUES (:id)"), [{"id": i} for i in chosen])
        c.execute(text("UPDATE duties SET due_at = :since WHERE id IN (SELECT id FROM pick)")
                  .bindparams(bindparam("since", type_=DateTime)), {"since": since})
        n_due = c.scalar(text("SELECT count(*) FROM duties WHERE status = 'open' AND due_at <= :a")
                         .bindparams(bindparam("a", type_=DateTime)), {"a": AS_OF})
    eng.dispose()
    from .common import analyze

    analyze(prep)
    raw_url = _copy(prep, "raw")
    factory = session_factory(eng := make_engine(prep))
    batch_size = batch_size or BATCH_SIZES[db]
    reset_peak_rss()
    marked = 0
    with timer() as t:
        while True:  # the loop store.cases.advance.advance runs after the escalations
            with transaction(factory) as s:
                got = overdue_batch(s, AS_OF, batch_size)
            if not got:
                break
            marked += len(got)
    rss = peak_rss_mb()
    eng.dispose()
    eng = make_engine(raw_url)
    with timer() as tr:
        with eng.begin() as c:
            n_raw = len(c.execute(text("UPDATE duties SET status = 'overdue', overdue_at = :a WHERE status = 'open' "
                                       "AND due_at <= :a RETURNING id")
                                  .bindparams(bindparam("a", type_=DateTime)), {"a": AS_OF}).all())
    eng.dispose()
    emit(f"duty-deadline sweep {label}, {n_open:,} open duties [{db}]", marked / t["s"], "duties/s", n_raw / tr["s"],
         db=db, figure="sweep", open_duties=n_open, due=n_due, marked=marked, seconds=t["s"], raw_seconds=tr["s"],
         rss_mb=rss)
    _drop(prep)
    _drop(raw_url)


# -- monthly report ----------------------------------------------------------------------------------
def fig_report(base: str, label: str, repeat: int = 3, per_scope: bool = False) -> None:
    """The monthly report over all cases beside the raw GROUP BY (``per_scope``: the report asked
    one county at a time, as before the third round — an extra line, not the target's)."""
    db = backend_of(base)
    eng = make_engine(base)
    factory = session_factory(eng)
    product, what = _report_callable(per_scope)
    raw = text("SELECT school_id, state, reason, count(*) FROM cases GROUP BY school_id, state, reason")
    with eng.connect() as c:
        n_cases = c.scalar(text("SELECT count(*) FROM cases"))
        c.execute(raw).all()  # warm the cache for both
    reset_peak_rss()
    t_prod, t_raw = [], []
    for _ in range(repeat):
        with timer() as t:
            with transaction(factory) as s:
                product(s)
        t_prod.append(t["s"])
        if t["s"] > 30:  # one run is enough when a run takes this long (and the rest would take minutes)
            repeat = 1
        with timer() as t:
            with eng.connect() as c:
                c.execute(raw).all()
        t_raw.append(t["s"])
        if repeat == 1:
            break
    rss = peak_rss_mb()
    eng.dispose()
    tp, tr = statistics.median(t_prod), statistics.median(t_raw)
    if per_scope:
        emit(f"monthly report {label}, one county at a time (extra) [{db}]", tp, "s", tr, ratio=tp / tr, db=db,
             figure="report_per_scope", cases=n_cases, what=what, rss_mb=rss,
             note="ratio = report time ÷ raw GROUP BY time; the path before ledger_figures_many")
        return
    emit(f"monthly report {label} [{db}]", tp, "s", tr, ratio=tp / tr, db=db, figure="report", cases=n_cases,
         what=what, rss_mb=rss, note="ratio = report time ÷ raw GROUP BY time (target ≤ 4)",
         target=TARGETS["report_vs_raw"], met=tp / tr <= TARGETS["report_vs_raw"])


def _report_callable(per_scope: bool = False):
    """The figures of every county for the month of the run, as the monthly report files them
    (``store.reporting.reports.file_level`` → ``ledger_figures_many``: one set of grouped passes for all
    counties); ``per_scope``: ``ledger_figures`` once per county (each county's passes read nearly
    the whole ``cases`` table, its cases being spread over it)."""
    from store.reporting.reports import ledger_figures, ledger_figures_many, month_period, scopes

    period = month_period(AS_OF.year, AS_OF.month)

    if per_scope:
        def run(s: Session):
            return [ledger_figures(s, scope, period, AS_OF) for scope in scopes(s, "county")]
        return run, "store.reporting.reports.ledger_figures once per county, month of the run"

    def run_many(s: Session):
        return ledger_figures_many(s, scopes(s, "county"), period, AS_OF)
    return run_many, "store.reporting.reports.ledger_figures_many for all counties at once, month of the run"


# -- intake -----------------------------------------------------------------------------------------
def _file_bytes(rows) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["学校代码", "学籍号", "出勤状态", "缺勤原因"])
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


def _parse_file(data: bytes):
    """The county file by school, read by the product's own parser (issue 20: this bench used to split the
    CSV itself): ``store.ingest.attendance_files.parse_attendance``, streaming, no row count."""
    from store.ingest.attendance_files import parse_attendance

    parsed = parse_attendance(data, filename="county.csv")
    if parsed.error_count:
        raise RuntimeError(f"the county file has {parsed.error_count} bad rows: {parsed.errors[:3]}")
    return parsed.by_school


WRITTEN = {  # tables the intake writes, and how to find its new rows
    "submissions": "id, school_id, day, source, content_sha256, submitted_by, received_at, summary",
    "attendance_marks": "id, pupil_id, school_id, day, status, submission_id, recorded_at",
    "cases": "id, pupil_id, school_id, class_id, state, version, policy_name, policy_version, calendar_key, opened_on, "
             "opened_seq, closed_on, reason, outcome_reason, relapse_of, special_groups, created_at, updated_at",
    "case_events": "id, case_id, seq, event, from_state, to_state, actor, at, recorded_at, reason, payload, "
                   "idempotency_key",
    "document_requests": "id, case_id, kind, event_seq, status, requested_at, document_id, error",
}


def _max_ids(url: str) -> dict[str, int]:
    eng = make_engine(url)
    with eng.connect() as c:
        out = {t: c.scalar(text(f"SELECT coalesce(max(id), 0) FROM {t}")) for t in WRITTEN}
    eng.dispose()
    return out


def _written_rows(url: str, before: dict[str, int]):
    """What the intake wrote: new rows per table (JSON as its text), and the cases/duties it changed."""
    import sqlite3

    new: dict[str, list] = {}
    if backend_of(url) == "sqlite":
        from .common import sqlite_path

        con = sqlite3.connect(sqlite_path(url))
        q = lambda sql: con.execute(sql).fetchall()
    else:
        eng = make_engine(url)
        conn = eng.connect()
        q = lambda sql: [tuple(r) for r in conn.execute(text(sql)).all()]
    for t, cols in WRITTEN.items():
        new[t] = q(f"SELECT {cols} FROM {t} WHERE id > {before[t]} ORDER BY id")
        if backend_of(url) != "sqlite" and (jc := _json_col(t)):  # psycopg reads JSON as objects: back to text
            new[t] = [tuple(json.dumps(v) if i in jc and not isinstance(v, str) else v for i, v in enumerate(r))
                      for r in new[t]]
    changed_cases = q(f"SELECT id, state, version, closed_on, outcome_reason, updated_at FROM cases "
                      f"WHERE id <= {before['cases']} AND state IN ('returned', 'excused') AND closed_on = '{AS_OF.date()}'")
    cancelled = q(f"SELECT d.id FROM duties d JOIN cases c ON c.id = d.case_id WHERE d.status = 'cancelled' "
                  f"AND c.closed_on = '{AS_OF.date()}'")
    if backend_of(url) == "sqlite":
        con.close()
    else:
        conn.close()
        eng.dispose()
    return new, changed_cases, cancelled


def _json_col(table: str) -> set[int]:
    """Positions in ``WRITTEN[table]`` of the JSON columns (the models say which)."""
    from sqlalchemy import JSON

    from store.schema import load_models

    columns = load_models().tables[table].c
    return {i for i, name in enumerate(WRITTEN[table].split(", ")) if isinstance(columns[name].type, JSON)}


def _replay_updates(cur, ph: str, changed, cancelled) -> None:
    """The cases the intake closed and the duties it cancelled (a few hundred rows): executemany."""
    if changed:
        cur.executemany(f"UPDATE cases SET state = {ph}, version = {ph}, closed_on = {ph}, outcome_reason = {ph}, "
                        f"updated_at = {ph} WHERE id = {ph}", [r[1:] + (r[0],) for r in changed])
    if cancelled:
        cur.executemany(f"UPDATE duties SET status = 'cancelled' WHERE id = {ph}", cancelled)


def replay_executemany(url: str, new, changed, cancelled) -> float:
    """The same rows with the driver's executemany, batches of 10 000, one transaction."""
    db = backend_of(url)
    eng = make_engine(url)
    raw = eng.raw_connection()
    cur = raw.cursor()
    ph = "?" if db == "sqlite" else "%s"
    t0 = time.perf_counter()
    if db == "sqlite":
        cur.execute("BEGIN IMMEDIATE")
    for table, rows in new.items():
        if not rows:
            continue
        sql = f"INSERT INTO {table} ({WRITTEN[table]}) VALUES ({', '.join([ph] * len(rows[0]))})"
        for i in range(0, len(rows), 10_000):
            cur.executemany(sql, rows[i:i + 10_000])
    _replay_updates(cur, ph, changed, cancelled)
    raw.commit()
    t = time.perf_counter() - t0
    raw.close()
    eng.dispose()
    return t


def replay_copy(url: str, new, changed, cancelled) -> float:
    """The same rows with COPY (PostgreSQL); the few updates with executemany."""
    eng = make_engine(url)
    raw = eng.raw_connection()
    cur = raw.cursor()
    t0 = time.perf_counter()
    for table, rows in new.items():
        if not rows:
            continue
        with cur.copy(f"COPY {table} ({WRITTEN[table]}) FROM STDIN") as cp:
            for r in rows:
                cp.write_row(r)
    _replay_updates(cur, "%s", changed, cancelled)
    raw.commit()
    t = time.perf_counter() - t0
    raw.close()
    eng.dispose()
    return t


def fig_intake(base: str, label: str, seed: int, repeat: int = 3) -> None:
    """Morning-check intake of a county file through ``record_morning_checks`` (the morning_check
    flow's path; the target's figure, beside executemany, and the bulk line beside COPY), and per
    school, one transaction each (as schools submitting one by one; an extra line). The county file
    and its baselines: the median of ``repeat`` runs, each on a fresh copy (single runs of the same
    rows on SQLite differ by up to 2×)."""
    from store.cases.intake import record_morning_check, record_morning_checks

    from .generate import morning_check_file

    db = backend_of(base)
    rows = morning_check_file(base, seed, AS_OF.date())
    data = _file_bytes(rows)
    now = AS_OF.replace(hour=8, minute=20)
    before = _max_ids(base)

    def run(mode: str) -> tuple:
        """One import of the file on a fresh copy: (marks, cases opened, seconds, peak RSS, rows written)."""
        url = _copy(base, mode)
        eng = make_engine(url)
        factory = session_factory(eng)
        reset_peak_rss()
        marks = opened = 0
        with timer() as t:
            if mode == "per_school":
                by_school = _parse_file(data)  # each school's upload
                for code, marks_in in by_school.items():
                    with transaction(factory) as s:
                        r = record_morning_check(s, CaseContext(s), school_code=code, day=AS_OF.date(), marks=marks_in,
                                                 source="upload", submitted_by="bench", now=now)
                    marks += r.marks
                    opened += len(r.opened)
            else:
                with transaction(factory) as s:  # one county file: parse and import in one unit of work
                    for r in record_morning_checks(s, CaseContext(s), _parse_file(data), day=AS_OF.date(),
                                                   source="upload", submitted_by="bench", now=now):
                        marks += r.marks
                        opened += len(r.opened)
        eng.dispose()
        written = _written_rows(url, before) if mode == "per_school" else None
        _drop(url)
        return marks, opened, t["s"], peak_rss_mb(), written

    marks, opened, t_ps, rss, (new, changed, cancelled) = run("per_school")  # an extra line: once
    bulk_runs = [run("bulk") for _ in range(repeat)]
    marks_b, opened_b = bulk_runs[0][:2]
    t_b, rss_b = statistics.median(r[2] for r in bulk_runs), max(r[3] for r in bulk_runs)
    n_rows = sum(len(v) for v in new.values()) + len(changed) + len(cancelled)

    # the baselines with the collector held, as the product holds it for its bulk step
    # (store.bulk.paused_gc); the same rows on a fresh copy each time
    def replayed(replay, suffix: str) -> float:
        times = []
        for _ in range(repeat):
            url = _copy(base, suffix)
            with paused_gc():
                times.append(replay(url, new, changed, cancelled))
            _drop(url)
        return statistics.median(times)

    t_em = replayed(replay_executemany, "em")
    t_copy = replayed(replay_copy, "copy") if db == "postgresql" else None
    common = dict(db=db, rows_written=n_rows, marks=marks, opened=opened, file_rows=len(rows))
    # the target's figure: the county file (the runner's label says so) as the morning_check flow
    # records it (record_morning_checks)
    emit(f"intake {label} [{db}]: absence marks", marks_b / t_b, "marks/s", marks / t_em, figure="intake",
         seconds=t_b, executemany_seconds=t_em, cases_opened_per_s=opened_b / t_b, rss_mb=rss_b,
         note="store.cases.intake.record_morning_checks over the parsed county file, one transaction; baseline: "
              "executemany of the same rows", target=TARGETS["intake_vs_executemany"],
         met=t_em / t_b >= TARGETS["intake_vs_executemany"], **common)
    emit(f"intake {label} [{db}]: cases opened", opened_b / t_b, "cases/s", opened / t_em,
         figure="intake_opened", **common)
    emit(f"intake {label}, one transaction per school (extra) [{db}]: absence marks", marks / t_ps, "marks/s",
         marks / t_em, figure="intake_per_school", seconds=t_ps, executemany_seconds=t_em,
         cases_opened_per_s=opened / t_ps, rss_mb=rss,
         note="record_morning_check once per school, a commit each (schools submitting one by one); "
              "baseline: executemany of the same rows", **common)
    base_t, what = (t_copy, "COPY") if t_copy is not None else (t_em, "executemany (SQLite has no COPY)")
    emit(f"bulk file import {label} [{db}]", marks_b / t_b, "marks/s", marks_b / base_t, figure="bulk", seconds=t_b,
         baseline_seconds=base_t, cases_opened_per_s=opened_b / t_b, rss_mb=rss_b,
         note=f"one county CSV parsed and imported in one transaction; baseline: {what} of the same rows",
         target=TARGETS["bulk_vs_copy"], met=base_t / t_b >= TARGETS["bulk_vs_copy"], **common)


# -- the naive orchestration: one Prefect task run per case transition -----------------------------
def fig_naive_prefect(base: str, n: int) -> None:
    """``bench.naive_prefect``: ``n`` transitions measured (a warm-up of 5 other cases first), no extrapolation."""
    import os
    import tempfile

    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="bench-prefect-"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from prefect.testing.utilities import prefect_test_harness

    from tasks.runtime import using

    from .naive_prefect import due_ids, naive_sweep

    db = backend_of(base)
    url = _copy(base, "naive")
    eng = make_engine(url)
    factory = session_factory(eng)
    ids = due_ids(factory, AS_OF, n + 5)
    with prefect_test_harness(server_startup_timeout=120), using(factory):
        naive_sweep(ids[:5], AS_OF)  # warm up: server, flow registration
        reset_peak_rss()
        with timer() as t:
            done = naive_sweep(ids[5:], AS_OF)
        rss = peak_rss_mb()
    eng.dispose()
    _drop(url)
    emit(f"naive orchestration: one Prefect task run per transition, {done:,} measured [{db}]", done / t["s"],
         "transitions/s", db=db, figure="naive_prefect", measured=done, seconds=t["s"], task_runs=done, rss_mb=rss,
         note=f"measured at {done:,} transitions (not extrapolated); prefect_test_harness server")


# -- SpiffWorkflow -----------------------------------------------------------------------------------
def _spiff_run(url: str, n: int, spec_once: bool) -> dict:
    """Create ``n`` instances as Friday's sweep left them, then Monday's sweep of the due ones.

    ``spec_once``: the process specification in one row of ``spiff_specs`` and each instance's
    state only (``bench.spiff.StateOnlyWorkflowConverter``); the sweep reads the spec row once.
    Otherwise Spiff's default serialisation, the whole spec in every instance (before issue 20)."""
    from .spiff import Ladder, set_clock

    eng = make_engine(url)
    with eng.begin() as c:
        c.execute(text("CREATE TABLE spiff_specs (name VARCHAR(64) PRIMARY KEY, body TEXT)"))
        c.execute(text("CREATE TABLE spiff_cases (case_id INTEGER PRIMARY KEY, spec VARCHAR(64), next_due VARCHAR(32), "
                       "body TEXT)"))
        c.execute(text("CREATE INDEX ix_spiff_next ON spiff_cases (next_due)"))
        cases = c.execute(text("SELECT id, opened_on, state FROM cases WHERE policy_name = 'default' AND state NOT IN "
                               "('returned', 'excused', 'escalated', 'judicial_notice') ORDER BY id LIMIT :n"),
                          {"n": n}).all()
    ladder = Ladder(spec_once=spec_once)
    prev_sweep = AS_OF - timedelta(days=3)  # Friday 09:30: the cases stand as that sweep left them
    set_clock(prev_sweep)
    reset_peak_rss()
    insert = text("INSERT INTO spiff_cases VALUES (:id, 'dropout_case', :n, :b)")
    with timer() as tc:
        with eng.begin() as c:
            if spec_once:
                c.execute(text("INSERT INTO spiff_specs VALUES ('dropout_case', :b)"), {"b": ladder.spec_json()})
            rows = []
            for cid, opened_on, state in cases:
                opened = opened_on if not isinstance(opened_on, str) else datetime.fromisoformat(opened_on).date()
                wf = ladder.new(opened)
                ladder.sweep(wf)
                rows.append({"id": cid, "n": ladder.next_due(wf), "b": ladder.dumps(wf)})
                if len(rows) == 500:
                    c.execute(insert, rows)
                    rows = []
            if rows:
                c.execute(insert, rows)
    with eng.connect() as c:
        stored = c.scalar(text("SELECT avg(length(body)) FROM spiff_cases"))
        spec_bytes = c.scalar(text("SELECT coalesce(sum(length(body)), 0) FROM spiff_specs"))
    set_clock(AS_OF)
    moved = 0
    cpu0 = time.process_time()
    with timer() as ts:
        if spec_once:  # a sweeping process reads the spec once, as an application reads its spec table at start
            sweeper = Ladder(spec_once=True)
            with eng.connect() as c:
                sweeper.use_stored_spec(c.scalar(text("SELECT body FROM spiff_specs WHERE name = 'dropout_case'")))
        else:
            sweeper = ladder
        while True:  # batches of 500 due instances, one transaction each, like the advance
            with eng.begin() as c:
                due = c.execute(text("SELECT case_id, body FROM spiff_cases WHERE next_due <= :now ORDER BY case_id "
                                     "LIMIT 500"), {"now": AS_OF.isoformat()}).all()
                if not due:
                    break
                out = []
                for cid, body in due:
                    wf = sweeper.loads(body)
                    before = sweeper.step_of(wf)
                    sweeper.sweep(wf)
                    moved += sweeper.step_of(wf) != before
                    out.append({"id": cid, "n": sweeper.next_due(wf), "b": sweeper.dumps(wf)})
                c.execute(text("UPDATE spiff_cases SET next_due = :n, body = :b WHERE case_id = :id"), out)
    cpu = time.process_time() - cpu0
    rss = peak_rss_mb()
    eng.dispose()
    return {"cases": len(cases), "moved": moved, "seconds": ts["s"], "cpu_seconds": cpu, "create_s": tc["s"],
            "rss": rss, "instance_bytes": float(stored or 0), "spec_bytes": int(spec_bytes or 0)}


def fig_spiff(base: str, n: int) -> None:
    """SpiffWorkflow creating and sweeping the same due cases (default policy) as BPMN instances:
    the spec stored once (the target's figure, issue 20), then Spiff's default serialisation with
    the spec in every instance (the figure before, an extra line), each on a fresh copy."""
    db = backend_of(base)
    runs = {}
    for spec_once in (True, False):
        url = _copy(base, "spiff")
        runs[spec_once] = _spiff_run(url, n, spec_once)
        _drop(url)
    for spec_once, label, fig, note in (
            (True, "spec stored once", "spiff",
             "the process spec in one row (Spiff's serializer with the workflow converter replaced, as its docs' "
             "SQLite serializer does), each instance's state only; due instances only (indexed next timer)"),
            (False, "spec in every instance (before)", "spiff_spec_per_instance",
             "Spiff's default serialize_json: the whole spec in every instance's JSON (the figure before issue 20)")):
        r = runs[spec_once]
        emit(f"SpiffWorkflow sweep, {r['cases']:,} BPMN instances, {label} [{db}]", r["moved"] / r["seconds"],
             "transitions/s", db=db, figure=fig, transitions=r["moved"], seconds=r["seconds"],
             cpu_seconds=r["cpu_seconds"], transitions_per_cpu_s=r["moved"] / r["cpu_seconds"],
             created_per_s=r["cases"] / r["create_s"], instance_bytes=round(r["instance_bytes"]),
             spec_bytes=r["spec_bytes"], rss_mb=r["rss"], note=note + "; default policy")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("figure")
    ap.add_argument("url")
    ap.add_argument("--label", default="")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the product's (store.cases.advance.BATCH_SIZES)")
    ap.add_argument("--open", type=int, default=0)
    ap.add_argument("--due", type=int, default=0)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--per-scope", action="store_true", help="report: one county at a time (the old path)")
    ap.add_argument("--with-reference", action="store_true",
                    help="per_case: also the reference path counting school days per case (before issue 20)")
    a = ap.parse_args()
    f = a.figure
    if f == "derive":
        derive_fewer_due(a.url, a.label, a.due)
    elif f == "advance":
        fig_advance(a.url, a.label, a.batch_size)
    elif f == "scale":
        fig_scale(a.url, a.open, a.due, a.batch_size)
    elif f == "per_case":
        fig_per_case(a.url, a.label, a.batch_size, a.with_reference)
    elif f == "sweep":
        fig_sweep(a.url, a.label, a.due, a.batch_size)
    elif f == "report":
        fig_report(a.url, a.label, per_scope=a.per_scope)
    elif f == "intake":
        fig_intake(a.url, a.label, a.seed)
    elif f == "intake_flow":  # the county file through the user's entry and the flow (bench/intake_flow.py)
        from .intake_flow import fig_flow

        fig_flow(a.url, a.label, a.seed)
    elif f == "naive_prefect":
        fig_naive_prefect(a.url, a.n)
    elif f == "spiff":
        fig_spiff(a.url, a.n)
    elif f == "flow":  # the advance_cases flow end to end against a Prefect server (bench/flow_advance.py)
        from .flow_advance import fig_flow

        fig_flow(a.url, a.label, a.batch_size)
    else:
        raise SystemExit(f"unknown figure {f}")


if __name__ == "__main__":
    main()
