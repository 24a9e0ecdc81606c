"""What each index of ``cases`` costs the raw escalation UPDATE on PostgreSQL (docs/performance.md, ``## pgwrites``).

    PYTHONPATH=. .venv/bin/python bench/index_cost.py postgresql+psycopg://…/<a copy of big> all -pupil_keys v7 all

On a COPY (never bench_big): each variant in one transaction — its DROP/CREATE INDEX, the raw UPDATE of
``bench.figures.raw_escalation_sql`` under EXPLAIN (ANALYZE, BUFFERS), ROLLBACK — then VACUUM cases. Prints
the UPDATE's shared blocks (read, dirtied, written), WAL bytes and wall time. Index names are 0018's.
"""
import sys, time, os
from sqlalchemy import text
from bench.figures import sweep_steps, raw_escalation_sql
from bench.generate import AS_OF
from store.db import make_engine, session_factory

url = sys.argv[1]
variants = sys.argv[2:]
eng = make_engine(url)
f = session_factory(eng)
steps = sweep_steps(f, AS_OF)
sql, params = raw_escalation_sql(steps, AS_OF, postgres=True)
ac = eng.execution_options(isolation_level="AUTOCOMMIT")
with ac.connect() as c:
    for r in c.execute(text("select relname, pg_relation_size(oid)/1048576.0 from pg_class where relname like 'ix_cases%' or relname like 'uq_cases%' or relname in ('cases','cases_pkey') order by 1")):
        print("size", r[0], f"{r[1]:.0f} MB")
VAR = {
 "all": [],
 "-opened_keys": ["DROP INDEX ix_cases_opened_keys"],
 "-pupil_keys": ["DROP INDEX ix_cases_pupil_keys"],
 "-both": ["DROP INDEX ix_cases_opened_keys", "DROP INDEX ix_cases_pupil_keys"],
 "-school_state": ["DROP INDEX ix_cases_school_state"],
 "-uq": ["DROP INDEX uq_cases_one_open_per_pupil"],
 "-due": ["DROP INDEX ix_cases_due"],
 "pre0017": ["DROP INDEX ix_cases_opened_keys", "DROP INDEX ix_cases_pupil_keys",
             "CREATE INDEX t_opened ON cases (opened_on, id)", "CREATE INDEX t_pupil ON cases (pupil_id, state, opened_on, closed_on)"],
 "new": ["DROP INDEX ix_cases_opened_keys", "DROP INDEX ix_cases_pupil_keys",
         "CREATE INDEX t_opened ON cases (opened_on, id) INCLUDE (pupil_id, school_id)",
         "CREATE INDEX t_pupil ON cases (pupil_id) INCLUDE (opened_on, closed_on, school_id)"],
 "v1": ["DROP INDEX ix_cases_opened_keys", "CREATE INDEX t_opened ON cases (opened_on, id) INCLUDE (pupil_id, school_id)"],
 "v2": ["DROP INDEX ix_cases_opened_keys", "CREATE INDEX t_opened ON cases (opened_on, id) INCLUDE (pupil_id, school_id)",
        "DROP INDEX ix_cases_pupil_keys", "CREATE INDEX t_pupil ON cases (pupil_id, state, opened_on, closed_on, school_id) INCLUDE (id) WHERE state NOT IN ('absent', 'collective_visit', 'family_contacted', 'judicial_notice', 'township_notice', 'visited')",
        "DROP INDEX uq_cases_one_open_per_pupil", "CREATE UNIQUE INDEX t_uq ON cases (pupil_id) INCLUDE (state, opened_on, school_id, id) WHERE state IN ('absent', 'collective_visit', 'family_contacted', 'judicial_notice', 'township_notice', 'visited')"],
 "v7": ["DROP INDEX ix_cases_opened_keys", "CREATE INDEX t_opened ON cases (opened_on, id) INCLUDE (pupil_id, school_id)",
        "DROP INDEX ix_cases_pupil_keys", "CREATE INDEX t_pupil ON cases (pupil_id, state, opened_on, closed_on)"],
 "none": ["DROP INDEX ix_cases_opened_keys", "DROP INDEX ix_cases_pupil_keys", "DROP INDEX ix_cases_school_state",
          "DROP INDEX uq_cases_one_open_per_pupil"],
}
for v in variants:
    with eng.connect() as c:
        tr = c.begin()
        t0 = time.perf_counter()
        for ddl in VAR[v]:
            c.execute(text(ddl))
        t1 = time.perf_counter()
        wal0 = c.execute(text("select pg_current_wal_insert_lsn()")).scalar()
        t = time.perf_counter()
        plan = c.execute(text("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + str(sql.compile(compile_kwargs={}))), params).scalar()[0]
        dt = time.perf_counter() - t
        p0 = plan["Plan"]; n = p0.get("Actual Rows")
        bufs = {k: p0.get(k) for k in ("Shared Hit Blocks", "Shared Read Blocks", "Shared Dirtied Blocks", "Shared Written Blocks")}
        wal = c.execute(text(f"select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '{wal0}')")).scalar()
        tr.rollback()
    with ac.connect() as c:
        tv = time.perf_counter(); c.execute(text("VACUUM cases")); tv = time.perf_counter() - tv
    print(f"{v:14s} n={n} update {dt:.2f}s wal {wal/1048576:.0f} MB  {bufs} (ddl {t1-t0:.1f}s, vacuum {tv:.1f}s) load {os.getloadavg()[0]:.1f}", flush=True)
