"""Shared plumbing of the benchmarks: figures as JSON lines, databases, timing, memory.

Every figure is one JSON line on stdout::

    {"name": ..., "value": ..., "unit": ..., "baseline": ..., "ratio": ...}

``baseline`` is the comparison figure (same unit) or null, ``ratio`` is value / baseline (or the
ratio the figure's target is stated in), and extra keys (``db``, ``note``, ``target``, ``met``,
``rss_mb`` …) may follow. ``bench.run`` starts every figure in its own subprocess, reads these
lines and adds the child's peak RSS.

Databases: a figure gets a *URL* for SQLite (a file under ``bench/_out/db``) or PostgreSQL (a
database created next to the one in ``BAOXUE_BENCH_PG_URL`` / ``BAOXUE_TEST_PG_URL``). Populations
are generated once and copied for each figure that writes (SQLite: file copy; PostgreSQL:
``CREATE DATABASE … TEMPLATE … STRATEGY FILE_COPY``), so every measured path starts from the same
rows.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "_out"
DB_DIR = OUT / "db"
PG_ENVS = ("BAOXUE_BENCH_PG_URL", "BAOXUE_TEST_PG_URL")


# -- figures ------------------------------------------------------------------------------------
def emit(name: str, value: float | None, unit: str, baseline: float | None = None, ratio: float | None = None,
         **extra: Any) -> dict:
    if ratio is None and baseline not in (None, 0) and value is not None:
        ratio = value / baseline
    rec = {"name": name, "value": _round(value), "unit": unit, "baseline": _round(baseline), "ratio": _round(ratio)}
    rec.update({k: _round(v) for k, v in extra.items()})
    print(json.dumps(rec, ensure_ascii=False), flush=True)
    return rec


def _round(v: Any) -> Any:
    if isinstance(v, float):
        return float(f"{v:.4g}") if abs(v) < 1000 else round(v, 1)
    return v


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> None:
    """Start a fresh VmHWM (Linux: write 5 to clear_refs), so a figure's peak excludes its setup."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


@contextmanager
def timer() -> Iterator[dict]:
    t = {"s": 0.0}
    start = time.perf_counter()
    try:
        yield t
    finally:
        t["s"] = time.perf_counter() - start


def log(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


# -- databases ----------------------------------------------------------------------------------
def pg_server_url() -> str | None:
    for env in PG_ENVS:
        if os.environ.get(env):
            return os.environ[env]
    return None


def db_url(backend: str, name: str) -> str:
    if backend == "sqlite":
        DB_DIR.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{DB_DIR / (name + '.sqlite')}"
    server = pg_server_url()
    if not server:
        raise RuntimeError("no PostgreSQL: set BAOXUE_BENCH_PG_URL (or run under deploy/testdb.sh)")
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def backend_of(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


def sqlite_path(url: str) -> Path:
    return Path(url.split("///", 1)[1])


def _pg_admin():
    return create_engine(pg_server_url(), isolation_level="AUTOCOMMIT", poolclass=NullPool)


def drop_db(url: str) -> None:
    if backend_of(url) == "sqlite":
        p = sqlite_path(url)
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(p) + suffix).unlink(missing_ok=True)
        return
    name = make_url(url).database
    eng = _pg_admin()
    with eng.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    eng.dispose()


def create_db(url: str) -> None:
    drop_db(url)
    if backend_of(url) == "postgresql":
        eng = _pg_admin()
        with eng.connect() as c:
            c.execute(text(f'CREATE DATABASE "{make_url(url).database}"'))
        eng.dispose()


def exists_db(url: str) -> bool:
    if backend_of(url) == "sqlite":
        return sqlite_path(url).exists()
    eng = _pg_admin()
    with eng.connect() as c:
        found = c.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": make_url(url).database})
    eng.dispose()
    return bool(found)


def copy_db(src: str, dst: str) -> None:
    """A byte-for-byte copy of a population, so each measured path starts from the same rows."""
    drop_db(dst)
    if backend_of(src) == "sqlite":
        shutil.copyfile(sqlite_path(src), sqlite_path(dst))
        return
    eng = _pg_admin()
    with eng.connect() as c:
        c.execute(text("CHECKPOINT"))
        c.execute(text(f'CREATE DATABASE "{make_url(dst).database}" TEMPLATE "{make_url(src).database}" '
                       f'STRATEGY FILE_COPY'))
    eng.dispose()


def analyze(url: str) -> None:
    """Planner statistics after a bulk load (PostgreSQL: VACUUM ANALYZE, which also sets hint bits)."""
    if backend_of(url) == "sqlite":
        import sqlite3

        con = sqlite3.connect(sqlite_path(url))
        con.execute("ANALYZE")
        con.commit()
        con.close()
        return
    eng = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text("VACUUM ANALYZE"))
    eng.dispose()
