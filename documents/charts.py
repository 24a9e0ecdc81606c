"""The chart of the month for the monthly report (matplotlib, PNG, deterministic bytes)."""
from __future__ import annotations

import io
import threading
from functools import lru_cache

from documents import fonts

_lock = threading.Lock()


@lru_cache(maxsize=1)
def _font_family() -> list[str]:
    """The 黑体 face fontconfig resolves to (registered with matplotlib), then the Debian CJK fonts."""
    from matplotlib import font_manager

    families = []
    heading = fonts.font_plan().get("heading")
    if heading and heading.file:
        try:
            font_manager.fontManager.addfont(heading.file)
            families.append(heading.family)
        except Exception:  # an odd font file: fall back to the known families
            pass
    return families + ["Noto Sans CJK SC", "DejaVu Sans"]


def month_chart_png(report: dict) -> bytes:
    """Bars: new cases and returns per school day; line: open cases at the end of each day."""
    import logging

    import matplotlib

    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt

    daily = report["daily"]
    days = [d["day"][8:10].lstrip("0") for d in daily]
    x = list(range(len(daily)))
    with _lock, matplotlib.rc_context({
        "font.family": _font_family(), "font.size": 9, "axes.unicode_minus": False,
        "svg.hashsalt": "baoxue", "figure.dpi": 100,
    }):
        fig, ax = plt.subplots(figsize=(9.2, 2.6))
        try:
            ax.bar([i - 0.2 for i in x], [d["new"] for d in daily], width=0.4, color="#c0392b", label="新增案件")
            ax.bar([i + 0.2 for i in x], [d["returned"] for d in daily], width=0.4, color="#2e86c1", label="返校复学")
            ax.plot(x, [d["open"] for d in daily], color="#222", marker="o", markersize=3, linewidth=1.2, label="在办案件")
            ax.set_xticks(x, days)
            ax.set_xlabel("日期（上学日）")
            ax.set_ylabel("人数")
            ax.set_title(f"{report['month_label']}控辍保学案件变化（{report['unit']['name']}）", loc="left")
            ax.yaxis.get_major_locator().set_params(integer=True)
            ax.spines[["top", "right"]].set_visible(False)
            ax.set_ylim(0, max([d["open"] for d in daily] + [d["new"] for d in daily] + [d["returned"] for d in daily] + [1]) * 1.15)
            ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=3, frameon=False)
            fig.tight_layout()
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=150, metadata={"Software": None})
            return buf.getvalue()
        finally:
            plt.close(fig)
