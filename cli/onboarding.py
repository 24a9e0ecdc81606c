"""`baoxue onboard DIR` and `baoxue org …`: a county's organisation, people and pupils from its files.

    baoxue org templates DIR        the five empty templates (XLSX, Chinese headers) to fill in
    baoxue org sample DIR           the sample county's files (docs/onboarding/sample)
    baoxue onboard DIR              preview: what the folder's files would add, change and retire
    baoxue onboard DIR --apply      the same, applied (only when no row is bad)
    baoxue org import FILE [--apply]  one file (the sheet is named by the file: 区划/学校/教职工/班级/学籍)
    baoxue org schools|staff|pupils  what is on record, with --school and --search
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cli.common import console, emit, factory, fail_with, now_local

org_app = typer.Typer(help="机构、教职工和学生：从县里已有的文件导入 (organisation from files)", no_args_is_help=True)
MAX_FILE_BYTES = 64 * 1024 * 1024


def _read(path: Path) -> bytes:
    if path.stat().st_size > MAX_FILE_BYTES:
        fail_with(f"{path.name} 超过 {MAX_FILE_BYTES // 1024 // 1024}MB", 2)
    return path.read_bytes()


def _run(files: list[tuple[str, bytes]], apply: bool, as_json: bool) -> None:
    from store.db import transaction
    from store.ingest.onboarding import OnboardingError, onboard

    try:
        with transaction(factory()) as s:
            result = onboard(s, files, now=now_local(), apply=apply)
    except OnboardingError as exc:
        fail_with(str(exc), 2)
    emit(result.as_dict(), as_json, lambda d: _show(d, apply))
    if result.errors:
        raise typer.Exit(2)


def _show(data: dict, apply: bool) -> None:
    for sheet in data["sheets"]:
        counts = (f"学生 新增 {sheet['pupils']['added']}、更新 {sheet['pupils']['updated']}" if "pupils" in sheet else
                  f"新增 {sheet['add']}、修改 {sheet['change']}、停用 {sheet['retire']}、恢复 {sheet['restore']}")
        console.print(f"[bold]{sheet['sheet']}[/bold]（{sheet['rows']} 行）：{counts}"
                      + (f"，待办移交 {sheet['handovers']} 项" if sheet.get("handovers") else "")
                      + (f"，[red]错误 {sheet['errors']} 行[/red]" if sheet["errors"] else ""))
        for change in sheet["changes"][:50]:
            console.print(f"  {change['line']}")
        if len(sheet["changes"]) > 50:
            console.print(f"  …另有 {len(sheet['changes']) - 50} 项")
        for e in sheet["errors"]:
            console.print(f"  [red]第 {e['row']} 行[/red]: {e['reason']}" if e["row"] else f"  [red]{e['reason']}[/red]")
    if data["errors"]:
        console.print("[red]有错误行：什么都没有导入。[/red]改正后重新运行 (nothing imported: fix the rows and rerun)")
    elif data["applied"]:
        console.print("[green]已导入 applied.[/green]")
    else:
        console.print("以上为预览，没有写入。确认无误后加 --apply 导入 (preview only: rerun with --apply)")


def onboard_command(
    folder: Path = typer.Argument(..., exists=True, file_okay=False, help="区划、学校、教职工、班级、学籍 文件所在的文件夹"),
    apply: bool = typer.Option(False, "--apply", help="确认导入（默认只预览）"),
    as_json: bool = typer.Option(False, "--json"),
):
    """Import a county's folder in order (区划 → 学校 → 教职工 → 班级 → 学籍): a preview, or --apply."""
    from store.ingest.onboarding import sheet_of

    files = [(p.name, _read(p)) for p in sorted(folder.iterdir()) if p.is_file() and sheet_of(p.name)]
    if not files:
        fail_with(f"{folder} 中没有 区划/学校/教职工/班级/学籍 的 CSV 或 XLSX 文件", 2)
    _run(files, apply, as_json)


@org_app.command("import")
def org_import(file: Path = typer.Argument(..., exists=True, dir_okay=False),
               apply: bool = typer.Option(False, "--apply", help="确认导入（默认只预览）"),
               as_json: bool = typer.Option(False, "--json")):
    """One file: its name says the sheet (e.g. 学校.xlsx). A preview, or --apply."""
    _run([(file.name, _read(file))], apply, as_json)


@org_app.command("templates")
def org_templates(folder: Path = typer.Argument(..., file_okay=False)):
    """Write the five empty templates (XLSX with Chinese headers and a 说明 sheet) into FOLDER."""
    from documents.onboarding_templates import template_books

    folder.mkdir(parents=True, exist_ok=True)
    for name, data in template_books().items():
        (folder / name).write_bytes(data)
        console.print(f"  {folder / name}")


@org_app.command("sample")
def org_sample(folder: Path = typer.Argument(..., file_okay=False),
               policy: str = typer.Option("default", help="控辍策略 of the sample schools")):
    """Write the sample county's files (宁安县: 2 乡镇, 3 学校, 18 班, ~200 学生) into FOLDER."""
    from demo.county_files import county_files

    folder.mkdir(parents=True, exist_ok=True)
    for name, data in county_files(policy=policy).items():
        (folder / name).write_bytes(data)
        console.print(f"  {folder / name}")


@org_app.command("schools")
def org_schools(search: Optional[str] = typer.Option(None, "--search"), as_json: bool = typer.Option(False, "--json")):
    """The schools on record (retired ones marked)."""
    from store.db import transaction
    from store.reporting.directory import list_schools
    from store.access.scope import EVERYTHING

    with transaction(factory()) as s:
        page = list_schools(s, EVERYTHING, search=search, limit=500, offset=0)
    emit(page, as_json, lambda d: [console.print(
        f"{r['code']}  {r['name']}  {r['township']}  {r['stage'] or ''}  在册 {r['enrolled']}"
        + ("  [停用]" if r["retired_on"] else "")) for r in d["rows"]])


@org_app.command("staff")
def org_staff(school: Optional[str] = typer.Option(None, help="学校标识码"), search: Optional[str] = typer.Option(None),
              as_json: bool = typer.Option(False, "--json")):
    """Staff and officials on record."""
    from store.db import transaction
    from store.reporting.directory import list_staff
    from cli.common import school_scope

    with transaction(factory()) as s:
        page = list_staff(s, school_scope(s, school), search=search, limit=500, offset=0)
    emit(page, as_json, lambda d: [console.print(
        f"{r['name']}  {r['role_label']}  {r['unit']}  {r['office'] or ''}  {r['phone']}"
        + ("  [停用]" if r["retired_on"] else "")) for r in d["rows"]])


@org_app.command("pupils")
def org_pupils(school: Optional[str] = typer.Option(None, help="学校标识码"), search: Optional[str] = typer.Option(None),
               limit: int = typer.Option(100, min=1, max=1000), offset: int = typer.Option(0, min=0),
               as_json: bool = typer.Option(False, "--json")):
    """Pupils on record (names and ID numbers masked), searched by name or 学籍号."""
    from store.db import transaction
    from store.reporting.directory import list_pupils
    from cli.common import school_scope

    with transaction(factory()) as s:
        page = list_pupils(s, school_scope(s, school), search=search, limit=limit, offset=offset)
    emit(page, as_json, lambda d: [console.print(f"共 {d['total']} 人")] + [console.print(
        f"{r['student_no']}  {r['name']}  {r['school']}  {r['class']}  {r['village'] or ''}") for r in d["rows"]])


def mount(app: typer.Typer) -> None:
    app.command("onboard")(onboard_command)
    app.add_typer(org_app, name="org")
