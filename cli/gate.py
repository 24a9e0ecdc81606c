"""`baoxue gate …` (住校生出入校门登记) and `baoxue truancy …` (旷课分级), mounted into the main CLI."""
from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Optional

import typer

from cli.common import console, emit as _emit, factory as _factory, fail_with as _fail, now_local, school_scope

gate_app = typer.Typer(help="住校生出入校门登记 boarders' gate log", no_args_is_help=True)
truancy_app = typer.Typer(help="旷课分级 truancy tiers (seed 001 第六条)", no_args_is_help=True)


def _dt(value: str | None, default: datetime | None = None) -> datetime | None:
    if not value:
        return default
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        _fail(f"时间格式应为 2026-11-20T16:00 (bad time '{value}')")


@gate_app.command("board")
def board(student_no: str, dorm: Optional[str] = typer.Option(None, help="宿舍"),
          off: bool = typer.Option(False, "--off", help="改为走读 (no longer boarding)"),
          at: Optional[str] = typer.Option(None, help="when (default now)")):
    """Mark a pupil as a boarder (住校生), or --off as a day pupil."""
    from store.db import transaction
    from store.prevention.gate import _pupil, set_boarder
    from store.prevention.common import PreventionError
    from store.access.scope import EVERYTHING
    now = _dt(at, now_local())
    try:
        with transaction(_factory()) as s:
            pupil = _pupil(s, student_no, EVERYTHING)
            set_boarder(s, pupil, boarding=not off, dorm=dorm, actor="cli", now=now)
            name = pupil.name
    except PreventionError as exc:
        _fail(str(exc))
    console.print(f"{name}：{'走读' if off else '住校'}" + (f"，宿舍 {dorm}" if dorm else ""))


@gate_app.command("import")
def import_file(file: Path = typer.Argument(..., exists=True, readable=True), json_out: bool = typer.Option(False, "--json")):
    """Boarders from CSV/XLSX (学籍号, 住校 是/否, 宿舍); bad rows are listed, good rows kept."""
    from store.db import transaction
    from store.prevention.gate import import_boarders
    from store.ingest.tabular import TableError
    try:
        with transaction(_factory()) as s:
            out = import_boarders(s, file.read_bytes(), file.name, actor="cli", now=now_local())
    except TableError as exc:
        _fail(str(exc))
    data = {**out, "errors": [{"row": n, "reason": m} for n, m in out["errors"]]}
    _emit(data, json_out, lambda d: console.print(
        f"住校 boarding {d['boarding']}, 走读 day pupils {d['day_pupils']}, 错误 errors {len(d['errors'])}"
        + "".join(f"\n  第 {e['row']} 行: {e['reason']}" for e in d["errors"])))
    if out["errors"]:
        raise typer.Exit(2)


@gate_app.command("out")
def gate_out(
    student_no: str,
    due: str = typer.Option(..., "--due", help="应返校时间 due back, e.g. 2026-11-22T18:00"),
    approved_by: str = typer.Option("", "--approved-by", help="批准的班主任 (empty: exit without approval → alert)"),
    approved_at: Optional[str] = typer.Option(None, "--approved-at", help="批准时间 (default: the exit time)"),
    fetched_by: str = typer.Option("", "--fetched-by", help="接送人姓名"),
    relation: str = typer.Option("", "--relation", help="接送人与学生关系"),
    reason: str = typer.Option("", "--reason", help="事由"),
    at: Optional[str] = typer.Option(None, "--at", help="离校时间 (default now)"),
    json_out: bool = typer.Option(False, "--json"),
):
    """Record a boarder leaving the school gate."""
    from store.cases.context import CaseContext
    from store.db import transaction
    from store.prevention.gate import record_exit
    from store.prevention.common import PreventionError
    when = _dt(at, now_local())
    try:
        with transaction(_factory()) as s:
            m = record_exit(s, CaseContext(s), student_no, at=when, due_back_at=_dt(due), approved_by=approved_by,
                            approved_at=_dt(approved_at), fetched_by=fetched_by, relation=relation, reason=reason,
                            actor="cli", now=when)
            data = {"movement_id": m.id, "approved": m.approved, "alert": not m.approved or not m.fetched_by,
                    "due_back_at": m.due_back_at}
    except PreventionError as exc:
        _fail(str(exc))
    _emit(data, json_out, lambda d: console.print(
        f"离校登记 #{d['movement_id']}，应返校 {d['due_back_at']:%m-%d %H:%M}"
        + ("；[red]未经批准或无人接送，已提醒班主任[/red]" if d["alert"] else "")))


@gate_app.command("in")
def gate_in(student_no: str, with_: str = typer.Option("", "--with", help="送返人"),
            at: Optional[str] = typer.Option(None, "--at", help="返校时间 (default now)"),
            json_out: bool = typer.Option(False, "--json")):
    """Record a boarder back through the gate."""
    from store.db import transaction
    from store.prevention.gate import record_return
    from store.prevention.common import PreventionError
    when = _dt(at, now_local())
    try:
        with transaction(_factory()) as s:
            m = record_return(s, student_no, at=when, returned_with=with_, actor="cli", now=when)
            data = {"movement_id": m.id, "late": m.in_at > m.due_back_at}
    except PreventionError as exc:
        _fail(str(exc))
    _emit(data, json_out, lambda d: console.print(f"返校登记 #{d['movement_id']}" + ("（逾期返校）" if d["late"] else "")))


@gate_app.command("check")
def gate_check(as_of: Optional[str] = typer.Option(None, "--as-of"), json_out: bool = typer.Option(False, "--json")):
    """The periodic check: alerts for late returns and unapproved exits (the daily advance runs it too)."""
    from store.cases.context import CaseContext
    from store.db import transaction
    from store.prevention.gate import check_gate
    from store.prevention.common import mark_overdue
    when = _dt(as_of, now_local())
    with transaction(_factory()) as s:
        data = {**check_gate(s, CaseContext(s), when), "overdue": mark_overdue(s, when)}
    _emit(data, json_out, lambda d: console.print(
        f"未批准离校 {d['unapproved_exit']}，逾期未返 {d['late_return']}，逾期未处理 {d['overdue']}"))


@gate_app.command("report")
def gate_report(
    school: Optional[str] = typer.Option(None, "--school", help="学校代码 (all schools if omitted)"),
    day: Optional[str] = typer.Option(None, "--term-of", help="a day in the term (default today)"),
    archive: bool = typer.Option(False, "--archive", help="存档: write the term's log (XLSX) and mark it archived"),
    partial: bool = typer.Option(False, "--partial", help="archive before the term has ended"),
    as_of: Optional[str] = typer.Option(None, "--as-of"), json_out: bool = typer.Option(False, "--json"),
):
    """The term's gate log: movements, pupils away now, open alerts; --archive at term end."""
    from sqlalchemy import select

    from store.cases.context import CaseContext
    from store.db import transaction
    from documents.gate_log import archive_term
    from store.prevention.gate import movements, term_of
    from store.models import School
    from store.prevention.common import PreventionError, duties
    from store.access.scope import Scope
    now = _dt(as_of, now_local())
    the_day = date.fromisoformat(day) if day else now.date()
    out: dict = {"as_of": now, "schools": []}
    try:
        with transaction(_factory()) as s:
            ctx = CaseContext(s)
            q = select(School).order_by(School.code)
            if school:
                q = q.where(School.code == school)
            found = s.scalars(q).all()
            if not found:
                _fail(f"学校代码 {school} 不存在 (unknown school)")
            for sch in found:
                term = term_of(ctx, sch, the_day)
                scope = Scope(school_ids=frozenset({sch.id}))
                rows = movements(s, scope=scope, start=datetime.combine(term.start, datetime.min.time()),
                                 end=datetime.combine(term.end, datetime.max.time()), as_of=now)
                entry = {"school": sch.name, "code": sch.code, "term": term.label, "movements": len(rows),
                         "late": sum(r["late"] for r in rows), "unapproved": sum(not r["approved"] for r in rows),
                         "away_now": [r["student_no"] for r in rows if r["in_at"] is None],
                         "open_alerts": len(duties(s, scope=scope, as_of=now, source="gate"))}
                if archive:
                    a = archive_term(s, ctx, sch.code, day=the_day, actor="cli", now=now, partial=partial)
                    entry["archive"] = {"path": a.path, "sha256": a.sha256, "movements": a.movements, "partial": a.partial}
                out["schools"].append(entry)
    except PreventionError as exc:
        _fail(str(exc))

    def show(d):
        for e in d["schools"]:
            console.print(f"{e['school']}（{e['code']}）{e['term']}：出入 {e['movements']} 人次，逾期返校 {e['late']}，"
                          f"未经批准 {e['unapproved']}，现未返校 {len(e['away_now'])}，待处理提醒 {e['open_alerts']}"
                          + (f"；已存档 {e['archive']['path']}" if "archive" in e else ""))
    _emit(out, json_out, show)


@truancy_app.command("run")
def truancy_run(as_of: Optional[str] = typer.Option(None, "--as-of"), json_out: bool = typer.Option(False, "--json")):
    """Apply the tiers (the daily advance runs this too); safe to repeat."""
    from store.cases.context import CaseContext
    from store.db import transaction
    from store.prevention.common import mark_overdue
    from store.prevention.truancy import apply_tiers
    when = _dt(as_of, now_local())
    with transaction(_factory()) as s:
        out = apply_tiers(s, CaseContext(s), when, actor="cli")
        data = {"new": out["new"], **out["by_tier"], "overdue": mark_overdue(s, when)}
    _emit(data, json_out, lambda d: console.print(
        f"新增分级处理 {d['new']}：" + "，".join(f"第{k[5:]}级 {v}" for k, v in d.items() if k.startswith("tier_"))))


@truancy_app.command("list")
def truancy_list(school_year: Optional[int] = typer.Option(None, "--year", help="学年 (2026 = 2026—2027)"),
                 school: Optional[str] = typer.Option(None, "--school"), json_out: bool = typer.Option(False, "--json")):
    """Pupils with truancies this school year and the tier reached."""
    from machines.truancy import TruancyRules
    from store.db import transaction
    from store.prevention.truancy import pupil_tiers

    year = school_year or TruancyRules().school_year(now_local().date())
    with transaction(_factory()) as s:
        rows = pupil_tiers(s, scope=school_scope(s, school), school_year=year)
    _emit(rows, json_out, lambda d: [console.print(f"{r['student_no']} {r['pupil']} {r['class']}：旷课 {r['truancies']} 次，"
                                                   f"第{r['tier']}级") for r in d] or console.print("（无）"))
