"""`baoxue census …` (排查) and `baoxue handoff …` (送达回证): mounted into the main CLI."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

census_app = typer.Typer(help="排查 out-of-school census: import a register, report, act on 失学 cases", no_args_is_help=True)
handoff_app = typer.Typer(help="送达回证 hand-off receipts of papers sent to outside bodies", no_args_is_help=True)


def _cli():
    from cli import common as cli  # the console, factory, clock and --json helper

    return cli


@census_app.command("import")
def census_import(
    file: Path = typer.Argument(..., exists=True, readable=True),
    source: str = typer.Option("", help="来源 e.g. 村委会入户排查 / 户籍 / 公安人口库"),
    year: Optional[int] = typer.Option(None, help="census year (default: the year of --at)"),
    by: str = typer.Option("cli", help="导入人"),
    at: Optional[datetime] = typer.Option(None, help="when (default now)"),
    via_flow: bool = typer.Option(False, "--flow", help="run the census step as a Prefect flow run (one per import)"),
    json_out: bool = typer.Option(False, "--json"),
):
    """Import a register (CSV/XLSX: 姓名, 身份证号, 出生日期, 村（社区）, 监护人[, 缓免学, 缓免原因]), match it
    against enrolment, open a 失学 case for every school-age child enrolled nowhere."""
    from store.prevention.census import import_census
    from store.db import transaction
    from store.ingest.tabular import TableError

    cli = _cli()
    now = at or cli.now_local()
    factory = cli.factory()
    try:
        with transaction(factory) as s:
            r = import_census(s, file.read_bytes(), file.name, actor=by, now=now, source=source, year=year)
    except TableError as exc:
        cli.fail_with(str(exc))
    if via_flow:
        from flows.census import census_import as flow
        from tasks.runtime import using

        with using(factory):
            step = flow(import_id=r.import_id, as_of=now)
        step = {"opened": step["opened"], "closed": step["closed"], "documents": step["documents"], "handoffs": step["handoffs"]}
    else:
        from documents.census import census_step

        with transaction(factory) as s:
            done = census_step(s, r.import_id, actor=by, now=now)
        step = {k: len(v) for k, v in done.items() if k != "import_id"}
    data = {"import_id": r.import_id, "duplicate": r.duplicate, "summary": r.summary, **step}

    def show(d):
        s = d["summary"]
        cli.console.print(f"排查名单 import #{d['import_id']}" + ("（同一文件已导入，未作改动 duplicate）" if d["duplicate"] else "")
                          + f": {s.get('rows', 0)} 行, 在校 {s.get('enrolled', 0)}, 失学 {s.get('not_enrolled', 0)}, "
                          f"缓/免 {s.get('exempted', 0)}, 非适龄 {s.get('out_of_age', 0)}, 待核实 {s.get('ambiguous', 0)}, "
                          f"无效 {s.get('invalid', 0)}")
        cli.console.print(f"新开失学案件 opened {d['opened']}, 已入学销案 closed {d['closed']}, 入学通知书 {d['documents']}, "
                          f"送达回证 hand-offs {d['handoffs']}")
    cli.emit(data, json_out, show)


@census_app.command("report")
def census_report(
    import_id: Optional[int] = typer.Option(None, "--import", help="an import id (default: the latest)"),
    json_out: bool = typer.Option(False, "--json"),
):
    """The latest import's matching (rows needing attention) and the 失学 cases."""
    from store.prevention.census import OUTCOMES, report
    from store.db import transaction

    cli = _cli()
    with transaction(cli.factory()) as s:
        data = report(s, import_id=import_id, as_of=cli.now_local())

    def show(d):
        if d["import"]:
            i = d["import"]
            cli.console.print(f"排查名单 #{i['id']} {i['filename']}（{i['imported_at']} {i['imported_by']}，"
                              f"年龄截至 {i['reference_date']}）")
            cli.console.print("  " + "，".join(f"{OUTCOMES[k]} {v}" for k, v in d["counts"].items() if k in OUTCOMES))
        rows = Table(title="需处理的行 rows needing attention")
        for col in ("行 row", "姓名", "身份证号", "村", "结果", "问题"):
            rows.add_column(col)
        for a in d["attention"]:
            rows.add_row(str(a["row_no"]), a["name"], a["id_number"], a["village"], a["outcome_label"],
                         "；".join(f"{p['label']}：{p['detail']}" for p in a["problems"]))
        cli.console.print(rows)
        cases = Table(title=f"失学案件 census cases（在办 {d['open_cases']}）")
        for col in ("案件", "姓名", "出生", "村", "负责学校", "状态", "待办"):
            cases.add_column(col)
        for c in d["cases"]:
            todo = "、".join(x["label"] + ("（逾期）" if x["overdue"] else "") for x in c["duties"] if x["status"] == "open")
            cases.add_row(str(c["id"]), c["name"], c["birth_date"], c["village"], c["school"], c["state_label"], todo)
        cli.console.print(cases)
    cli.emit(data, json_out, show)


@census_app.command("act")
def census_act(
    case_id: int, event: str = typer.Argument(..., help="record_persuasion | exempt | dismiss"),
    reason: str = typer.Option(..., help="why / what was done"), action: Optional[str] = typer.Option(
        None, help="the duty a persuasion completes (village_persuasion, school_persuasion)"),
    by: str = typer.Option("cli"), at: Optional[datetime] = typer.Option(None),
):
    """Record on a 失学 case: a persuasion visit, an approved deferral/exemption, or a mistaken case."""
    from machines.census import CensusForbidden
    from store.prevention.census import CensusCaseNotFound, act
    from store.db import transaction

    cli = _cli()
    now = cli.now_local()
    try:
        with transaction(cli.factory()) as s:
            state = act(s, case_id, event, actor=by, reason=reason, now=max(now, at or now), at=at, action=action)
    except (CensusForbidden, CensusCaseNotFound) as exc:
        cli.fail_with(str(exc))
    cli.console.print(f"失学案件 {case_id}: {state.label}")


@handoff_app.command("list")
def handoff_list(
    all_: bool = typer.Option(False, "--all", help="acknowledged ones too"),
    stuck: bool = typer.Option(False, "--stuck", help="only those past the policy's time"),
    as_of: Optional[datetime] = typer.Option(None, "--as-of"), json_out: bool = typer.Option(False, "--json"),
):
    """Papers handed to outside bodies and not yet acknowledged (送达回证 outstanding)."""
    from store.db import transaction
    from store.duties.handoffs import handoff_rows

    cli = _cli()
    with transaction(cli.factory()) as s:
        data = handoff_rows(s, as_of=as_of or cli.now_local(), pending_only=not all_, stuck_only=stuck)

    def show(rows):
        t = Table(title="送达回证 hand-offs")
        for col in ("编号", "文书", "文号", "儿童/学生", "接收单位", "送出", "应签收", "签收"):
            t.add_column(col)
        for r in rows:
            got = f"{r['received_at']} {r['received_by']}" if r["received_at"] else ("[red]逾期未签收[/red]" if r["stuck"] else "待签收")
            t.add_row(str(r["id"]), r["title"], r["doc_number"], r["child"], r["recipient_name"], r["sent_at"][:16],
                      r["due_at"][:16], got)
        cli.console.print(t)
    cli.emit(data, json_out, show)


@handoff_app.command("ack")
def handoff_ack(
    handoff_id: int, by: str = typer.Option(..., "--by", help="签收人 who received it at the body"),
    at: Optional[datetime] = typer.Option(None, help="when it was received (default now)"),
    note: Optional[str] = typer.Option(None), actor: str = typer.Option("cli", help="who records the receipt"),
):
    """Record the receipt (签收) of a hand-off: who at the body received the paper and when."""
    from store.db import transaction
    from store.duties.handoffs import HandoffError, acknowledge

    cli = _cli()
    now = cli.now_local()
    try:
        with transaction(cli.factory()) as s:
            h = acknowledge(s, handoff_id, received_by=by, received_at=at or now, actor=actor, now=max(now, at or now),
                            note=note)
            text = f"送达回证 {h.id}: {h.recipient_name} {h.received_by} 于 {h.received_at:%Y-%m-%d %H:%M} 签收"
    except HandoffError as exc:
        cli.fail_with(str(exc))
    cli.console.print(text)


@handoff_app.command("sync")
def handoff_sync(at: Optional[datetime] = typer.Option(None)):
    """Create the hand-offs of issued papers that have none yet (the sweep does this too)."""
    from store.db import transaction
    from store.duties.handoffs import sync_handoffs

    cli = _cli()
    with transaction(cli.factory()) as s:
        n = len(sync_handoffs(s, now=at or cli.now_local()))
    cli.console.print(f"新增送达回证 hand-offs {n}")
