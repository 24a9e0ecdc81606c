"""`baoxue risk …` (at-risk watch list) and `baoxue reconcile …` (submitted figures against the ledger).

Staff commands: names are shown, ID numbers never (the watch list has none).
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

risk_app = typer.Typer(help="重点关注学生 at-risk watch list (学困生, 贫困生, 留守儿童; 缺勤上升; 反弹)")
console = Console()
STATUS = {"missing": "未报送", "submitted": "待审核", "accepted": "已通过"}


def _now() -> datetime:
    from cli.common import now_local

    return now_local()


def _factory():
    from cli.common import factory

    return factory()


def _fail(message: str):
    from cli.common import fail_with as fail

    fail(message)


def _json(data) -> None:
    from cli.common import emit as _emit

    _emit(data, True, None)


# -- risk ----------------------------------------------------------------------------------------------
@risk_app.command("refresh")
def risk_refresh(as_of: Optional[datetime] = typer.Option(None, "--as-of", help="when (default now)"),
                 json_out: bool = typer.Option(False, "--json")):
    """Refresh the watch list now (the daily advance does this too; safe to repeat)."""
    from store.prevention import risk
    from store.db import transaction

    with transaction(_factory()) as s:
        out = risk.refresh_watch_list(s, as_of=as_of or _now(), actor="cli")
    if json_out:
        return _json(out)
    console.print(f"重点关注 on watch: {out['on_watch']}（新增 {out['added']}，变更 {out['changed']}，移出 {out['left']}，"
                  f"新任务 {out['duties']}）")


@risk_app.command("list")
def risk_list(school: Optional[str] = typer.Option(None, help="school code"),
              all_entries: bool = typer.Option(False, "--all", help="include entries that left the list"),
              json_out: bool = typer.Option(False, "--json")):
    """The watch list: pupil, rules that fired (with the numbers), helper, duties."""
    from store.prevention import risk
    from store.db import transaction
    from cli.common import school_scope

    with transaction(_factory()) as s:
        rows = risk.watch_list(s, scope=school_scope(s, school), open_only=not all_entries, limit=100_000)
    if json_out:
        return _json(rows)
    table = Table(title=f"重点关注学生 watch list（{len(rows)} 人）")
    for col in ("学籍号", "姓名", "学校", "班级", "规则 rules", "帮扶责任人", "自", "任务 duties"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["student_no"], r["pupil"], r["school"], r["class"],
                      "\n".join(f"{x['label']}：{x['why']}" for x in r["rules"]), r["helper"] or "（未指定）",
                      r["since"] + (f"–{r['until']}" if r["until"] else ""),
                      "\n".join(f"{d['label']} {d['due_on']} {d['status']}" for d in r["duties"]))
    console.print(table)


@risk_app.command("explain")
def risk_explain(pupil: str = typer.Argument(..., help="学籍号 or 身份证号"),
                 day: Optional[date] = typer.Option(None, formats=["%Y-%m-%d"], help="as of (default today)"),
                 json_out: bool = typer.Option(False, "--json")):
    """Every rule of the pupil's policy: fired or not, and the numbers it looked at."""
    from store.prevention import risk
    from store.db import transaction

    with transaction(_factory()) as s:
        p = risk.find_pupil(s, pupil)
        if p is None:
            _fail(f"学生 {pupil} 不存在 (pupil not found)")
        out = risk.explain_pupil(s, p, day=day or _now().date())
        out["pupil"] = p.name
    if json_out:
        return _json(out)
    console.print(f"{out['pupil']}（{out['student_no']}）策略 policy {out['policy']}，截至 {out['day']}")
    x = out["inputs"]
    console.print(f"  标记 flags: {'、'.join(x['flag_labels']) or '无'}；每周无故缺勤 weekly absences: "
                  f"{'→'.join(map(str, x['weekly_absences'])) or '无'}；反弹立案 relapses: {', '.join(x['relapse_opened']) or '无'}")
    table = Table()
    for col in ("规则 rule", "说明", "是否触发", "依据 why", "任务"):
        table.add_column(col)
    for r in out["rules"]:
        table.add_row(r["rule"], r["label"], "[red]是[/red]" if r["fired"] else "否", r["why"], ", ".join(r["duties"]))
    console.print(table)
    for ev in out["events"]:
        console.print(f"  {ev['at']} {ev['event']} ({ev['actor']}): {ev['reason']}")


@risk_app.command("done")
def risk_done(duty: int = typer.Argument(..., help="duty id (see `baoxue risk list --json`)"),
              by: str = typer.Option(..., "--by", help="who did it"), note: str = typer.Option("", help="说明"),
              at: Optional[datetime] = typer.Option(None, help="when (default now)")):
    """Record a preventive duty (学业辅导, 资助核查, 心理疏导, 家校联系) as done."""
    from store.prevention import risk
    from store.db import transaction

    try:
        with transaction(_factory()) as s:
            d = risk.complete_duty(s, duty, actor=by, at=at or _now(), note=note)
            status = d.status
    except LookupError as exc:
        _fail(str(exc))
    console.print(f"帮扶任务 duty #{duty}: {status}")


# -- reconciliation ------------------------------------------------------------------------------------
def reconcile(month: str = typer.Argument(..., help="YYYY-MM"),
              as_of: Optional[datetime] = typer.Option(None, "--as-of", help="ledger as of (default now)"),
              json_out: bool = typer.Option(False, "--json")):
    """对账: each school's submitted monthly figures against the ledger, every difference with its cases."""
    from store.reporting import reconcile as rc
    from store.db import transaction

    try:
        with transaction(_factory()) as s:
            rows = rc.reconcile_period(s, period=month, as_of=as_of or _now())
    except rc.ReconcileError as exc:
        _fail(str(exc))
    if json_out:
        return _json(rows)
    table = Table(title=f"上报数据与台账核对 reconciliation {month}")
    for col in ("学校", "状态", "项目", "上报", "台账", "台账案件", "说明"):
        table.add_column(col)
    for r in rows:
        status = STATUS[r["status"]] + (" [red]瞒报在办案件[/red]" if r["hides_open_cases"] else "")
        if not r["differences"]:
            table.add_row(r["school"], status, "一致" if r["status"] != "missing" else "—", "", "", "", r["explanation"] or "")
        for i, d in enumerate(r["differences"]):
            table.add_row(r["school"] if i == 0 else "", status if i == 0 else "", d["label"], str(d["submitted"]),
                          str(d["ledger"]), ", ".join(str(c["case_id"]) for c in d["cases"]),
                          (r["explanation"] or "") if i == 0 else "")
    console.print(table)


def submit_figures(school: str = typer.Argument(..., help="school code"), month: str = typer.Argument(..., help="YYYY-MM"),
                   dropouts: Optional[int] = typer.Option(None), out_of_school: Optional[int] = typer.Option(None),
                   opened: Optional[int] = typer.Option(None), returned: Optional[int] = typer.Option(None),
                   by: str = typer.Option("cli", help="who submits"),
                   at: Optional[datetime] = typer.Option(None, help="when (default now)")):
    """A school's own monthly figures (月报上报), to be reconciled with the ledger."""
    from store.reporting import reconcile as rc
    from store.db import transaction

    figures = {k: v for k, v in (("dropouts", dropouts), ("out_of_school", out_of_school), ("opened", opened),
                                 ("returned", returned)) if v is not None}
    try:
        with transaction(_factory()) as s:
            sub = rc.submit_figures(s, school_code=school, period=month, figures=figures, by=by, at=at or _now())
            sub_id, version = sub.id, sub.version
    except rc.ReconcileError as exc:
        _fail(str(exc))
    console.print(f"已上报 submitted: #{sub_id} (第 {version} 版)")


def accept_figures(submission: int = typer.Argument(..., help="submission id (see `baoxue reconcile MONTH`)"),
                   explanation: str = typer.Option("", "--explanation", help="required when open cases are hidden"),
                   by: str = typer.Option(..., "--by", help="who accepts"),
                   at: Optional[datetime] = typer.Option(None, help="when (default now)")):
    """审核通过 a submission; refused without --explanation when it hides open cases."""
    from store.reporting import reconcile as rc
    from store.db import transaction

    try:
        with transaction(_factory()) as s:
            sub = rc.accept_submission(s, submission, by=by, at=at or _now(), explanation=explanation)
            status = sub.status
    except (rc.ReconcileError, LookupError) as exc:
        _fail(str(exc))
    console.print(f"审核通过 accepted: #{submission} ({status})")


def mount(app: typer.Typer) -> None:
    """Add `risk …`, `reconcile`, `submit-figures` and `accept-figures` to the `baoxue` app."""
    app.add_typer(risk_app, name="risk")
    app.command("reconcile")(reconcile)
    app.command("submit-figures")(submit_figures)
    app.command("accept-figures")(accept_figures)
