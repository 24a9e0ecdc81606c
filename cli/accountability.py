"""`baoxue accountability …`: the evidence of every kind of duty, 约谈 records, the 一票否决 list, the
township ranking, 包保 chains and the yearly 责任书 (issue 17 items 4 and 7). Names are staff names; pupils
appear only in the 责任书 files."""
from __future__ import annotations

from datetime import date, datetime
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="责任追究: 证据、约谈、一票否决、乡镇排名、包保责任链、责任书", no_args_is_help=True)
talk_app = typer.Typer(help="约谈记录 talks and their follow-up", no_args_is_help=True)
chain_app = typer.Typer(help="包保责任链 each pupil's chain", no_args_is_help=True)
pledge_app = typer.Typer(help="控辍保学责任书 the yearly pledge", no_args_is_help=True)
app.add_typer(talk_app, name="talk")
app.add_typer(chain_app, name="chain")
app.add_typer(pledge_app, name="pledge")
console = Console()


def _now() -> datetime:
    from cli.common import now_local

    return now_local()


def _factory():
    from cli.common import factory

    return factory()


def _emit(data, as_json: bool, render) -> None:
    from cli.common import emit

    emit(data, as_json, render)


def _fail(message: str):
    from cli.common import fail_with

    fail_with(message)


@app.command("evidence")
def evidence_cmd(start: Optional[str] = typer.Option(None, help="2026-11-01 (default: the month's first day)"),
                 end: Optional[str] = typer.Option(None, help="2026-11-30 (default: today)"),
                 as_of: Optional[datetime] = typer.Option(None, "--as-of"), json_out: bool = typer.Option(False, "--json")):
    """Every duty of every kind not done by its deadline, and the reconciliation differences (the sheet's rows)."""
    from store.db import transaction
    from store.reporting.accountability import evidence
    from store.access.scope import EVERYTHING

    now = as_of or _now()
    try:
        first = date.fromisoformat(start) if start else now.date().replace(day=1)
        last = date.fromisoformat(end) if end else now.date()
    except ValueError:
        return _fail("日期格式应为 2026-11-01 (dates look like 2026-11-01)")
    with transaction(_factory()) as s:
        data = evidence(s, EVERYTHING, first, last, now, masked=True)

    def show(d):
        t = Table("类别", "逾期或超时", "其中未办")
        for k in d["kinds"]:
            t.add_row(k["label"], str(k["count"]), str(k["open"]))
        console.print(t)
        console.print(f"上报与台账不符 reconciliation differences: {len(d['reconciliation'])}")
    _emit({"kinds": data["kinds"], "rows": len(data["rows"]), "owners": data["owners"][:50],
           "reconciliation": len(data["reconciliation"])}, json_out, show)


@talk_app.command("record")
def talk_record(interviewee: str = typer.Option(...), subject: str = typer.Option(...),
                item: list[str] = typer.Option(..., "--item", help="整改事项 (repeat)"),
                deadline: str = typer.Option(..., help="2026-12-15"), held_at: Optional[datetime] = typer.Option(None),
                level: str = typer.Option("county", help="township | county"), interviewer: str = typer.Option("县教育局"),
                school: Optional[str] = typer.Option(None, help="school code"), role: Optional[str] = typer.Option(None),
                evidence: list[str] = typer.Option([], "--evidence", help="duty:12 … (repeat)"),
                key: Optional[str] = typer.Option(None), json_out: bool = typer.Option(False, "--json")):
    """Record a 约谈 and its follow-up duty (due on the deadline)."""
    from pydantic import ValidationError
    from store.accountability import talks as tk
    from store.db import transaction

    now = _now()
    try:
        form = tk.TalkForm(interviewee=interviewee, subject=subject, items=item, deadline=date.fromisoformat(deadline),
                           held_at=held_at or now, school_code=school, interviewee_role=role, evidence=evidence, key=key)
    except (ValidationError, ValueError) as exc:
        return _fail(f"约谈记录填写有误 (invalid talk): {str(exc).splitlines()[0]}")
    try:
        with transaction(_factory()) as s:
            talk, created = tk.record_talk(s, form, level=level, interviewer=interviewer, interviewer_id=None,
                                           actor="cli", now=now)
            out = {"id": talk.id, "created": created, "deadline": str(talk.deadline)}
    except tk.TalkError as exc:
        return _fail(str(exc))
    _emit(out, json_out, lambda d: console.print(f"约谈 #{d['id']} {'已记录' if d['created'] else '已存在'}，整改期限 {d['deadline']}"))


@talk_app.command("outcome")
def talk_outcome(talk_id: int, outcome: str = typer.Option(...), rectified: bool = typer.Option(True, "--rectified/--not-rectified"),
                 json_out: bool = typer.Option(False, "--json")):
    """Record a talk's outcome (completes its follow-up duty)."""
    from store.accountability import talks as tk
    from store.db import transaction

    try:
        with transaction(_factory()) as s:
            t = tk.record_outcome(s, talk_id, rectified=rectified, outcome=outcome, actor="cli", now=_now())
            out = {"id": t.id, "status": t.status}
    except tk.TalkError as exc:
        return _fail(str(exc))
    _emit(out, json_out, lambda d: console.print(f"约谈 #{d['id']}: {d['status']}"))


@talk_app.command("list")
def talk_list(json_out: bool = typer.Option(False, "--json")):
    from store.accountability import talks as tk
    from store.db import transaction

    with transaction(_factory()) as s:
        rows = tk.talks(s)

    def show(rows):
        t = Table("#", "约谈时间", "被约谈人", "事由", "期限", "状态")
        for r in rows:
            t.add_row(str(r["id"]), f"{r['held_at']:%Y-%m-%d %H:%M}", r["interviewee"], r["subject"], str(r["deadline"]),
                      r["status_label"])
        console.print(t)
    _emit(rows, json_out, show)


@app.command("veto")
def veto_cmd(year: Optional[int] = typer.Option(None), json_out: bool = typer.Option(False, "--json")):
    """The year's 评优一票否决 list (schools and classes over the standard rate, schools that hid dropouts)."""
    from store.db import transaction
    from store.reporting.accountability import veto_list

    now = _now()
    with transaction(_factory()) as s:
        data = veto_list(s, year or now.year, now)

    def show(d):
        t = Table("类别", "学校/班级", "辍学率", "标准", "原因")
        for r in d["rows"]:
            t.add_row(r["level_label"], r["name"], f"{r['dropout_rate']:.2%}", f"{r['standard_rate']:.2%}",
                      "；".join(r["reason_labels"]))
        console.print(t)
    _emit(data, json_out, show)


@app.command("ranking")
def ranking_cmd(month: Optional[str] = typer.Option(None, help="2026-11"), json_out: bool = typer.Option(False, "--json")):
    """The township ranking by dropout rate and timeliness (policies with accountability.ranking)."""
    from store.db import transaction
    from store.reporting.accountability import township_ranking
    from store.reporting.reports import month_period

    now = _now()
    try:
        y, m = (int(x) for x in (month or f"{now:%Y-%m}").split("-"))
        period = month_period(y, m)
    except ValueError:
        return _fail("月份格式应为 2026-11 (month looks like 2026-11)")
    with transaction(_factory()) as s:
        data = township_ranking(s, period, now)

    def show(d):
        t = Table("名次", "乡镇", "辍学率", "逾期比例", "说明")
        for r in d["rows"]:
            t.add_row(str(r["rank"]), r["township"], f"{r['dropout_rate']:.2%}", f"{r['late_share']:.1%}",
                      "约谈" if r["talk_due"] else ("后位" if r["bottom"] else ""))
        console.print(t if d["asked"] else "策略未要求排名 (no policy asks for a ranking)")
    _emit(data, json_out, show)


@chain_app.command("fill")
def chain_fill(school: Optional[str] = typer.Option(None, help="school code (default: every school)"),
               json_out: bool = typer.Option(False, "--json")):
    """Give every pupil without a chain member for a role the staff member who holds that role."""
    from sqlalchemy import select
    from store.accountability.chain import fill_defaults
    from store.db import transaction
    from store.models import School

    with transaction(_factory()) as s:
        ids = None
        if school:
            sid = s.scalar(select(School.id).where(School.code == school))
            if sid is None:
                return _fail(f"学校代码 {school} 不存在")
            ids = [sid]
        n = fill_defaults(s, school_ids=ids, actor="cli", now=_now())
    _emit({"added": n}, json_out, lambda d: console.print(f"包保责任人 added: {d['added']}"))


@chain_app.command("set")
def chain_set(student_no: str, role: str, person: str, json_out: bool = typer.Option(False, "--json")):
    """Put PERSON into the pupil's chain for ROLE (the pupil's open duties of that role go to them)."""
    from sqlalchemy import select
    from store.accountability.chain import ChainError, chain_of, set_member
    from store.db import transaction
    from store.models import Pupil

    try:
        with transaction(_factory()) as s:
            pupil = s.scalar(select(Pupil).where(Pupil.student_no == student_no))
            if pupil is None:
                return _fail(f"学籍号 {student_no} 不存在")
            set_member(s, pupil=pupil, role=role, person_name=person, source="cli", actor="cli", now=_now())
            out = chain_of(s, pupil.id)
    except ChainError as exc:
        return _fail(str(exc))
    _emit(out, json_out, lambda rows: [console.print(f"{r['role_label']}: {r['person'] or '（未指定）'}") for r in rows])


@pledge_app.command("issue")
def pledge_issue(year: Optional[int] = typer.Option(None, help="school year (2026 = 2026–2027)"),
                 render: bool = typer.Option(True, "--render/--no-render", help="render the PDFs too"),
                 json_out: bool = typer.Option(False, "--json")):
    """Issue the year's 责任书 to everyone of a pledge role in a chain (and their signature duty); render them."""
    from store.accountability import pledges as pl
    from store.db import transaction

    now = _now()
    year = year or pl.school_year(now.date())
    with transaction(_factory()) as s:
        issued = pl.issue_year(s, year=year, now=now)
    rendered = 0
    if render:
        from documents.pledges import render_year

        with transaction(_factory()) as s:
            rendered = render_year(s, year, actor="cli", now=now)
    _emit({"year": year, "issued": len(issued), "rendered": rendered}, json_out,
          lambda d: console.print(f"{d['year']}学年责任书 issued {d['issued']}, rendered {d['rendered']}"))


@pledge_app.command("sign")
def pledge_sign(pledge_id: int, json_out: bool = typer.Option(False, "--json")):
    """Record that the 责任书 came back signed (completes its signature duty)."""
    from store.accountability import pledges as pl
    from store.db import transaction

    try:
        with transaction(_factory()) as s:
            p = pl.record_signed(s, pledge_id, actor="cli", at=_now())
            out = {"id": p.id, "signed_at": p.signed_at}
    except pl.PledgeError as exc:
        return _fail(str(exc))
    _emit(out, json_out, lambda d: console.print(f"责任书 #{d['id']} signed {d['signed_at']}"))


@pledge_app.command("list")
def pledge_list(year: Optional[int] = typer.Option(None), json_out: bool = typer.Option(False, "--json")):
    from store.accountability import pledges as pl
    from store.db import transaction

    now = _now()
    with transaction(_factory()) as s:
        rows = pl.pledges(s, year=year or pl.school_year(now.date()))

    def show(rows):
        t = Table("#", "责任人", "学校", "学生", "状态")
        for r in rows:
            t.add_row(str(r["id"]), r["person"], r["school"] or "", str(r["pupils"]), r["status_label"])
        console.print(t)
    _emit(rows, json_out, show)
