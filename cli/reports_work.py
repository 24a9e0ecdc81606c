"""`baoxue submission …` (月报/学期报告 drafted, edited, submitted and signed by people), `baoxue weekly …`
(周查表: the head teachers' weekly class count) and `baoxue spot-result …` (季查 results), issue 17 items 1–3."""
from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

submission_app = typer.Typer(help="月报/学期报告的填报、签署与报送 (reports submitted by people)")
weekly_app = typer.Typer(help="周查表: 班主任每周统计班级在册、在校、缺勤、辍学 (weekly class count)")
spot_app = typer.Typer(help="季查结果: 抽查班级的核查记录与差异对账 (quarterly spot-check results)")
console = Console()


def _now() -> datetime:
    from cli.common import now_local

    return now_local()


def _factory():
    from cli.common import factory

    return factory()


def _fail(message: str):
    from cli.common import fail_with

    fail_with(message)


def _emit(data, as_json: bool, render) -> None:
    from cli.common import emit

    emit(data, as_json, render)


# -- 月报 / term reports --------------------------------------------------------------------------------
@submission_app.command("open")
def submission_open(at: Optional[datetime] = typer.Option(None, "--at", help="when (default now)"),
                    json_out: bool = typer.Option(False, "--json")):
    """Draft the reports due within the next days and open their owners' duties (the daily run does this)."""
    from store.db import transaction
    from store.reporting import people

    with transaction(_factory()) as s:
        now = at or _now()
        out = people.draft_due(s, policy=people.policy_for(s, "county", _county(s)), now=now)
    _emit(out, json_out, lambda d: console.print("已起草 drafted: " + ("，".join(f"{k} {v}" for k, v in d.items()) or "无 none")))


def _covered(s, day: date) -> None:
    """Refuse a day the schools' calendars cannot answer for (a year without a holiday list, a term not entered)."""
    from sqlalchemy import select

    from store.calendars import calendars, ensure_covered
    from store.models import School

    known = calendars()
    ensure_covered(s, {k: known[k] for k in set(s.scalars(select(School.calendar_key))) if k in known}, day)


def _county(s) -> str:
    from sqlalchemy import select

    from store.models import Jurisdiction

    return s.scalar(select(Jurisdiction.code).where(Jurisdiction.level == "county").order_by(Jurisdiction.id).limit(1)) or ""


def _write(level: str, code: str, period: str, kind: str, at: Optional[datetime], by: str, submit: bool, **text):
    from store.db import transaction
    from store.reporting import people

    try:
        with transaction(_factory()) as s:
            now = at or _now()
            policy = people.policy_for(s, level, code)
            if submit:
                v, created = people.submit(s, policy=policy, kind=kind, level=level, code=code, period=period, now=now,
                                           actor=by, **text)
            else:
                v, created = people.edit_draft(s, policy=policy, kind=kind, level=level, code=code, period=period,
                                               now=now, actor=by, **text), True
            return people.version_dict(v) | {"created": created}
    except people.ReportWorkError as exc:
        _fail(str(exc))


TEXT_OPTIONS = dict(problems=typer.Option(None, "--problems", help="存在问题"),
                    next_steps=typer.Option(None, "--next-steps", help="下一步工作安排"),
                    prepared_by=typer.Option(None, "--prepared-by", help="填表人"),
                    approved_by=typer.Option(None, "--approved-by", help="负责人"))


@submission_app.command("edit")
def submission_edit(level: str = typer.Argument(..., help="school | township | county"),
                    code: str = typer.Argument(..., help="school or jurisdiction code"),
                    period: str = typer.Argument(..., help="YYYY-MM (monthly) or the term's first day YYYYMMDD"),
                    kind: str = typer.Option("monthly", "--kind", help="monthly | term_start | term_end"),
                    problems: Optional[str] = TEXT_OPTIONS["problems"], next_steps: Optional[str] = TEXT_OPTIONS["next_steps"],
                    prepared_by: Optional[str] = TEXT_OPTIONS["prepared_by"],
                    approved_by: Optional[str] = TEXT_OPTIONS["approved_by"],
                    by: str = typer.Option("cli", "--by"), at: Optional[datetime] = typer.Option(None, "--at"),
                    json_out: bool = typer.Option(False, "--json")):
    """Edit the draft: 存在问题, 下一步, 填表人, 负责人 (a submitted version is frozen)."""
    out = _write(level, code, period, kind, at, by, False, problems=problems, next_steps=next_steps,
                 prepared_by=prepared_by, approved_by=approved_by)
    _emit(out, json_out, lambda d: console.print(f"草稿已保存 draft saved (填表人 {d['prepared_by']}，负责人 {d['approved_by']})"))


@submission_app.command("submit")
def submission_submit(level: str = typer.Argument(...), code: str = typer.Argument(...), period: str = typer.Argument(...),
                      kind: str = typer.Option("monthly", "--kind"),
                      problems: Optional[str] = TEXT_OPTIONS["problems"], next_steps: Optional[str] = TEXT_OPTIONS["next_steps"],
                      prepared_by: Optional[str] = TEXT_OPTIONS["prepared_by"],
                      approved_by: Optional[str] = TEXT_OPTIONS["approved_by"],
                      reason: str = typer.Option("", "--reason", help="why (a correction)"),
                      by: str = typer.Option("cli", "--by"), at: Optional[datetime] = typer.Option(None, "--at"),
                      json_out: bool = typer.Option(False, "--json")):
    """Submit and sign: a new frozen version; its lateness is measured against the policy's due date."""
    out = _write(level, code, period, kind, at, by, True, problems=problems, next_steps=next_steps,
                 prepared_by=prepared_by, approved_by=approved_by, **({"reason": reason} if reason else {}))
    _emit(out, json_out, lambda d: console.print(
        f"已报送 submitted: 第 {d['version']} 版，{'**逾期** late' if d['late'] else '按时 on time'}（截止 {d['due_on']}）"
        + ("" if d["created"] else "（与上一版相同，未新增 unchanged）")))


@submission_app.command("list")
def submission_list(period: str = typer.Argument(...), kind: str = typer.Option("monthly", "--kind"),
                    at: Optional[datetime] = typer.Option(None, "--at"), json_out: bool = typer.Option(False, "--json")):
    """Every report of the period: owner's duty status and the submitted versions."""
    from cli.common import print_table
    from store.db import transaction
    from store.reporting import people

    period = people.report_period(kind, period).label  # a malformed month or unknown term: one line (ValueError)
    with transaction(_factory()) as s:
        rows = people.report_rows(s, kind=kind, period=period, as_of=at or _now())
    _emit(rows, json_out, lambda rows: print_table(f"报告报送 {period}", ("层级", "单位", "截止", "状态", "版本", "填表人", "负责人"), [
        {"层级": r["level_label"], "单位": r["scope"], "截止": r["due_at"], "状态": r["status"] + ("（逾期）" if r["done_late"] else ""),
         "版本": str(len(r["versions"])), "填表人": (r["versions"] or [r["draft"] or {}])[-1].get("prepared_by", ""),
         "负责人": (r["versions"] or [r["draft"] or {}])[-1].get("approved_by", "")} for r in rows]))


# -- weekly count -----------------------------------------------------------------------------------------
@weekly_app.command("open")
def weekly_open(day: datetime = typer.Argument(..., formats=["%Y-%m-%d"]), at: Optional[datetime] = typer.Option(None, "--at"),
                json_out: bool = typer.Option(False, "--json")):
    """Open the day's weekly-count duties (the schools whose policy counts on this weekday)."""
    from store.db import transaction
    from store.reporting import people

    with transaction(_factory()) as s:
        _covered(s, day.date())
        n = people.open_weekly(s, day=day.date(), now=at or datetime.combine(day.date(), datetime.min.time()),
                               policy_of=people.policies(s))
    _emit({"opened": n}, json_out, lambda d: console.print(f"周查任务 opened: {d['opened']}"))


@weekly_app.command("submit")
def weekly_submit(class_id: int = typer.Argument(..., help="class id"),
                  day: datetime = typer.Argument(..., formats=["%Y-%m-%d"]),
                  enrolled: Optional[int] = typer.Option(None, "--enrolled", help="在册 (default: the ledger's)"),
                  present: Optional[int] = typer.Option(None, "--present", help="在校"),
                  absent: Optional[int] = typer.Option(None, "--absent", help="缺勤"),
                  dropouts: Optional[int] = typer.Option(None, "--dropouts", help="辍学"),
                  note: str = typer.Option("", "--note"), by: str = typer.Option("cli", "--by"),
                  at: Optional[datetime] = typer.Option(None, "--at"), json_out: bool = typer.Option(False, "--json")):
    """A head teacher's count of one class (fields left out are the ledger's pre-filled numbers)."""
    from store.db import transaction
    from store.reporting import people

    counts = {k: v for k, v in (("enrolled", enrolled), ("present", present), ("absent", absent), ("dropouts", dropouts))
              if v is not None}
    try:
        with transaction(_factory()) as s:
            row, created = people.submit_weekly(s, class_id=class_id, day=day.date(), counts=counts, now=at or _now(),
                                                actor=by, note=note)
            out = {"id": row.id, "version": row.version, "late": row.late, "created": created,
                   **{k: getattr(row, k) for k in ("enrolled", "present", "absent", "dropouts")}}
    except people.ReportWorkError as exc:
        _fail(str(exc))
    _emit(out, json_out, lambda d: console.print(f"周查已报 submitted: 第 {d['version']} 版 {'逾期' if d['late'] else '按时'}"))


@weekly_app.command("sheet")
def weekly_sheet(day: datetime = typer.Argument(..., formats=["%Y-%m-%d"]),
                 school: Optional[str] = typer.Option(None, "--school", help="school code"),
                 xlsx: Optional[Path] = typer.Option(None, "--xlsx", help="write the 周查表 workbook here"),
                 at: Optional[datetime] = typer.Option(None, "--at"), json_out: bool = typer.Option(False, "--json")):
    """周查表 of a day: classes, rolled up to schools and townships."""
    from cli.common import print_table, school_scope
    from store.access.accounts import school_ids_in
    from store.db import transaction
    from store.reporting import people

    with transaction(_factory()) as s:
        _covered(s, day.date())
        ids = school_ids_in(s, school_scope(s, school)) if school else None
        sheet = people.weekly_sheet(s, day=day.date(), school_ids=ids, as_of=at or _now())
    if xlsx:
        xlsx.write_bytes(people.weekly_xlsx(sheet))
    _emit(sheet, json_out, lambda d: print_table(f"周查表 {d['day']}", ("乡镇", "学校", "班级数", "已报", "未报", "在册", "在校", "缺勤", "辍学"), [
        {"乡镇": r["township"], "学校": r["school"], "班级数": str(r["classes"]), "已报": str(r["submitted"]),
         "未报": str(r["missing"]), "在册": str(r["enrolled"]), "在校": str(r["present"]), "缺勤": str(r["absent"]),
         "辍学": str(r["dropouts"])} for r in d["schools"]]))


def _quarter(text: str) -> str:
    """"2026Q4" (any case); anything else is refused in one line."""
    import re

    q = text.strip().upper()
    if not re.fullmatch(r"(19|20)\d\dQ[1-4]", q):
        _fail(f"季度格式应为 2026Q4 (quarter expected as YYYYQn): {text!r}")
    return q


# -- 季查 results -----------------------------------------------------------------------------------------------
@spot_app.command("draw")
def spot_draw(quarter: str = typer.Argument(..., help="e.g. 2026Q4"), seed: Optional[int] = typer.Option(None, "--seed"),
              at: Optional[datetime] = typer.Option(None, "--at"), json_out: bool = typer.Option(False, "--json")):
    """Draw and seal the quarter's sample now (what the quarterly run does; a second draw returns the first)."""
    from store.db import transaction
    from store.reporting import people, reports as rp

    with transaction(_factory()) as s:
        fraction = people.policy_for(s, "county", _county(s)).reports.spot_check_sample
        check, created = rp.spot_check(s, quarter=quarter.upper(), seed=seed, fraction=fraction, as_of=at or _now(),
                                       actor="cli", county_code=_county(s))
        out = {"quarter": check.quarter, "seed": check.seed, "created": created, "sample": check.sample}
    _emit(out, json_out, lambda d: console.print(f"季查样本 {d['quarter']}: {d['sample']['classes']}"))


@spot_app.command("record")
def spot_record(quarter: str = typer.Argument(..., help="e.g. 2026Q4"), class_id: int = typer.Argument(...),
                enrolled: int = typer.Option(..., "--enrolled"), present: int = typer.Option(..., "--present"),
                absent: int = typer.Option(..., "--absent"), discrepancies: int = typer.Option(0, "--discrepancies"),
                findings: str = typer.Option("", "--findings"), inspector: str = typer.Option(..., "--inspector", help="签字"),
                role: str = typer.Option(..., "--role", help="township | county"),
                at: Optional[datetime] = typer.Option(None, "--at"), json_out: bool = typer.Option(False, "--json")):
    """Record and sign one sampled class's 季查 result; a discrepancy opens a reconciliation item."""
    from store.db import transaction
    from store.reporting import people

    try:
        with transaction(_factory()) as s:
            r, created = people.record_spot_result(
                s, quarter=quarter.upper(), class_id=class_id, now=at or _now(), actor=f"cli:{inspector}",
                counts={"enrolled": enrolled, "present": present, "absent": absent, "discrepancies": discrepancies},
                findings=findings, inspector=inspector, inspector_role=role)
            out = {"id": r.id, "status": r.status, "created": created, "differences": r.differences}
    except people.ReportWorkError as exc:
        _fail(str(exc))
    _emit(out, json_out, lambda d: console.print(f"季查结果 #{d['id']}: {d['status']}"))


@spot_app.command("list")
def spot_list(quarter: str = typer.Argument(...), json_out: bool = typer.Option(False, "--json")):
    """The sealed sample's classes with their recorded results."""
    from cli.common import print_table
    from store.db import transaction
    from store.reporting import people, reports as rp

    quarter = _quarter(quarter)
    with transaction(_factory()) as s:
        if rp.sealed_check(s, quarter) is None:
            _fail(f"{quarter} 尚未抽取季查样本，请先运行 baoxue spot-result draw {quarter} (no sealed draw for {quarter})")
        rows = people.spot_results(s, quarter=quarter)
    _emit(rows, json_out, lambda rows: print_table(f"季查结果 {quarter}", ("学校", "班级", "台账在籍", "结果"), [
        {"学校": r["school"], "班级": r["class"], "台账在籍": str(r["ledger_enrolled"]),
         "结果": "未检查" if not r["result"] else f"{r['result']['status']} 检查人 {r['result']['inspector']}"} for r in rows]))


@spot_app.command("resolve")
def spot_resolve(result_id: int = typer.Argument(...), explanation: str = typer.Option(..., "--explanation"),
                 by: str = typer.Option(..., "--by"), at: Optional[datetime] = typer.Option(None, "--at")):
    """Close a 季查 reconciliation item with the school's explanation."""
    from store.db import transaction
    from store.reporting import people

    try:
        with transaction(_factory()) as s:
            status = people.resolve_spot_result(s, result_id, by=by, at=at or _now(), explanation=explanation).status
    except (people.ReportWorkError, LookupError) as exc:
        _fail(str(exc))
    console.print(f"季查对账 #{result_id}: {status}")


def mount(app: typer.Typer) -> None:
    app.add_typer(submission_app, name="submission")
    app.add_typer(weekly_app, name="weekly")
    app.add_typer(spot_app, name="spot-result")
