"""Turn a run's results into docs: the plot and the figures section of docs/performance.md.

``python -m bench.report [bench/_out/results-full.json]`` (the full ``bench.run`` calls it).
The section between ``<!-- figures:begin -->`` and ``<!-- figures:end -->`` is rewritten; the
method text around it is kept.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import OUT, ROOT

DOC = ROOT / "docs" / "performance.md"
IMG = ROOT / "docs" / "img"
BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"
GOALS_BEGIN, GOALS_END = "<!-- goals:begin -->", "<!-- goals:end -->"
DBS = ("postgresql", "sqlite")


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = result["records"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    dbs = list(dict.fromkeys(r["db"] for r in recs if r.get("figure") in ("scale", "advance") and r.get("db")))
    for db, marker in zip(dbs, "osD^v"):
        pts = sorted((r for r in recs if r.get("figure") == "scale" and r.get("db") == db), key=lambda r: r["open"])
        if pts:
            xs = [r["open"] for r in pts]
            ax1.plot(xs, [r["rate"] for r in pts], marker=marker, label=f"{db}: {pts[0]['due']:,} due")
            ax2.plot(xs, [r["rss_mb"] for r in pts], marker=marker, label=f"{db}: {pts[0]['due']:,} due")
        head = next((r for r in recs if r.get("figure") == "advance" and r.get("db") == db), None)
        if head:
            big = result["plan"]["big"]
            open_n = head.get("open") or (int(big.split("open_cases=")[1].split(",")[0]) if "open_cases=" in big else None)
            if open_n:
                ax1.scatter([open_n], [head["value"]], marker="*", s=160, label=f"{db}: {head['transitions']:,} due")
                ax2.scatter([open_n], [head["rss_mb"]], marker="*", s=160, label=f"{db}: {head['transitions']:,} due")
    for ax, title, unit in ((ax1, "daily advance: transitions/s", "transitions/s"),
                            (ax2, "daily advance: peak RSS", "MB")):
        ax.set_xscale("log")
        ax.set_xlabel("open cases")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    ax2.axhline(500, color="red", linestyle="--", linewidth=0.8)
    ax2.set_ylim(bottom=0)
    ax1.set_ylim(bottom=0)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"Run: `{result['mode']}`, started {result['started']}, {result['seconds'] / 60:.0f} min.",
        "",
        f"Machine: {m.get('cpu', '?')}, {m.get('cores')} cores, {m.get('memory_gb')} GB RAM; {m.get('platform')}; "
        f"Python {m.get('python')}, SQLite {m.get('sqlite')}, PostgreSQL {m.get('postgresql', '—')} "
        f"({', '.join(f'{k}={v}' for k, v in (m.get('pg_settings') or {}).items())}); "
        f"load average at start {', '.join(f'{x:.1f}' for x in m.get('load_average_at_start', []))}.",
        "",
        "| figure | value | unit | baseline | ratio | target | met | peak RSS MB |",
        "|---|---:|---|---:|---:|---:|---|---:|",
    ]
    for r in result["records"]:
        tgt = r.get("target")
        lines.append("| " + " | ".join([
            r["name"].replace("|", "/"), _fmt(r.get("value")), r.get("unit", ""), _fmt(r.get("baseline")),
            _fmt(r.get("ratio")), _fmt(tgt), "" if tgt is None else _fmt(bool(r.get("met"))), _fmt(r.get("rss_mb")),
        ]) + " |")
    lines += ["", "![transitions/s and peak RSS against open cases](img/perf_scale.png)", ""]
    return "\n".join(lines)


# --- the status of issue 18's and 20's goals, every figure from this one run --------------------------------

def _of(recs: list[dict], figure: str, db: str | None = None, name_has: str = "") -> list[dict]:
    return [r for r in recs if r.get("figure") == figure and (db is None or r.get("db") == db)
            and name_has in r["name"] and r.get("value") is not None]


def _cell(rec: dict | None, show) -> tuple[str, bool | None]:
    """(text, met) of one goal on one database; a figure the run did not make says so."""
    if rec is None:
        return "not measured", None
    return show(rec)


def _ratio_goal(figure: str, target: float, *, at_least: bool, name_has: str = "", unit: str = "×"):
    def row(recs: list[dict], db: str):
        rec = next(iter(_of(recs, figure, db, name_has)), None)

        def show(r):
            ratio = r.get("ratio")
            met = None if ratio is None else (ratio >= target if at_least else ratio <= target)
            return f"{_fmt(ratio)}{unit} ({_fmt(r['value'])} vs {_fmt(r.get('baseline'))} {r.get('unit', '')})", met
        return _cell(rec, show)
    return row


def _value_goal(figure: str, target: float, *, at_least: bool, name_has: str = ""):
    def row(recs: list[dict], db: str):
        rec = next(iter(_of(recs, figure, db, name_has)), None)

        def show(r):
            met = r["value"] >= target if at_least else r["value"] <= target
            return f"{_fmt(r['value'])} {r.get('unit', '')}", met
        return _cell(rec, show)
    return row


def _html_goal(recs: list[dict], db: str):
    if db != "sqlite":  # rendering does not touch the database: one figure, shown once
        return "", None
    rec = next(iter(_of(recs, "documents_html")), None)
    return _cell(rec, lambda r: (f"{_fmt(r['value'])} doc/s (shared-Environment floor {_fmt(r.get('floor_per_s'))})",
                                 r["value"] >= 10_000))


def _events_goal(recs: list[dict], db: str):
    rec = next(iter(_of(recs, "flow_wall", db)), None)
    return _cell(rec, lambda r: (f"{_fmt(r.get('events'))} events, {_fmt(r.get('task_runs'))} task runs",
                                 None if r.get("events") is None else r["events"] <= 100))


def _entered_goal(recs: list[dict], db: str):
    rec = next(iter(_of(recs, "intake_flow", db)), None)
    return _cell(rec, lambda r: (f"yes: {_fmt(r.get('seconds'))} s, {_fmt(r.get('task_runs'))} task runs, "
                                 f"{_fmt(r.get('rss_mb'))} MB", True))


def _parse_flat(recs: list[dict], db: str):
    """Peak RSS (VmHWM) of the county entry's parse + vet + stage against a roster on ``db``; the process's own
    heap (RssAnon) beside it: on SQLite, VmHWM also counts the database pages mapped (mmap_size) and cached."""
    parts, mets = [], []
    for fmt in ("CSV", "XLSX"):
        pts = sorted((r for r in _of(recs, "intake_parse_rss", db) if f" {fmt} " in r["name"]), key=lambda r: r["rows"])
        if len(pts) >= 2:
            lo, hi = pts[0], pts[-1]
            growth = hi["value"] / lo["value"]
            heap = (f"; heap {_fmt(lo.get('anon_peak_mb'))} → {_fmt(hi.get('anon_peak_mb'))} MB"
                    if lo.get("anon_peak_mb") and hi.get("anon_peak_mb") else "")
            parts.append(f"{fmt} {_fmt(lo['value'])} → {_fmt(hi['value'])} MB, {growth:.2f}× "
                         f"({lo['rows']:,} → {hi['rows']:,} rows{heap})")
            mets.append(growth <= 1.25)
    if not parts:
        return "not measured", None
    return "; ".join(parts), all(mets)


def _naive_goal(recs: list[dict], db: str):
    rec = next(iter(_of(recs, "naive_prefect", db)), None)
    if rec is None:
        return ("" if db == "postgresql" else "not measured"), None
    return f"{_fmt(rec['value'])} transitions/s at {_fmt(rec.get('measured'))} measured", (rec.get("measured") or 0) >= 1000


def _render_queue_goal(recs: list[dict], db: str):
    rec = next(iter(_of(recs, "render_queue")), None) if db == "sqlite" else None
    if rec is None:
        return ("" if db == "postgresql" else "not measured"), None
    hours = rec.get("queue_hours_one_worker")
    return (f"{_fmt(rec.get('drained'))} of {_fmt(rec.get('queue'))} requests: {_fmt(rec['value'])} docs/s, "
            f"{_fmt(rec.get('docs_per_cpu_s'))} per CPU-s" + (f", whole queue ≈ {_fmt(hours)} h of one worker" if hours else "")
            ), None


def _scale_out_goal(recs: list[dict], db: str):
    pts = sorted(_of(recs, "scale_out", db), key=lambda r: r.get("workers", 0))
    if not pts:
        return ("" if db == "sqlite" else "not measured"), None
    once = all(r.get("each_once") for r in pts)
    text = " / ".join(f"{_fmt(r['value'])} s" for r in pts) + " (speed-up " + " / ".join(
        f"{_fmt(r.get('speedup'))}×" for r in pts) + ")" + ("; every transition once" if once else "; **a transition doubled**")
    return text, once


def _pages_goal(recs: list[dict], db: str):
    pages = [r for r in recs if r["name"].startswith("page ") and r.get("db") == db and r.get("value") is not None]
    if not pages:
        return "not measured", None
    misses = [f"{r['name'][5:]} {_fmt(r['value'])} ms" for r in pages if not r.get("met")]
    text = f"{len(pages) - len(misses)} of {len(pages)} pages ≤ 300 ms"
    return text + (f"; over: {', '.join(misses)}" if misses else ""), not misses


GOALS = [
    ("`advance_cases` **flow** peak RSS ≤ 500 MB", "big", _value_goal("flow_rss", 500, at_least=False)),
    ("flow wall ÷ bare `advance` ≤ 2", "big", _ratio_goal("flow_wall", 2.0, at_least=False)),
    ("Prefect events per sweep aggregated (≤ 100; was > 4,600)", "big", _events_goal),
    ("escalation ÷ raw UPDATE ≥ 0.40", "big", _ratio_goal("advance", 0.40, at_least=True)),
    ("10 k due at ~1 M vs 10 k open ≤ 2×", "scale", _ratio_goal("scale_ratio", 2.0, at_least=False)),
    ("county file through the product's entry (CLI → `morning_check` flow) ÷ executemany ≥ 0.5", "county file",
     _ratio_goal("intake_flow", 0.5, at_least=True)),
    ("a 100 k-row county file enters whole", "county file", _entered_goal),
    ("county entry memory flat with rows: parse + vet + stage peak RSS ≤ 1.25× for 10× the rows", "parse", _parse_flat),
    ("≥ 50× the fair SpiffWorkflow (spec stored once)", "big ÷ scale 10 k",
     _ratio_goal("peer_ratio", 50, at_least=True, name_has="spec stored once")),
    ("≥ 15× the per-case loop using `opened_seq`", "scale 100 k", _ratio_goal("per_case", 15, at_least=True)),
    ("HTML documents ≥ 10 k/s per core", "documents", _html_goal),
    ("naive one-task-per-transition Prefect peer at ≥ 1,000 transitions", "scale 10 k", _naive_goal),
    ("renderers draining a day's queue", "big", _render_queue_goal),
    ("scale-out 1 / 2 / 4 workers (SKIP LOCKED), each transition once", "big", _scale_out_goal),
    ("issue 18: work-queue pages ≤ 300 ms (median)", "big + 100 k watch entries", _pages_goal),
]


def goals_markdown(result: dict) -> str:
    """Every goal of issues 18 and 20 with its figure from this run, the population named; misses in bold."""
    recs, plan = result["records"], result.get("plan", {})
    pops = {"big": plan.get("big"), "scale": f"{plan.get('scale_sizes')} open, {plan.get('scale_due')} due, seed 31",
            "county file": plan.get("county_file"), "parse": f"{plan.get('parse_rows')} rows of a synthetic county export, vetted against a roster of its schools and pupils",
            "scale 10 k": "the smallest scale population", "scale 100 k": "the middle scale population",
            "big ÷ scale 10 k": "advance on big ÷ Spiff on the smallest scale population",
            "big + 100 k watch entries": f"{plan.get('big')} + {plan.get('queue_watch', 0):,} watch entries", "documents": "bench/documents.py"}
    lines = [f"From the run of {result['started']} ({result['mode']}, {result['seconds'] / 60:.0f} min, load average at "
             f"start {', '.join(f'{x:.1f}' for x in result['machine'].get('load_average_at_start', []))}). "
             "Populations: " + "; ".join(f"`{k}` = {v}" for k, v in pops.items() if v) + ".",
             "", "| goal | population | PostgreSQL | SQLite | verdict |", "|---|---|---|---|---|"]
    for goal, pop, fn in GOALS:
        cells, mets = [], []
        for db in DBS:
            text, met = fn(recs, db)
            cells.append(f"**{text}**" if met is False else text)
            if met is not None:
                mets.append(met)
        verdict = "measured" if not mets else ("met" if all(mets) else ("**missed**" if not any(mets) else "**missed in part**"))
        lines.append(f"| {goal} | {pop} | {cells[0]} | {cells[1]} | {verdict} |")
    return "\n".join(lines)


def _between(text: str, begin: str, end: str, body: str) -> str:
    if begin not in text:
        return text + f"\n{begin}\n{body}\n{end}\n"
    head, rest = text.split(begin, 1)
    return f"{head}{begin}\n{body}\n{end}{rest.split(end, 1)[1]}"


def write_docs(result: dict) -> None:
    plot(result, IMG / "perf_scale.png")
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Performance\n"
    text = _between(text, BEGIN, END, markdown(result))
    text = _between(text, GOALS_BEGIN, GOALS_END, goals_markdown(result))
    DOC.write_text(text, encoding="utf-8")


def from_logs(paths: list[Path], plan: dict) -> dict:
    """A result assembled from the JSON lines of runs (e.g. a run stopped before it wrote its file)."""
    from .run import machine

    records = []
    for p in paths:
        for line in p.read_text(encoding="utf-8").splitlines():
            if line.startswith("{") and '"name"' in line:
                records.append(json.loads(line))
    first = {"generate": 0}
    records.sort(key=lambda r: (r.get("db") != "sqlite", not r["name"].startswith("generate")))
    del first
    return {"mode": "full (from logs)", "started": "", "seconds": 0, "machine": machine(), "plan": plan,
            "records": records}


def main() -> None:
    args = sys.argv[1:]
    if args and args[0] == "--logs":
        from .run import plan

        p = {k: (str(v) if not isinstance(v, (int, list, str)) else v) for k, v in plan(False).items()}
        write_docs(from_logs([Path(a) for a in args[1:]], p))
        return
    path = Path(args[0]) if args else OUT / "results-full.json"
    write_docs(json.loads(path.read_text()))


if __name__ == "__main__":
    main()
