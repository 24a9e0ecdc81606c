"""`baoxue demo` and `baoxue serve`: the orchestration commands (mounted into the main CLI)."""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Prefect orchestration: the demo and the one-machine server.")
console = Console()

def _db_url(db: str | None) -> str | None:
    if not db:
        return None
    return db if "://" in db else f"sqlite:///{Path(db).resolve()}"


def _use_db(db: str | None) -> str:
    from store.db import settings

    url = _db_url(db)
    if url:
        os.environ["BAOXUE_DATABASE_URL"] = url
        settings.cache_clear()
    return settings().database_url


@app.command()
def demo(
    out: Path = typer.Option(Path("out"), "--out", help="folder for the database, documents, reports, summary.json"),
    weeks: int = typer.Option(4, "--weeks", min=1, max=12, help="school weeks to simulate"),
    seed: int = typer.Option(7, "--seed", help="the county and the scenario are deterministic from it"),
    every_tick: bool = typer.Option(False, "--every-tick", help="replay every hourly sweep/reminder tick too"),
) -> None:
    """Generate a county and run four school weeks through the real flows (simulated clock)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The runs' logs go to the Prefect UI in full; the terminal shows warnings and the progress lines.
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    from demo.scenario import run_demo
    from machines.vocabulary import state_label

    result = run_demo(out, weeks=weeks, seed=seed, every_tick=every_tick,
                      progress=lambda m: console.print(f"[dim]demo[/dim] {m}"))
    s = result.summary
    table = Table(title=f"保学 Baoxue demo — {weeks} school weeks, clock stopped at {s['clock_stopped_at']}")
    table.add_column("状态 state")
    table.add_column("案件 cases", justify="right")
    for state, n in s["cases_by_state"].items():
        table.add_row(f"{state_label(state)} {state}", str(n))
    console.print(table)
    docs = s["documents_by_kind"] or s["document_requests"]["by_kind"]
    console.print(f"文书 documents ({'rendered' if s['documents_by_kind'] else 'queued requests'}): "
                  + ", ".join(f"{k} {v}" for k, v in sorted(docs.items())))
    console.print(f"逾期职责 overdue duties: {s['overdue_duties']} · 责任追究 accountability entries: "
                  f"{s['accountability_entries']} · 月报 reports: {len(s['reports'])} · "
                  f"Prefect flow runs: {s['flow_runs']['total']} · wall time {s['wall_seconds']} s")
    console.print("网页账号 web logins (passwords in " f"{result.out}/accounts.txt): "
                  + ", ".join(f"{a['username']} ({a['name']}, {a['where']})" for a in s.get("accounts", [])))
    console.print(f"Wrote {result.out}/summary.json, {result.out}/baoxue.db, {result.out}/archive/")
    console.print(f"Open the Prefect UI on the result:  [bold]baoxue serve --db {result.out}/baoxue.db[/bold]  "
                  f"→ http://127.0.0.1:4200 (Prefect UI) and http://127.0.0.1:8000 (保学 pages)")


@app.command()
def serve(
    db: Optional[str] = typer.Option(None, "--db", help="Baoxue database URL or SQLite file (default out/baoxue.db)"),
    prefect_port: int = typer.Option(4200, "--prefect-port"),
    web_port: int = typer.Option(8000, "--web-port"),
    schedules: Optional[Path] = typer.Option(
        None, "--schedules", help="TOML overriding deployments' crons/intervals (default BAOXUE_SCHEDULES_FILE, "
                                  "else the built-in schedules; see deploy/schedules.py)"),
    no_web: bool = typer.Option(False, "--no-web", help="do not start the Baoxue web/API process"),
    no_worker: bool = typer.Option(False, "--no-worker", help="register the deployments but start no worker"),
) -> None:
    """Prefect server + UI (127.0.0.1:4200), the work pool baoxue-process with every deployment, one
    worker on it, and the Baoxue web/API. Documents: the archive beside the database.

    Ctrl-C stops them all. Prefect's database lives apart from Baoxue's (PREFECT_HOME)."""
    import socket

    from deploy.deployments import WORK_POOL, ensure_work_pool, register
    from deploy.local import BIN, base_env, port_free, prefect_home_for, start, start_prefect_server, start_worker, stop, wait_healthy
    from deploy.schedules import ScheduleError, load as load_schedules
    from store.db import settings

    url = _use_db(db)
    archive = settings().archive_dir
    try:
        overrides = load_schedules(schedules)
    except ScheduleError as exc:
        console.print(f"[red]排程文件有误 (bad schedules file): {exc}[/red]", soft_wrap=True)
        raise typer.Exit(2)
    home = prefect_home_for(url)
    logs = home / "logs"
    for port in (prefect_port, *(() if no_web else (web_port,))):
        if not port_free(port):
            console.print(f"[red]port {port} on 127.0.0.1 is in use[/red]")
            raise typer.Exit(1)
    from store.bootstrap import init_store
    from store.db import make_engine
    from tasks.runtime import SystemClock

    engine = make_engine(url)
    try:
        init_store(engine, now=SystemClock().now())
        from cli.common import warn_calendars
        warn_calendars(engine, SystemClock().now())  # a term running into a year without a holiday list
    except Exception as exc:  # an old demo database, an unreachable server …
        console.print(f"[red]cannot prepare the Baoxue database {url.split('@')[-1]}: {str(exc).splitlines()[0]}[/red]\n"
                      "(a database from an older schema: rebuild it with `baoxue demo`)")
        raise typer.Exit(1)
    finally:
        engine.dispose()

    procs = []
    stopping = False

    def shutdown(*_):
        nonlocal stopping
        if stopping:
            return
        stopping = True
        console.print("stopping …")
        for p in reversed(procs):
            stop(p)
        console.print("all stopped")

    def interrupt(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)  # also when started in the background (SIGINT ignored)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        server, api_url = start_prefect_server(home, prefect_port, logs / "prefect-server.log")
        procs.append(server)
        wait_healthy(api_url + "/health", server, timeout=300, log=logs / "prefect-server.log")
        console.print(f"Prefect server and UI: http://127.0.0.1:{prefect_port}  (PREFECT_HOME={home})")
        env = base_env(home, api_url, BAOXUE_DATABASE_URL=url, BAOXUE_ARCHIVE_DIR=str(archive))
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            ensure_work_pool()
            if not no_worker:  # it starts while the deployments are registered
                procs.append(start_worker(env, logs / "worker.log", f"baoxue-local-{socket.gethostname()}"))
                console.print(f"worker on {WORK_POOL} (log: {logs / 'worker.log'})")
            if not no_web:
                procs.append(start([str(BIN / "uvicorn"), "web.app:create_app", "--factory", "--host", "127.0.0.1",
                                    "--port", str(web_port)], env, logs / "web.log"))
                console.print(f"Baoxue web/API: http://127.0.0.1:{web_port}  (documents: {archive})")
            register(overrides)
        console.print(f"work pool {WORK_POOL}: every deployment registered"
                      + (f" (schedules from {schedules or os.environ.get('BAOXUE_SCHEDULES_FILE')})" if overrides else ""))
        console.print("Ctrl-C stops everything.")
        while True:
            for p in procs:
                if p.poll() is not None:
                    console.print(f"[red]a child exited ({' '.join(map(str, p.args[:3]))} → {p.returncode}); see {logs}[/red]")
                    raise KeyboardInterrupt
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        shutdown()


@app.command("deployments")
def deployments_cmd(
    json_out: bool = typer.Option(False, "--json"),
    schedules: Optional[Path] = typer.Option(None, "--schedules", help="check a schedules TOML and show its effect "
                                                                        "(default BAOXUE_SCHEDULES_FILE)"),
) -> None:
    """List the deployments and their schedules (Asia/Shanghai)."""
    from deploy.deployments import DEPLOYMENTS, TIMEZONE
    from deploy.schedules import ScheduleError, describe, load as load_schedules

    try:
        overrides = load_schedules(schedules)
    except ScheduleError as exc:
        console.print(f"[red]排程文件有误 (bad schedules file): {exc}[/red]", soft_wrap=True)
        raise typer.Exit(2)
    rows = [{"deployment": s.full_name, "schedules": describe(s, overrides), "timezone": TIMEZONE,
             "concurrency_limit": s.concurrency_limit, "parameters": s.parameters} for s in DEPLOYMENTS]
    if json_out:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
        return
    table = Table(title="Baoxue deployments (Asia/Shanghai)")
    for c in ("deployment", "schedules", "limit"):
        table.add_column(c)
    for r in rows:
        table.add_row(r["deployment"], " | ".join(r["schedules"]) or "(triggered)", str(r["concurrency_limit"]))
    console.print(table)
