"""Run every benchmark: ``python -m bench.run`` (full, ~30–40 min) or ``--quick`` (~1–2 min).

Each figure runs in its own subprocess (its peak RSS is the child's ``ru_maxrss``, from
``os.wait4``) on SQLite and on PostgreSQL, prints JSON lines (``bench.common.emit``), and the
runner adds the ratios between figures (the advance against the peers), prints a table and
saves everything to ``bench/_out/results-<mode>.json``. The full run also draws
``docs/img/perf_scale.png`` and rewrites the figures section of ``docs/performance.md``.

Without ``BAOXUE_BENCH_PG_URL`` (or ``BAOXUE_TEST_PG_URL``) the runner starts a throwaway
PostgreSQL with ``deploy/testdb.sh`` and runs itself inside it. ``--only sqlite`` skips it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from .common import OUT, ROOT, db_url, log, pg_server_url
from .generate import Population

PY = sys.executable


def plan(quick: bool) -> dict:
    if quick:
        return {
            "big": Population(20_000, 10_000, 1_000, 2_000, seed=11),
            "scale_sizes": [1_000, 10_000], "scale_due": 1_000,
            "county": Population(6_000, 60, 20, 60, seed=21),
            "county_file": Population(10_000, 100, 30, 100, seed=21), "parse_rows": [10_000],
            "spiff_n": 100, "naive_n": 40, "naive_on": ["sqlite"], "sweep_due": 1_000, "render_docs": 40,
            "queue_watch": 1_000, "queue_repeat": 1,
        }
    return {
        "big": Population(1_100_000, 1_000_000, 100_000, 150_000, seed=11),
        "scale_sizes": [10_000, 100_000, 1_000_000], "scale_due": 10_000,
        "county": Population(60_000, 600, 200, 600, seed=21),
        # issue 20: a county file of 100 k rows through `baoxue attendance import` and the morning_check flow
        "county_file": Population(100_000, 1_000, 300, 1_000, seed=21), "parse_rows": [100_000, 1_000_000],
        "spiff_n": 1_000, "naive_n": 1_000, "naive_on": ["sqlite"], "sweep_due": 100_000, "render_docs": 500,
        "queue_watch": 100_000, "queue_repeat": 3,  # issue 18: 1 M open cases, 100 k watch entries
    }


def scale_pop(n: int, due: int) -> Population:
    return Population(max(20_000, int(n * 1.1)), n, due, n // 8, seed=31)


class Runner:
    def __init__(self, quick: bool, reuse: bool):
        self.quick, self.reuse = quick, reuse
        self.records: list[dict] = []

    def child(self, args: list[str], what: str) -> list[dict]:
        """Run ``python -m …`` in a subprocess; collect its JSON lines and its peak RSS."""
        t0 = time.perf_counter()
        log(f"· {what}")
        proc = subprocess.Popen([PY, "-m", *args], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        rss = usage.ru_maxrss / 1024
        recs = []
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("{") and '"name"' in line:
                rec = json.loads(line)
                rec.setdefault("rss_mb", round(rss, 1))
                rec["process_rss_mb"] = round(rss, 1)
                recs.append(rec)
                print(json.dumps(rec, ensure_ascii=False), flush=True)
        if proc.returncode:
            log(f"  ✗ {what} exited with {proc.returncode}")
            recs.append({"name": f"FAILED: {what}", "value": None, "unit": "", "baseline": None, "ratio": None})
        log(f"  {time.perf_counter() - t0:.1f} s")
        self.records += recs
        OUT.mkdir(parents=True, exist_ok=True)  # partial results survive a stopped run
        with open(OUT / f"partial-{'quick' if self.quick else 'full'}.jsonl", "a", encoding="utf-8") as f:
            for rec in recs:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        return recs

    def population(self, db: str, name: str, pop: Population, figure: bool = False) -> str:
        url = db_url(db, f"bench_{name}")
        args = ["bench.generate", url, "--pupils", str(pop.pupils), "--open", str(pop.open_cases), "--due",
                str(pop.due), "--closed", str(pop.n_closed), "--seed", str(pop.seed)]
        if self.reuse:
            args.append("--reuse")
        if figure:
            args.append("--figure")
        self.child(args, f"generate {name} ({pop.label()}) on {db}")
        return url

    def backend(self, db: str, p: dict) -> None:
        big = p["big"]  # batch sizes: the product's own per database (store.cases.advance.BATCH_SIZES)
        big_url = self.population(db, "big", big, figure=True)
        label = f"{_k(big.open_cases)} open, {_k(big.due)} due"
        adv = self.child(["bench.figures", "advance", big_url, "--label", label], f"advance {label} {db}")
        self.child(["bench.figures", "flow", big_url, "--label", label], f"advance_cases flow {label} {db}")
        if db == "postgresql":  # the sweep by 1, 2 and 4 concurrent workers (SKIP LOCKED): speed-up, each move once
            self.child(["bench.scale_out", big_url, "--label", label], f"scale-out {label} {db}")
        self.child(["bench.figures", "report", big_url, "--label", f"over {_k(big.open_cases + big.n_closed)} cases"],
                   f"report {db}")
        scale_urls = {}
        for n in p["scale_sizes"]:
            n_open = n
            if n == big.open_cases and big.due > p["scale_due"]:
                # the big population less its surplus due cases (seconds, instead of minutes of generating)
                url = db_url(db, "bench_scale_derived")
                n_open = big.open_cases - (big.due - p["scale_due"])
                self.child(["bench.figures", "derive", big_url, "--label", url, "--due", str(p["scale_due"])],
                           f"derive {n_open} open / {p['scale_due']} due from big on {db}")
            else:
                url = self.population(db, f"scale_{n}", scale_pop(n, p["scale_due"]))
            scale_urls[n] = url
            self.child(["bench.figures", "scale", url, "--open", str(n_open), "--due", str(p["scale_due"])], f"scale {n_open} {db}")
        largest, smallest = p["scale_sizes"][-1], p["scale_sizes"][0]
        middle = p["scale_sizes"][len(p["scale_sizes"]) // 2]
        self.child(["bench.figures", "sweep", scale_urls[largest], "--label", f"{_k(p['sweep_due'])} due",
                    "--due", str(p["sweep_due"])], f"sweep {db}")
        self.child(["bench.figures", "per_case", scale_urls[middle], "--label",
                    f"{_k(middle)} open, {_k(p['scale_due'])} due"], f"per-case {db}")
        county_url = self.population(db, "county", p["county"])
        self.child(["bench.figures", "intake", county_url, "--label", f"county file, {_k(p['county'].pupils)} pupils",
                    "--seed", str(p["county"].seed)], f"intake {db}")
        file_pop = p["county_file"]
        file_url = self.population(db, "county_file", file_pop)
        self.child(["bench.intake_flow", "flow", file_url, "--label", f"county file, {file_pop.label()}",
                    "--seed", str(file_pop.seed)], f"intake through the CLI and the flow {db}")
        spiff = self.child(["bench.figures", "spiff", scale_urls[smallest], "--n", str(p["spiff_n"])], f"spiff {db}")
        naive = []
        if db in p["naive_on"]:
            naive = self.child(["bench.figures", "naive_prefect", scale_urls[smallest], "--n", str(p["naive_n"])],
                               f"naive prefect {db}")
        if db == "sqlite":  # the renderers draining the day's queue of the big population (issue 20)
            self.child(["bench.render_queue", big_url, "--docs", str(p["render_docs"]), "--label", f"{big.label()}"],
                       "render queue")
        self.queues(db, big_url, p)
        self.derived(db, adv, spiff, naive, p)

    def queues(self, db: str, big_url: str, p: dict) -> None:
        """Issue 18: the work-queue pages at province scale, on a copy of the big population (the bench adds
        its watch entries and accounts to the database it is given, which the other figures must not see)."""
        from .common import copy_db, drop_db

        url = db_url(db, "bench_queues")
        copy_db(big_url, url)
        try:
            self.child(["bench.queues", url, "--watch", str(p["queue_watch"]), "--repeat", str(p["queue_repeat"])],
                       f"work-queue pages {db}")
        finally:
            drop_db(url)

    def derived(self, db: str, adv, spiff, naive, p) -> None:
        """Ratios between figures of the same run."""
        from .common import emit

        a = next((r for r in adv if r.get("figure") == "advance"), None)
        if a is None:
            return
        spiff_once = [r for r in spiff if r.get("figure") != "spiff_spec_per_instance"]
        spiff_each = [r for r in spiff if r.get("figure") == "spiff_spec_per_instance"]
        for recs, peer, target in ((spiff_once, "SpiffWorkflow (spec stored once)", 50),
                                   (spiff_each, "SpiffWorkflow, spec in every instance (before)", None),
                                   (naive, "one Prefect task run per transition", None)):
            r = next((x for x in recs if x.get("value")), None)
            if r:
                rec = emit(f"advance ÷ {peer} [{db}]", a["value"], "transitions/s", r["value"], db=db, figure="peer_ratio",
                           target=target, met=(a["value"] / r["value"] >= target) if target else None,
                           note=f"advance at {a['name']} vs {r['name']}")
                self.records.append(rec)
        scale = sorted((r for r in self.records if r.get("figure") == "scale" and r.get("db") == db), key=lambda r: r["open"])
        if len(scale) >= 2:
            lo, hi = scale[0], scale[-1]
            rec = emit(f"cost of {_k(lo['due'])} due at {_k(hi['open'])} vs {_k(lo['open'])} open [{db}]", hi["value"], "s",
                       lo["value"], db=db, figure="scale_ratio", target=2.0, met=hi["value"] / lo["value"] < 2.0,
                       note="ratio = time at the largest ÷ time at the smallest open-case count (target < 2)")
            self.records.append(rec)

    def parse_files(self, p: dict) -> None:
        """The county entry's parse + vet + stage peak RSS at each size, CSV and XLSX, vetted against a
        SQLite roster and, with a PostgreSQL server, against a PostgreSQL one (bench/intake_flow.py)."""
        for rows in p["parse_rows"]:
            for fmt in ("csv", "xlsx"):
                self.child(["bench.intake_flow", "parse", "--rows", str(rows), "--fmt", fmt],
                           f"parse {rows} rows {fmt}")
            if pg_server_url():
                for fmt in ("csv", "xlsx"):
                    self.child(["bench.intake_flow", "parse", "--rows", str(rows), "--fmt", fmt, "--backend",
                                "postgresql"], f"parse {rows} rows {fmt} [postgresql]")

    def others(self) -> None:
        """Figures other engineers own, when their scripts exist."""
        for mod, what in (("documents", "documents"), ("prefect_sweep", "Prefect daily sweep")):
            if (ROOT / "bench" / f"{mod}.py").exists():
                self.child([f"bench.{mod}", *(["--quick"] if self.quick else [])], what)
            else:
                log(f"· {what}: bench/{mod}.py not there yet, skipped")
                self.records.append({"name": f"{what}: bench/{mod}.py not written yet", "value": None, "unit": "",
                                     "baseline": None, "ratio": None, "figure": "missing"})


def _k(n: int) -> str:
    return f"{n / 1_000_000:g} M" if n >= 1_000_000 else (f"{n / 1000:g} k" if n >= 1000 else str(n))


def machine() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(), "cores": os.cpu_count()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        info["cpu"] = next((l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith("Model name")), "")
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        info["memory_gb"] = round(int(mem) / 1024 / 1024, 1)
    except Exception:
        pass
    import sqlite3

    info["sqlite"] = sqlite3.sqlite_version
    if pg_server_url():
        from sqlalchemy import create_engine, text

        eng = create_engine(pg_server_url())
        with eng.connect() as c:
            info["postgresql"] = c.scalar(text("SHOW server_version"))
            info["pg_settings"] = {k: c.scalar(text(f"SHOW {k}")) for k in
                                   ("shared_buffers", "work_mem", "fsync", "synchronous_commit")}
        eng.dispose()
    info["load_average_at_start"] = os.getloadavg()
    return info


def table(records: list[dict]) -> str:
    rows = [("figure", "value", "unit", "baseline", "ratio", "target", "RSS MB")]
    for r in records:
        tgt = "" if r.get("target") is None else (f"{r['target']}" + (" ✓" if r.get("met") else " ✗"))
        rows.append((r["name"], _fmt(r.get("value")), r.get("unit", ""), _fmt(r.get("baseline")), _fmt(r.get("ratio")),
                     tgt, _fmt(r.get("rss_mb"))))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows)


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def main() -> None:
    ap = argparse.ArgumentParser(description="Baoxue benchmarks")
    ap.add_argument("--quick", action="store_true", help="small sizes, about a minute or two")
    ap.add_argument("--only", choices=["sqlite", "postgresql"], help="one backend")
    ap.add_argument("--reuse", action="store_true", help="keep generated populations whose parameters match")
    ap.add_argument("--no-docs", action="store_true", help="full run: do not rewrite docs/performance.md")
    ap.add_argument("--no-others", action="store_true", help="skip bench/documents.py and bench/prefect_sweep.py")
    a = ap.parse_args()
    if a.only != "sqlite" and not pg_server_url() and not os.environ.get("BAOXUE_BENCH_IN_TESTDB"):
        log("no PostgreSQL URL: starting a throwaway cluster (deploy/testdb.sh)")
        os.environ["BAOXUE_BENCH_IN_TESTDB"] = "1"
        os.execvp(str(ROOT / "deploy" / "testdb.sh"), [str(ROOT / "deploy" / "testdb.sh"), "run", "--", PY, "-m",
                                                       "bench.run", *sys.argv[1:]])
    mode = "quick" if a.quick else "full"
    p = plan(a.quick)
    started = datetime.now()
    t0 = time.perf_counter()
    runner = Runner(a.quick, a.reuse)
    info = machine()
    for db in ("sqlite", "postgresql"):
        if a.only and a.only != db:
            continue
        runner.backend(db, p)
    runner.parse_files(p)
    if not a.no_others:
        runner.others()
    elapsed = time.perf_counter() - t0
    OUT.mkdir(parents=True, exist_ok=True)
    result = {"mode": mode, "started": started.isoformat(timespec="seconds"), "seconds": round(elapsed, 1),
              "machine": info, "plan": {k: (f"{v.label()}, {_k(v.n_closed)} closed, seed {v.seed}" if isinstance(v, Population) else v)
                       for k, v in p.items()},
              "records": runner.records}
    (OUT / f"results-{mode}.json").write_text(json.dumps(result, ensure_ascii=False, indent=1))
    print()
    print(table(runner.records))
    print(f"\n{mode} run: {elapsed / 60:.1f} min; results in {OUT / f'results-{mode}.json'}")
    if mode == "full" and not a.no_docs:
        from .report import write_docs

        write_docs(result)


if __name__ == "__main__":
    main()
