"""One daily sweep of 100k due cases through Prefect: flow runs, task runs and wall time.

A province-size population (≈100k pupils) all absent on one school day: the 09:30 sweep moves
every case one step (100k history events, duties and document requests). Measured twice on
copies of the same database: ``store.cases.advance.advance`` called directly (the baseline), and the
``advance_cases`` flow run against a local Prefect server (one flow run, one task per batch). On a
third copy, against the same server, the naive peer (``bench.naive_prefect``: one Prefect task run
per transition) moves the first ``--naive`` due cases (default 1,000): measured at that many
transitions, not extrapolated (issue 20).
Prints one JSON line per figure: {"name","value","unit","baseline","ratio"}.

    .venv/bin/python -m bench.prefect_sweep [--cases 100000] [--batch N (default: the product's for SQLite)]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

DAY = date(2026, 11, 16)
AS_OF = datetime(2026, 11, 16, 9, 30)


def emit(name: str, value, unit: str, baseline=None, **extra) -> None:
    ratio = round(value / baseline, 3) if baseline else None
    print(json.dumps({"name": name, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio, **extra},
                     ensure_ascii=False), flush=True)


def build(url: str, cases: int) -> None:
    from sqlalchemy import insert, select

    from machines.states import CaseState
    from store.bootstrap import init_store
    from store.calendars import school_day_seq
    from store.db import make_engine, session_factory, transaction
    from store.cases.effects import event_row
    from store.models import Case, CaseEvent, Pupil
    from store.policy_files import PolicyRegistry
    from demo.synthetic import Size, generate_county

    engine = make_engine(url)
    init_store(engine, now=datetime(2026, 11, 1))
    factory = session_factory(engine)
    per_class = 56
    schools = max(1, -(-cases // (9 * 2 * per_class)))
    townships = max(1, schools // 10)
    with transaction(factory) as s:
        generate_county(s, seed=11, size=Size(townships=townships, schools_per_township=-(-schools // townships),
                                              classes_per_grade=2, pupils_per_class=per_class))
    with transaction(factory) as s:
        pupils = s.execute(select(Pupil.id, Pupil.school_id, Pupil.class_id).order_by(Pupil.id).limit(cases)).all()
    now = datetime.combine(DAY, datetime.min.time()).replace(hour=8)
    with transaction(factory) as s:
        opened_seq = school_day_seq(s, "default", DAY)
        version = PolicyRegistry(s).get("default").version  # the shipped policy as loaded (not a literal)
    for i in range(0, len(pupils), 10_000):
        chunk = pupils[i:i + 10_000]
        with transaction(factory) as s:
            ids = list(s.scalars(insert(Case).returning(Case.id, sort_by_parameter_order=True), [{
                "pupil_id": pid, "school_id": sid, "class_id": cid, "state": CaseState.absent.value, "version": 1,
                "policy_name": "default", "policy_version": version, "calendar_key": "default", "opened_on": DAY,
                "opened_seq": opened_seq, "closed_on": None, "reason": "unknown", "outcome_reason": None, "relapse_of": None,
                "created_at": now, "updated_at": now} for pid, sid, cid in chunk]))
            s.execute(insert(CaseEvent), [event_row(case_id=c, seq=1, event="open", from_state=None, to_state="absent",
                                                    actor="bench", at=now, now=now) for c in ids])
    engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=None, help="default: the product's for SQLite (store.cases.advance.BATCH_SIZES)")
    ap.add_argument("--quick", action="store_true", help="2,000 due cases (bench.run --quick)")
    ap.add_argument("--naive", type=int, default=1_000, help="transitions of the naive peer (0: skip it)")
    args = ap.parse_args()
    if args.quick:
        args.cases = min(args.cases, 2_000)
        args.naive = min(args.naive, 100)
    args.naive = min(args.naive, args.cases)
    work = Path(tempfile.mkdtemp(prefix="baoxue-sweep-"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    try:
        src = work / "population.db"
        t = time.perf_counter()
        build(f"sqlite:///{src}", args.cases)
        setup_s = time.perf_counter() - t
        for copy in ("direct.db", "flow.db", "naive.db"):
            shutil.copy(src, work / copy)

        from store.cases.advance import advance
        from store.db import make_engine, session_factory

        engine = make_engine(f"sqlite:///{work / 'direct.db'}")
        t = time.perf_counter()
        direct = advance(session_factory(engine), AS_OF, batch_size=args.batch, keep_ids=False)
        direct_s = time.perf_counter() - t
        engine.dispose()

        from deploy.deployments import no_heartbeat
        from deploy.local import free_port, start_prefect_server, stop, wait_healthy

        server, api = start_prefect_server(work / "prefect", free_port(), work / "prefect-server.log")
        try:
            wait_healthy(api + "/health", server, log=work / "prefect-server.log")
            from prefect.client.orchestration import get_client
            from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
            from prefect.settings import PREFECT_API_URL, temporary_settings

            from flows.advance_cases import advance_cases
            from tasks.runtime import using

            engine = make_engine(f"sqlite:///{work / 'flow.db'}")
            with temporary_settings(updates={PREFECT_API_URL: api}), no_heartbeat(), using(session_factory(engine)):
                t = time.perf_counter()
                state = advance_cases(as_of=AS_OF, batch_size=args.batch, render=False, return_state=True)
                flow_s = time.perf_counter() - t
                result = state.result()
                with get_client(sync_client=True) as client:
                    # the server is this run's own: everything on it belongs to the sweep (subflows included)
                    flow_runs = client.count_flow_runs()
                    tasks, page = 0, 200
                    while True:
                        got = len(client.read_task_runs(limit=page, offset=tasks))
                        tasks += got
                        if got < page:
                            break
            engine.dispose()
            naive = None
            if args.naive:
                from .naive_prefect import due_ids, naive_sweep
                from .common import peak_rss_mb, reset_peak_rss

                engine = make_engine(f"sqlite:///{work / 'naive.db'}")
                factory = session_factory(engine)
                ids = due_ids(factory, AS_OF, args.naive)
                with temporary_settings(updates={PREFECT_API_URL: api}), no_heartbeat(), using(factory):
                    reset_peak_rss()
                    t = time.perf_counter()
                    done = naive_sweep(ids, AS_OF)
                    naive = (done, time.perf_counter() - t, peak_rss_mb())
                engine.dispose()
        finally:
            stop(server)
        assert result["escalated"] == direct.total_transitions, (result["escalated"], direct.total_transitions)
        from store.cases.advance import BATCH_SIZES

        note = f"{args.cases} due cases, batch {args.batch or BATCH_SIZES['sqlite']}, SQLite, 2 cores; population built in {setup_s:.0f} s"
        emit("prefect_sweep_wall", round(flow_s, 2), "s", round(direct_s, 2), flow_runs=flow_runs, task_runs=tasks,
             escalated=result["escalated"], note=note + "; baseline = store.cases.advance.advance without Prefect")
        emit("prefect_sweep_task_runs", tasks, "task runs", None, flow_runs=flow_runs, batches=direct.batches, note=note)
        emit("prefect_sweep_cases_per_s", round(result["escalated"] / flow_s), "cases/s",
             round(direct.total_transitions / direct_s), note=note)
        if naive:
            done, naive_s, rss = naive
            emit("prefect_sweep_naive_per_transition_cases_per_s", round(done / naive_s, 2), "cases/s",
                 round(result["escalated"] / flow_s), measured=done, seconds=round(naive_s, 2), task_runs=done,
                 rss_mb=round(rss, 1), flow_over_naive=round(result["escalated"] / flow_s / (done / naive_s), 1),
                 note=f"one Prefect task run per transition (bench.naive_prefect), the first {done:,} due cases of the "
                      f"same population on the same local server, measured (not extrapolated); baseline = the "
                      f"advance_cases flow's cases/s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
