"""A county's morning-check file through the product's own entry: ``baoxue attendance import FILE --date D``
(no --school: rows name their school), which streams the file, vets it whole, and runs the
``morning_check`` flow against a Prefect server (validation, Prefect, a commit per chunk of
schools). Beside it, the floor: ``executemany`` of exactly the rows the product wrote, on a fresh copy;
and the store alone (``record_morning_checks`` in one transaction, no parsing, no Prefect).

    python -m bench.intake_flow flow URL --label "county, 100 k pupils" --seed 21
    python -m bench.intake_flow parse --rows 100000 --fmt csv     # the parser's peak RSS (one process each)

Each line names its population (the label) and the file's rows. The command is a subprocess (the
user's process, imports included); its wall time and peak RSS (``wait4``) are the figure's.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import OUT, ROOT, backend_of, emit, log, peak_rss_mb, reset_peak_rss

FILES = OUT / "files"


def _cli() -> list[str]:
    return [sys.executable, "-c", "from cli.main import app; app()"]


def run_entry(url: str, path: Path, day: str, at: str, api: str, prefect_home: Path) -> tuple[dict, float, float]:
    """``baoxue --db URL attendance import PATH --date DAY --at AT --confirm --json``: (its JSON, seconds, peak RSS MB)."""
    env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_HOME": str(prefect_home),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "BAOXUE_UPLOAD_MAX_MB": os.environ.get("BAOXUE_UPLOAD_MAX_MB", "64")}
    with tempfile.TemporaryFile("w+") as fout, tempfile.TemporaryFile("w+") as ferr:
        t0 = time.perf_counter()
        proc = subprocess.Popen([*_cli(), "--db", url, "attendance", "import", str(path), "--date", day, "--at", at,
                                 "--confirm", "--json"], stdout=fout, stderr=ferr, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        fout.seek(0)
        ferr.seek(0)
        out, errs = fout.read(), ferr.read()
    (OUT / f"entry-{backend_of(url)}.log").write_text(errs)  # the run's log lines, with their times
    rss = usage.ru_maxrss / 1024
    log(f"  entry: {seconds:.1f} s, peak RSS {rss:.0f} MB")
    lines = [x for x in out.splitlines() if x.startswith("{")]
    if proc.returncode or not lines:
        raise RuntimeError(f"attendance import exited {proc.returncode}: {errs[-3000:]}\n{out[-2000:]}")
    return json.loads(lines[-1]), seconds, rss


def compile_bytecode(*trees: Path) -> None:
    """Byte-compile the code trees and the environment's site-packages, as an installed product has them
    (``pip install`` compiles at install). This machine's environment sets PYTHONDONTWRITEBYTECODE=1 and
    its venv was installed without compiling: without this, every run of the command would compile some
    1,400 modules from source (seconds of a figure that a deployed ``baoxue`` never pays)."""
    import sysconfig

    roots = [str(t / p) for t in (trees or (ROOT,)) for p in PACKAGES if (t / p).is_dir()]
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", sysconfig.get_paths()["purelib"], *roots],
                   check=True, stdout=subprocess.DEVNULL)


PACKAGES = ("cli", "flows", "tasks", "store", "machines", "documents", "web", "deploy", "demo")


def _child_rss(cmd: list[str], env: dict) -> tuple[str, float]:
    """Run ``cmd``; (stdout, peak RSS MB of the child, from wait4)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"{cmd} failed")
    return out, usage.ru_maxrss / 1024


def _migrated(url: str) -> None:
    """A population generated before the staged_files table (revision 0014_intake): brought to head."""
    from store.db import make_engine
    from store.schema import migrate

    eng = make_engine(url)
    migrate(eng)
    eng.dispose()


def fig_flow(base: str, label: str, seed: int, repeat: int = 1) -> None:
    from deploy.local import free_port, start_prefect_server, stop, wait_healthy

    from .figures import AS_OF, _copy, _drop, _file_bytes, _max_ids, _written_rows, replay_executemany
    from .generate import morning_check_file
    from store.bulk import paused_gc

    db = backend_of(base)
    rows = morning_check_file(base, seed, AS_OF.date())
    FILES.mkdir(parents=True, exist_ok=True)
    path = FILES / f"county-{db}-{len(rows)}.csv"
    path.write_bytes(_file_bytes(rows))
    size_mb = path.stat().st_size / 2**20
    day, at = AS_OF.date().isoformat(), AS_OF.replace(hour=8, minute=20).isoformat()
    before = _max_ids(base)
    compile_bytecode()
    work = Path(tempfile.mkdtemp(prefix="baoxue-intake-"))
    server, api = start_prefect_server(work / "prefect", free_port(), work / "prefect-server.log")
    runs = []
    try:
        wait_healthy(api + "/health", server, log=work / "prefect-server.log")
        for i in range(repeat):
            url = _copy(base, f"flow{i}")
            _migrated(url)
            out, seconds, rss = run_entry(url, path, day, at, api, work / "prefect")
            written = _written_rows(url, before) if i == 0 else None
            _drop(url)
            runs.append((out, seconds, rss, written))
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: api}), get_client(sync_client=True) as client:
            task_runs, page = 0, 200  # the server is this figure's own: every task run belongs to its runs
            while True:
                got = len(client.read_task_runs(limit=page, offset=task_runs))
                task_runs += got
                if got < page:
                    break
            task_runs //= repeat
    finally:
        stop(server)
    out = runs[0][0]
    seconds = statistics.median(r[1] for r in runs)
    rss = max(r[2] for r in runs)
    new, changed, cancelled = runs[0][3]
    marks = out["marks"]
    n_rows = sum(len(v) for v in new.values()) + len(changed) + len(cancelled)

    # the same work without Prefect, in this process: the entry's parse, vet (the one rule, confirmed) and
    # staging, then record_morning_checks in one transaction; and, apart, the user's process starting and
    # importing the CLI and the flow (Prefect) without doing anything. Prefect's own cost is what is left.
    from store.cases.context import CaseContext
    from store.cases.intake import record_morning_checks
    from store.db import make_engine, session_factory, transaction
    from store.ingest.attendance_files import parse_attendance, vet_checks
    from store.ingest.staged import stage_file

    url = _copy(base, "store")
    _migrated(url)
    eng = make_engine(url)
    factory = session_factory(eng)
    data = path.read_bytes()
    now = AS_OF.replace(hour=8, minute=20)
    t0 = time.perf_counter()
    parsed = parse_attendance(data, filename=path.name)
    t_parse = time.perf_counter() - t0
    with transaction(factory) as s:
        vet_checks(s, day=AS_OF.date(), sheets=parsed.by_school, errors=parsed.errors, confirm=True)
        stage_file(s, data, path.name, by="bench", now=now)
    t_vet = time.perf_counter() - t0 - t_parse
    t1 = time.perf_counter()
    with transaction(factory) as s:
        record_morning_checks(s, CaseContext(s), parsed.by_school, day=AS_OF.date(), source="upload",
                              submitted_by="bench", now=now)
    t_record = time.perf_counter() - t1
    t_work = time.perf_counter() - t0
    t_store = t_parse + t_record
    eng.dispose()
    _drop(url)
    starts = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import cli.main, flows.morning_check"], check=True,
                       env={**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"})
        starts.append(time.perf_counter() - t0)
    t_start = statistics.median(starts)
    t_prefect = seconds - t_start - t_work

    url = _copy(base, "em")
    with paused_gc():
        t_em = replay_executemany(url, new, changed, cancelled)
    _drop(url)
    common = dict(db=db, file_rows=len(rows), file_mb=round(size_mb, 2), marks=marks, opened=out["opened"],
                  returned=out["returned"], excused=out["excused"], schools=len(out["schools"]), rows_written=n_rows)
    emit(f"county file through `baoxue attendance import` → morning_check flow, {label} [{db}]: rows", len(rows) / seconds,
         "rows/s", marks / t_em, figure="intake_flow", seconds=seconds, executemany_seconds=t_em, rss_mb=rss,
         task_runs=task_runs, runs=repeat,
         note="the user's command in its own process (imports, streaming parse, vet of the whole file, signed "
              "submission, Prefect server, flow recording up to 100,000 rows a task and a commit); baseline: executemany "
              "of exactly the rows it wrote, one transaction; modules byte-compiled beforehand as an installed product "
              "has them (compile_bytecode)", **common)
    emit(f"county file, store only (parse + record_morning_checks, one transaction), {label} [{db}]: rows",
         len(rows) / t_store, "rows/s", marks / t_em, figure="intake_store", seconds=t_store, parse_seconds=t_parse,
         record_seconds=t_record, executemany_seconds=t_em, note="the same file in-process: no CLI, no vet, no Prefect",
         **common)
    emit(f"county file, the entry's parts [{db}]: process start + imports (CLI, flow, Prefect)", t_start, "s",
         figure="intake_parts", process_start_seconds=t_start, parse_seconds=t_parse, vet_and_stage_seconds=t_vet,
         record_seconds=t_record, work_without_prefect_seconds=t_work, prefect_seconds=t_prefect,
         entry_seconds=seconds, executemany_seconds=t_em,
         note="entry = process start and imports (median of 3 bare starts) + the work without Prefect (parse, vet, "
              "stage, record_morning_checks: same process, one run) + Prefect's own cost (the rest: flow and task "
              "runs on the server, their parameters, artifacts, events, logs)", **common)


def write_file(rows: int, fmt: str) -> Path:
    """A synthetic county export (400 schools, 2 % absent) of ``rows`` rows, made once."""
    FILES.mkdir(parents=True, exist_ok=True)
    path = FILES / f"synthetic-{rows}.{fmt}"
    if path.exists():
        return path
    line = lambda i: (f"S{i % 400:03d}", f"G{i:09d}", "缺勤" if i % 50 == 0 else "到校", "厌学" if i % 50 == 0 else "")
    header = ("学校代码", "学籍号", "出勤状态", "缺勤原因")
    if fmt == "csv":
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(",".join(header) + "\n")
            for i in range(rows):
                f.write(",".join(line(i)) + "\n")
    else:
        from openpyxl import Workbook

        book = Workbook(write_only=True)
        sheet = book.create_sheet()
        sheet.append(header)
        for i in range(rows):
            sheet.append(line(i))
        book.save(path)
    return path


SCHOOLS = 400  # the synthetic county export's schools (write_file)


def roster_db(rows: int, backend: str = "sqlite") -> str:
    """The URL of a database (made once) holding the synthetic export's schools and pupils, so that the vet
    of :func:`parse_child` takes the production path (every row a known pupil, nothing to confirm)."""
    from sqlalchemy import create_engine

    import store.models.intake_files  # noqa: F401  (staged_files)
    from store.models import Base

    from .common import create_db, db_url, exists_db

    schools = [(k + 1, f"S{k:03d}", f"学校{k}", 1, "default", "default", 0, False) for k in range(SCHOOLS)]
    classes = [(k + 1, k + 1, "一班", 1) for k in range(SCHOOLS)]
    pupils = ((i + 1, f"G{i:09d}", "学生", i % SCHOOLS + 1, i % SCHOOLS + 1, "[]", True) for i in range(rows))
    if backend == "postgresql":
        url = db_url("postgresql", f"intake_roster_{rows}")
        if exists_db(url):
            eng = create_engine(url)
            Base.metadata.create_all(eng)  # a table the models gained since (staged_file_parts)
            eng.dispose()
            return url
        create_db(url)
        eng = create_engine(url)
        Base.metadata.create_all(eng)
        raw = eng.raw_connection()
        with raw.cursor() as cur:
            cur.execute("INSERT INTO jurisdictions (id, code, name, level) VALUES (1, 'C1', '县', 'county')")
            for table, cols, data in (
                    ("schools", "id, code, name, township_id, calendar_key, policy_name, enrolled, boarding", schools),
                    ("classes", "id, school_id, name, grade", classes),
                    ("pupils", "id, student_no, name, school_id, class_id, special_groups, enrolled", pupils)):
                with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                    for row in data:
                        copy.write_row(row)
        raw.commit()
        raw.close()
        with eng.connect() as c:
            c.exec_driver_sql("ANALYZE")
        eng.dispose()
        return url
    import sqlite3

    path = FILES / f"roster-{rows}.sqlite"
    if path.exists():
        eng = create_engine(f"sqlite:///{path}")
        Base.metadata.create_all(eng)  # a table the models gained since (staged_file_parts)
        eng.dispose()
        return f"sqlite:///{path}"
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    eng = create_engine(f"sqlite:///{tmp}")
    Base.metadata.create_all(eng)
    eng.dispose()
    con = sqlite3.connect(tmp)
    con.execute("INSERT INTO jurisdictions (id, code, name, level) VALUES (1, 'C1', '县', 'county')")
    con.executemany("INSERT INTO schools (id, code, name, township_id, calendar_key, policy_name, enrolled, boarding) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", schools)
    con.executemany("INSERT INTO classes (id, school_id, name, grade) VALUES (?, ?, ?, ?)", classes)
    con.executemany("INSERT INTO pupils (id, student_no, name, school_id, class_id, special_groups, enrolled) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", pupils)
    con.commit()
    con.close()
    tmp.rename(path)
    return f"sqlite:///{path}"


class _AnonPeak:
    """The process's largest RssAnon (its own heap: not the SQLite database's pages mapped through mmap,
    which VmHWM counts too), sampled every 10 ms by a thread."""

    def __init__(self):
        import threading

        self.first = self.peak = self._read()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _read() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._read())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._read())


def parse_child(path: str, db: str | None = None) -> None:
    """In a fresh process, what the county entry runs before its flow (``cli/attendance_county.py``): read the
    file, parse it (streaming, rows spooled), vet it against the database (the one rule, confirmed: every
    row a known pupil) and stage it as received; print the RSS before and the peak. The staging transaction
    is rolled back, so the roster database serves every run alike."""
    from datetime import date, datetime

    from store.db import make_engine, session_factory
    from store.ingest.attendance_files import BadRows, parse_attendance, vet_checks
    from store.ingest.staged import stage_file

    factory = session_factory(make_engine(db)) if db else None
    data = Path(path).read_bytes()
    anon = _AnonPeak()
    reset_peak_rss()
    before = peak_rss_mb()
    t0 = time.perf_counter()
    parsed = parse_attendance(data, filename=path)
    seconds = time.perf_counter() - t0
    parse_peak = peak_rss_mb()
    vet_seconds, refused, marks = 0.0, None, sum(parsed.by_school.size(c) for c in parsed.by_school)
    if factory is not None:
        t1 = time.perf_counter()
        s = factory()
        try:
            try:
                vet_checks(s, day=date(2026, 3, 2), sheets=parsed.by_school, complete=True, errors=parsed.errors,
                           more_errors=parsed.more_errors, confirm=True)
            except BadRows as exc:
                refused = exc.review.error_count
            stage_file(s, data, Path(path).name, by="bench", now=datetime(2026, 3, 2, 8, 20), parsed=parsed)
            s.flush()
        finally:
            s.rollback()
            s.close()
        vet_seconds = time.perf_counter() - t1
    anon.stop()
    print(json.dumps({"rows": parsed.rows, "marks": marks, "refused": refused, "before_mb": before,
                      "anon_before_mb": anon.first, "anon_peak_mb": anon.peak,
                      "parse_peak_mb": parse_peak, "peak_mb": peak_rss_mb(), "seconds": seconds,
                      "vet_stage_seconds": vet_seconds}))


def fig_parse(rows: int, fmt: str, vet: bool = True, backend: str = "sqlite") -> None:
    path = write_file(rows, fmt)
    env = {**os.environ, "BAOXUE_UPLOAD_MAX_MB": str(max(64, int(path.stat().st_size / 2**20) + 1)),
           "BAOXUE_XLSX_MAX_UNPACKED_MB": "1024"}  # 1 M rows of XLSX unpack to more than the default 200 MB
    cmd = [sys.executable, "-m", "bench.intake_flow", "parse-child", str(path)]
    if vet:
        cmd += ["--db", roster_db(rows, backend)]
    out, rss = _child_rss(cmd, env)
    r = json.loads(out.strip().splitlines()[-1])
    what = f"parse + vet + stage [{backend}]" if vet else "parse"
    emit(f"morning-check file {what}, {rows:,} rows {fmt.upper()} (synthetic county export): peak RSS", r["peak_mb"],
         "MB", figure="intake_parse_rss", db=backend if vet else None, rows=r["rows"], marks=r["marks"], refused=r["refused"],
         file_mb=round(path.stat().st_size / 2**20, 1), rss_before_parse_mb=r["before_mb"],
         parse_peak_mb=r["parse_peak_mb"], growth_mb=round(r["peak_mb"] - r["before_mb"], 1),
         anon_peak_mb=r["anon_peak_mb"], anon_growth_mb=round(r["anon_peak_mb"] - r["anon_before_mb"], 1),
         seconds=r["seconds"], rows_per_s=r["rows"] / r["seconds"], vet_stage_seconds=r["vet_stage_seconds"],
         process_rss_mb=rss,
         note="in a fresh process, after the file's bytes were read: store.ingest.attendance_files.parse_attendance "
              "(rows spooled to a temporary file, store.ingest.spool), then vet_checks against a roster database of the "
              f"export's {SCHOOLS} schools and its pupils (confirmed) and stage_file, as the county entry runs them; "
              f"peak VmHWM (BAOXUE_UPLOAD_MAX_MB={env['BAOXUE_UPLOAD_MAX_MB']}, BAOXUE_XLSX_MAX_UNPACKED_MB=1024; "
              "XLSX written by openpyxl write_only: inline strings, openpyxl's slowest case)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["flow", "parse", "parse-child"])
    ap.add_argument("url", nargs="?")
    ap.add_argument("--label", default="")
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--fmt", choices=["csv", "xlsx"], default="csv")
    ap.add_argument("--db", default=None, help="parse-child: the roster database to vet against")
    ap.add_argument("--no-vet", action="store_true", help="parse: the parse alone")
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite",
                    help="parse: the roster database to vet against (postgresql: BAOXUE_BENCH_PG_URL's server)")
    a = ap.parse_args()
    if a.what == "flow":
        fig_flow(a.url, a.label, a.seed, a.repeat)
    elif a.what == "parse":
        fig_parse(a.rows, a.fmt, vet=not a.no_vet, backend=a.backend)
    else:
        parse_child(a.url, a.db)


if __name__ == "__main__":
    main()
