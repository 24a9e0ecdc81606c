"""`baoxue ledger-book SCOPE MONTH`: the 台账 of referred cases (移交跟踪, 销号) as PDF/XLSX, and its rows."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def ledger_book(
    scope: str = typer.Argument(..., help="school:<code> | township:<code> | county:<code>"),
    month: str = typer.Argument(..., help="2026-11"),
    fmt: str = typer.Option("pdf", "--fmt", help="pdf | xlsx | html"),
    out: Optional[Path] = typer.Option(None, "--out", help="copy the file here"),
    json_out: bool = typer.Option(False, "--json"),
):
    """辍学学生台账: every referred case of SCOPE in MONTH with its reason, follow-ups and 销号 date."""
    from cli.common import emit, factory, fail_with, now_local
    from documents.archive import file_path, render_report
    from documents.render import RenderError

    try:
        with factory()() as session, session.begin():
            record = render_report(session, "referral_ledger", scope=scope, period=month, actor="cli", fmt=fmt,
                                   now=now_local())
            rows = record.document.data["report"]["rows"]
            path = file_path(record)
    except (LookupError, RenderError, ValueError) as exc:
        fail_with(str(exc))
        return
    if out is not None:
        shutil.copyfile(path, out)
    if json_out:
        return emit({"file": str(out or path), "rows": rows}, True, None)
    table = Table(title=f"辍学学生台账 {scope} {month}")
    for col in ("案件", "学校", "学生", "移交日期", "原因", "已跟踪", "逾期", "状态", "销号日期"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["case_id"]), r["school"], r["pupil"], r["referred_on"], r["reason_label"],
                      str(r["follow_ups_done"]), str(r["follow_ups_overdue"]), r["status_label"], r["closed_on"] or "")
    console.print(table)
    console.print(f"文件 file: {out or path}")


def mount(app: typer.Typer) -> None:
    app.command("ledger-book")(ledger_book)
