"""The daily flow as production runs it: ``advance_cases`` end to end against a running Prefect server.

On fresh copies of one population (``bench.generate``; the runner's big one, 1 M open / 100 k due):

1. the bare ``store.cases.advance.advance`` on one copy (the baseline, what ``bench.figures advance`` times);
2. on the other copy, yesterday's watch list: ``store.prevention.risk.refresh_watch_list`` at the previous
   sweep (a generated population has none; a county running the flow daily has one). Timed as an extra line,
   the list's first fill;
3. a local Prefect server (``deploy.local``), and the ``advance_cases`` flow run in a child process of its
   own (``render=False``: no render deployments on this server), exactly as a worker would call it: every
   task of the flow, its artifacts and its events. The child's peak resident set (``VmHWM``, the whole
   process: Prefect, the tasks, the results they hand on) is the flow's peak RSS; the server's runs are
   counted through its API (the server is this figure's own, so every run on it is the flow's).

Prints JSON lines (``bench.common.emit``): wall time (baseline: the bare advance; goal ≤ 2×), peak RSS
(goal ≤ 500 MB), flow and task runs, events; the watch list's first fill.

    python -m bench.figures flow URL --label "1 M open, 100 k due"      (as bench.run calls it)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from .common import ROOT, backend_of, copy_db, drop_db, emit, log, peak_rss_mb
from .generate import AS_OF

TARGET_RSS_MB, TARGET_RATIO = 500, 2.0
PREVIOUS_SWEEP = AS_OF - timedelta(days=3)  # AS_OF is a Monday: Friday's sweep left yesterday's watch list


def _copy(base: str, suffix: str) -> str:
    """A fresh copy of the population: ``<file>_<suffix>.sqlite``, or on PostgreSQL the database ``<name>_<suffix>``
    (``BAOXUE_BENCH_COPY_PREFIX`` set: ``<prefix><suffix>``, for a shared server whose copies carry their owner's name)."""
    if backend_of(base) == "sqlite":
        dst = base.replace(".sqlite", f"_{suffix}.sqlite")
    else:
        from sqlalchemy import make_url

        url = make_url(base)
        name = os.environ.get("BAOXUE_BENCH_COPY_PREFIX", f"{url.database}_") + suffix
        dst = url.set(database=name).render_as_string(hide_password=False)
    copy_db(base, dst)
    return dst


def _child(args: list[str], env: dict | None = None) -> tuple[dict, float]:
    """``python -m bench.flow_advance _<step> …`` in its own process: its JSON answer and its peak RSS (MB)."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.flow_advance", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"bench.flow_advance {args[0]} failed:\n{out[-2000:]}")
    answer = json.loads(out.strip().splitlines()[-1])
    return answer, usage.ru_maxrss / 1024


# -- the steps, each in its own process ----------------------------------------------------------------
def _bare(url: str, batch: int | None) -> dict:
    from store.cases.advance import advance
    from store.db import make_engine, session_factory

    eng = make_engine(url)
    t = time.perf_counter()
    rep = advance(session_factory(eng), AS_OF, batch_size=batch, keep_ids=False)
    seconds = time.perf_counter() - t
    eng.dispose()
    return {"seconds": seconds, "transitions": rep.total_transitions, "overdue": rep.overdue, "rss_mb": peak_rss_mb()}


def _watch(url: str) -> dict:
    from store.db import make_engine, session_factory, transaction
    from store.prevention.risk import refresh_watch_list

    eng = make_engine(url)
    t = time.perf_counter()
    with transaction(session_factory(eng)) as s:
        out = refresh_watch_list(s, as_of=PREVIOUS_SWEEP)
    seconds = time.perf_counter() - t
    eng.dispose()
    return {"seconds": seconds, "added": out["added"], "duties": out["duties"], "rss_mb": peak_rss_mb()}


class _Sampler:
    """The process's resident set split as the kernel counts it, sampled every 0.2 s: anonymous memory (the
    heap: Python objects, SQLite's page cache) apart from mapped file pages (SQLite reads the database file
    through ``mmap``, ``store.db``: those pages count in the RSS but are the OS page cache, dropped under
    pressure)."""

    def __init__(self):
        import threading

        self.peak = {"RssAnon": 0, "RssFile": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for line in Path("/proc/self/status").read_text().splitlines():
                key = line.split(":", 1)[0]
                if key in self.peak:
                    self.peak[key] = max(self.peak[key], int(line.split()[1]) // 1024)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return {f"peak_{k[3:].lower()}_mb": v for k, v in self.peak.items()}


def _flow(url: str, api: str, batch: int | None) -> dict:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deploy.deployments import no_heartbeat
    from flows.advance_cases import advance_cases
    from store.db import make_engine, session_factory
    from tasks.runtime import using

    eng = make_engine(url)
    sampler = _Sampler()
    with temporary_settings(updates={PREFECT_API_URL: api}), no_heartbeat(), using(session_factory(eng)):
        t = time.perf_counter()
        state = advance_cases(as_of=AS_OF, batch_size=batch, render=False, return_state=True)
        seconds = time.perf_counter() - t
        result = state.result()
    eng.dispose()
    return {"seconds": seconds, "escalated": result["escalated"], "overdue": result["overdue"],
            "watch": result["watch_list"], "rss_mb": peak_rss_mb(), **sampler.stop()}


def _runs(api: str) -> dict:
    """Flow runs, task runs and events on this figure's own server."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        flow_runs = client.count_flow_runs()
        tasks, page = 0, 200
        names: dict[str, int] = {}
        seconds: dict[str, float] = {}  # run time by task name, as the server recorded it (retries included)
        while True:
            got = client.read_task_runs(limit=page, offset=tasks)
            tasks += len(got)
            for r in got:
                base = r.name.rsplit("-", 1)[0]
                names[base] = names.get(base, 0) + 1
                seconds[base] = round(seconds.get(base, 0.0) + r.total_run_time.total_seconds(), 2)
            if len(got) < page:
                break
        ours = client._client.post("/events/filter", json={"filter": {"event": {"prefix": ["baoxue."]}}, "limit": 50}).json()
    return {"flow_runs": flow_runs, "task_runs": tasks, "by_task": names, "task_seconds": seconds, "events": ours.get("total"),
            "event_names": sorted({e["event"] for e in ours.get("events", [])})}


# -- the figure ------------------------------------------------------------------------------------------------
def fig_flow(base: str, label: str, batch: int | None = None, keep: bool = False) -> None:
    from deploy.local import free_port, start_prefect_server, stop, wait_healthy

    db = backend_of(base)
    bare_url, flow_url = _copy(base, "fbare"), _copy(base, "fflow")
    work = Path(tempfile.mkdtemp(prefix="baoxue-flow-bench-"))
    server = None
    try:
        bare, bare_rss = _child(["_bare", bare_url, str(batch or 0)])
        log(f"bare advance: {bare['seconds']:.1f} s, {bare['transitions']} transitions")
        watch, watch_rss = _child(["_watch", flow_url])
        log(f"yesterday's watch list: {watch['added']} entries in {watch['seconds']:.1f} s")
        server, api = start_prefect_server(work / "prefect", free_port(), work / "server.log")
        wait_healthy(api + "/health", server, log=work / "server.log")
        flow, flow_rss = _child(["_flow", flow_url, api, str(batch or 0)], env={"PREFECT_API_URL": api})
        runs = _runs(api)
    finally:
        stop(server)
        if not keep:
            drop_db(bare_url)
            drop_db(flow_url)
    if flow["escalated"] != bare["transitions"]:
        log(f"WARNING: the flow moved {flow['escalated']}, the bare advance {bare['transitions']}")
    rss = flow["rss_mb"]  # the child's own VmHWM (ru_maxrss of wait4 may carry the forking parent's, kept apart)
    common = dict(db=db, population=label, escalated=flow["escalated"], overdue=flow["overdue"],
                  flow_runs=runs["flow_runs"], task_runs=runs["task_runs"], events=runs["events"],
                  event_names=runs["event_names"])
    ratio = flow["seconds"] / bare["seconds"]
    emit(f"advance_cases flow {label} [{db}]: wall", flow["seconds"], "s", bare["seconds"], ratio=ratio,
         figure="flow_wall", target=TARGET_RATIO, met=ratio <= TARGET_RATIO, rss_mb=rss, bare_rss_mb=bare_rss,
         note="the flow against a local Prefect server, render=False, yesterday's watch list in place; "
              "baseline: store.cases.advance.advance on a fresh copy (target: ≤ 2×)", **common)
    emit(f"advance_cases flow {label} [{db}]: peak RSS of the flow process", rss, "MB", figure="flow_rss",
         target=TARGET_RSS_MB, met=rss <= TARGET_RSS_MB, rss_mb=rss, wait4_maxrss_mb=flow_rss,
         peak_anon_mb=flow.get("peak_anon_mb"),
         peak_file_mb=flow.get("peak_file_mb"),
         note="VmHWM of the process; peak_anon_mb / peak_file_mb: its heap and its mapped database pages "
              "(SQLite mmap), sampled every 0.2 s", **common)
    emit(f"advance_cases flow {label} [{db}]: Prefect runs", runs["task_runs"], "task runs", figure="flow_runs",
         by_task=runs["by_task"], task_seconds=runs["task_seconds"], in_tasks_s=round(sum(runs["task_seconds"].values()), 1),
         rss_mb=rss, **common)
    emit(f"watch list first fill {label} [{db}] (extra)", watch["seconds"], "s", figure="flow_watch_fill",
         entries=watch["added"], duties=watch["duties"], rss_mb=max(watch_rss, watch["rss_mb"]), db=db,
         note="store.prevention.risk.refresh_watch_list on a population without a watch list (once per county)")


def main() -> None:
    step, *args = sys.argv[1:]
    if step == "_bare":
        out = _bare(args[0], int(args[1]) or None)
    elif step == "_watch":
        out = _watch(args[0])
    elif step == "_flow":
        out = _flow(args[0], args[1], int(args[2]) or None)
    else:
        raise SystemExit(f"unknown step {step}; run the figure as `python -m bench.figures flow URL --label …`")
    print(json.dumps(out, default=str), flush=True)


if __name__ == "__main__":
    main()
