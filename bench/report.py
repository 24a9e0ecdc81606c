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


def write_docs(result: dict) -> None:
    plot(result, IMG / "perf_scale.png")
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else f"# Performance\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    DOC.write_text(f"{head}{BEGIN}\n{markdown(result)}\n{END}{tail}", encoding="utf-8")


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
