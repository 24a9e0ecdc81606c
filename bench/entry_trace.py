"""Where the county entry's time goes: ``baoxue attendance import`` timed part by part, in the user's process.

    python bench/entry_trace.py run URL FILE --code DIR [--code DIR2 …] [--repeat N]

runs the command (``--db URL attendance import FILE --date … --confirm --json``) against a fresh copy of the
population ``URL`` for each code tree ``DIR`` in turn (``PYTHONPATH=DIR``: the old tree and the new one,
back to back, under the same load), with one Prefect server of its own, and prints each run's parts. The
child is this file run as a script (``child``): it wraps, as their modules are imported, the functions the
entry calls (the parse, the vet, the staging, the flow and its task calls, the store's record steps,
``Session.commit``), writes each call's start and end (seconds since the parent started the process, the
system's monotonic clock) to a JSON-lines file, then runs the CLI. Nothing here changes what runs; a name
a code tree lacks is simply not timed. Population and file: those of ``bench/intake_flow.py`` (seed 21).
"""
from __future__ import annotations

import functools
import importlib.abc
import json
import os
import sys
import time

T0 = float(os.environ.get("BAOXUE_TRACE_T0", "0") or 0)
OUT = os.environ.get("BAOXUE_TRACE_FILE")
_marks: list[tuple] = []


def now() -> float:
    return time.monotonic() - T0


def mark(label: str, start: float, end: float | None = None) -> None:
    _marks.append((label, round(start, 4), round(end if end is not None else start, 4)))


def timed(label: str, fn):
    if getattr(fn, "_traced", False):
        return fn

    @functools.wraps(fn)
    def wrapper(*a, **k):
        t = now()
        try:
            return fn(*a, **k)
        finally:
            mark(label, t, now())

    wrapper._traced = True
    return wrapper


def wrap(module, names: dict[str, str]) -> None:
    for attr, label in names.items():
        if hasattr(module, attr):
            setattr(module, attr, timed(label, getattr(module, attr)))


def _patch_session(module) -> None:
    module.SessionTransaction.commit = timed("commit", module.SessionTransaction.commit)


PATCHES = {  # module → its functions to time (wrapped as soon as the module is executed, before anyone imports them)
    "store.ingest.attendance_files": {"parse_attendance": "parse", "vet_checks": "vet"},
    "store.ingest.staged": {"stage_file": "stage", "staged_parse": "run: staged_parse (read back, hash, parse)"},
    "store.access.submission_check": {"refusal": "run: verify (signature, scope)"},
    "store.cases.intake": {"record_morning_checks": "run: record_morning_checks", "_validate": "record: validate rows",
                           "_day_state": "record: day state", "_claim_submissions": "record: submissions",
                           "_write_marks": "record: write marks", "_apply_today": "record: returns and case opening",
                           "_open_cases": "record: case opening", "lock_schools": "record: lock schools",
                           "requests_from_marks": "record: leave requests", "requests_from_checks": "record: leave requests"},
    "tasks.intake": {"_staged_sheets": "run: validate (staged sheets)"},
    "tasks.publish": {"create_table_artifact": "run: table artifact", "emit_event": "run: event"},
    "flows.morning_check": {"verify_submission": "task: verify_submission", "validate_submission": "task: validate_submission",
                            "record_school_checks": "task: record_school_checks",
                            "publish_morning_check": "task: publish_morning_check", "progress_artifact": "progress artifact",
                            "morning_check": "flow: morning_check"},
}
SPECIAL = {"sqlalchemy.orm.session": _patch_session}
IMPORTS = {"cli.main": "import cli.main", "prefect": "import prefect", "flows.morning_check": "import flows.morning_check",
           "openpyxl": "import openpyxl", "weasyprint": "import weasyprint", "fastapi": "import fastapi",
           "jinja2": "import jinja2", "documents": "import documents"}


class Hook(importlib.abc.MetaPathFinder):
    """Times the import of the modules in IMPORTS and patches those in PATCHES right after they execute."""

    def find_spec(self, name, path, target=None):
        if name not in PATCHES and name not in SPECIAL and name not in IMPORTS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        original = loader.exec_module

        def exec_module(module):
            t = now()
            original(module)
            if name in IMPORTS:
                mark(IMPORTS[name], t, now())
            if name in PATCHES:
                wrap(module, PATCHES[name])
            if name in SPECIAL:
                SPECIAL[name](module)

        loader.exec_module = exec_module
        return spec


def _flush_marks() -> None:
    if OUT:
        with open(OUT, "a", encoding="utf-8") as f:
            for m in _marks:
                f.write(json.dumps(m, ensure_ascii=False) + "\n")
    _marks.clear()


def _write() -> None:
    mark("exit (atexit)", now())
    if os.environ.get("BAOXUE_TRACE_GC"):  # what the interpreter's final collection would cost
        import gc

        t = now()
        gc.collect()
        mark("gc.collect at exit", t, now())
    if os.environ.get("BAOXUE_TRACE_HARD_EXIT"):  # experiment: no interpreter finalization
        _flush_marks()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    _flush_marks()


def child(argv: list[str]) -> None:
    import atexit

    mark("interpreter started", now())
    sys.path[:] = [p for p in sys.path if os.path.abspath(p) != os.path.dirname(os.path.abspath(__file__))]
    sys.meta_path.insert(0, Hook())
    atexit.register(_write)  # registered first: runs after every exit handler registered later (Prefect's)
    t = now()
    from cli.main import app

    mark("imports before the command", t, now())
    sys.argv = ["baoxue", *argv]
    t = now()
    try:
        app()
    finally:
        mark("command", t, now())
        _flush_marks()  # now: a successful county import may leave by os._exit (cli/fast_exit.py)


# -- the parent -------------------------------------------------------------------------------------------------
PARTS = [  # (name, how it is computed from a run's marks)
    ("process start (interpreter)", lambda m: m.first("interpreter started")),
    ("imports before the command", lambda m: m.dur("imports before the command")),
    ("parse (read + stream + spool)", lambda m: m.dur("parse")),
    ("vet (whole file)", lambda m: m.dur("vet")),
    ("stage (file bytes)", lambda m: m.dur("stage")),
    ("entry commit", lambda m: m.first_dur("commit")),
    ("import flows.morning_check (Prefect)", lambda m: m.dur("import flows.morning_check")),
    ("flow call, total", lambda m: m.dur("flow: morning_check")),
    ("  task verify_submission (inner)", lambda m: m.dur("run: verify (signature, scope)")),
    ("  task validate_submission (inner)", lambda m: m.dur("run: validate (staged sheets)")),
    ("    of it staged_parse", lambda m: m.dur("run: staged_parse (read back, hash, parse)")),
    ("  task record_school_checks: record_morning_checks", lambda m: m.dur("run: record_morning_checks")),
    ("    validate rows", lambda m: m.dur("record: validate rows")),
    ("    day state", lambda m: m.dur("record: day state")),
    ("    submissions", lambda m: m.dur("record: submissions")),
    ("    write marks", lambda m: m.dur("record: write marks")),
    ("    leave requests", lambda m: m.dur("record: leave requests")),
    ("    returns + case opening", lambda m: m.dur("record: returns and case opening")),
    ("      of it case opening", lambda m: m.dur("record: case opening")),
    ("  record commit", lambda m: m.commit_in("task: record_school_checks")),
    ("  task publish_morning_check (inner)", lambda m: m.dur("run: table artifact") + m.dur("run: event")),
    ("  Prefect: flow + task overhead", lambda m: m.dur("flow: morning_check") - m.inner()),
    ("import prefect", lambda m: m.dur("import prefect")),
    ("after the command (exit handlers)", lambda m: m.total - m.end("command")),
    ("the rest (other imports: store, SQLAlchemy, tasks; typer; gaps)", lambda m: m.total - sum(
        f(m) for n, f in PARTS if n in TOP)),
]
TOP = {"process start (interpreter)", "imports before the command", "parse (read + stream + spool)", "vet (whole file)",
       "stage (file bytes)", "import flows.morning_check (Prefect)", "flow call, total",
       "import prefect", "after the command (exit handlers)"}


class Marks:
    def __init__(self, rows: list, total: float):
        self.rows, self.total = rows, total

    def _all(self, label):
        return [(s, e) for l, s, e in self.rows if l == label]

    def first(self, label):
        got = self._all(label)
        return got[0][0] if got else 0.0

    def end(self, label):
        got = self._all(label)
        return got[-1][1] if got else 0.0

    def dur(self, label):
        return sum(e - s for s, e in self._all(label))

    def first_dur(self, label):
        got = self._all(label)
        return got[0][1] - got[0][0] if got else 0.0

    def commit_in(self, label):
        spans = self._all(label)
        return sum(e - s for s, e in self._all("commit") if any(a <= s <= b for a, b in spans))

    def inner(self):
        work = ["run: verify (signature, scope)", "run: validate (staged sheets)", "run: record_morning_checks",
                "run: table artifact", "run: event"]
        return sum(self.dur(x) for x in work) + self.commit_in("task: record_school_checks") + \
            self.commit_in("task: verify_submission") + self.commit_in("task: validate_submission")


def run_one(code: str, url: str, path: str, api: str, home: str, day: str, at: str) -> tuple[float, Marks, dict]:
    import subprocess
    import tempfile

    trace = tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False).name
    env = {**os.environ, "PYTHONPATH": code, "PREFECT_API_URL": api, "PREFECT_HOME": home,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "BAOXUE_TRACE_FILE": trace,
           "BAOXUE_UPLOAD_MAX_MB": os.environ.get("BAOXUE_UPLOAD_MAX_MB", "64")}
    cmd = [sys.executable, os.path.abspath(__file__), "child", "--db", url, "attendance", "import", path, "--date", day,
           "--at", at, "--confirm", "--json"]
    t0 = time.monotonic()
    env["BAOXUE_TRACE_T0"] = repr(t0)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    total = time.monotonic() - t0
    if proc.returncode:
        raise RuntimeError(f"{code}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    out = json.loads([x for x in proc.stdout.splitlines() if x.startswith("{")][-1])
    with open(trace, encoding="utf-8") as f:
        rows = [json.loads(x) for x in f]
    os.unlink(trace)
    return total, Marks(rows, total), out


def run(url: str, path: str, codes: list[str], repeat: int, day: str, at: str) -> dict:
    import statistics
    import tempfile
    from pathlib import Path

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from bench.figures import _copy, _drop
    from bench.intake_flow import _migrated
    from deploy.local import free_port, start_prefect_server, stop, wait_healthy

    if not os.environ.get("BAOXUE_TRACE_NO_COMPILE"):  # as an installed product has them (both trees alike)
        from bench.intake_flow import compile_bytecode

        compile_bytecode(*[Path(c) for c in codes])
    work = Path(tempfile.mkdtemp(prefix="baoxue-trace-"))
    server, api = start_prefect_server(work / "prefect", free_port(), work / "server.log")
    results: dict[str, list] = {c: [] for c in codes}
    try:
        wait_healthy(api + "/health", server, log=work / "server.log")
        for i in range(repeat):
            for code in codes:
                copy = _copy(url, f"trace{i}")
                _migrated(copy)
                total, marks, out = run_one(code, copy, path, api, str(work / "prefect"), day, at)
                _drop(copy)
                results[code].append((total, marks, out))
                print(f"  {code} run {i + 1}: {total:.2f} s, marks {out['marks']}, opened {out['opened']}",
                      file=sys.stderr, flush=True)
    finally:
        stop(server)
    table = {}
    for code, runs in results.items():
        table[code] = {"total": statistics.median(r[0] for r in runs)}
        for name, fn in PARTS:
            table[code][name] = statistics.median(fn(r[1]) for r in runs)
        table[code]["imports"] = sorted({l for r in runs for l, _, _ in r[1].rows if l.startswith("import ")})
        table[code]["timeline"] = runs[-1][1].rows
    return table


def main() -> None:
    if sys.argv[1:2] == ["child"]:
        child(sys.argv[2:])
        return
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["run"])
    ap.add_argument("url")
    ap.add_argument("file")
    ap.add_argument("--code", action="append", required=True)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--day", default="2026-11-23")
    ap.add_argument("--at", default="2026-11-23T08:20:00")
    ap.add_argument("--json", default=None, help="also write the table here")
    ap.add_argument("--timeline", action="store_true", help="print each code tree's last run, mark by mark")
    a = ap.parse_args()
    table = run(a.url, a.file, a.code, a.repeat, a.day, a.at)
    names = ["total", *[n for n, _ in PARTS]]
    print(f"{'part (median of ' + str(a.repeat) + ')':52}" + "".join(f"{os.path.basename(c.rstrip('/')):>12}" for c in a.code))
    for n in names:
        print(f"{n:52}" + "".join(f"{table[c][n]:12.3f}" for c in a.code))
    for c in a.code:
        print(f"{c}: modules imported: {', '.join(table[c]['imports'])}")
        if a.timeline:
            from collections import Counter

            rows = table[c]["timeline"]
            many = Counter(label for label, _, _ in rows)
            shown = set()
            for label, start, end in sorted(rows, key=lambda m: m[1]):
                if many[label] <= 3:
                    print(f"  {start:8.3f} {end:8.3f} {end - start:7.3f}  {label}")
                elif label not in shown:  # a step called once per school: its calls summed, from its first start
                    shown.add(label)
                    spans = [(s, e) for l, s, e in rows if l == label]
                    print(f"  {start:8.3f} {spans[-1][1]:8.3f} {sum(e - s for s, e in spans):7.3f}  {label} "
                          f"(×{many[label]})")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(table, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
