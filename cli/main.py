"""`baoxue`: the command line for schools, administrators and operators.

Read commands take ``--json``; long work shows a rich progress bar. Times are Asia/Shanghai wall
clock; ``--at`` / ``--as-of`` replace "now" (the only clock the services see).
"""
from __future__ import annotations

import json
import os
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from cli.common import (
    console, emit as _emit, err, factory as _factory, fail_with as _fail, now_local, print_table, school_scope, warn_calendars,
)
from cli.errors import BaoxueGroup, fail
from cli.fast_exit import BaoxueTyper
from machines.states import DropoutReason

app = BaoxueTyper(help="保学 Baoxue — 控辍保学 case engine", no_args_is_help=True, pretty_exceptions_enable=False,
                  cls=BaoxueGroup)  # one error path: cli/errors.py
roster_app = typer.Typer(help="学籍花名册 roster")
attendance_app = typer.Typer(help="晨检 attendance")
policy_app = typer.Typer(help="升级策略 jurisdiction policies")
user_app = typer.Typer(help="账号 accounts")
app.add_typer(roster_app, name="roster")
app.add_typer(attendance_app, name="attendance")
app.add_typer(policy_app, name="policy")
app.add_typer(user_app, name="user")



@app.callback()
def main(db: Optional[str] = typer.Option(None, "--db", help="database URL or SQLite file (default out/baoxue.db)"),
         debug: bool = typer.Option(False, "--debug", envvar="BAOXUE_DEBUG",
                                    help="show the Python traceback of an error (出错时显示完整调用栈)")):
    if db:
        os.environ["BAOXUE_DATABASE_URL"] = db if "://" in db else f"sqlite:///{Path(db).resolve()}"
        from store.db import settings
        settings.cache_clear()


@app.command()
def init(at: Optional[datetime] = typer.Option(None, help="when (default now)")):
    """Create or migrate the database, load policies, materialise school calendars."""
    from store.bootstrap import init_store
    from store.db import make_engine, settings
    engine = make_engine()
    days = init_store(engine, now=at or now_local())  # a bad policy file: one line (cli/errors.py)
    console.print(f"数据库就绪 database ready: {settings().database_url}")
    for key, n in days.items():
        console.print(f"  校历 calendar {key}: {n} school days")
    warn_calendars(engine, at or now_local())
    from documents import check_fonts
    for warning in check_fonts():  # e.g. libharfbuzz-subset0 missing: PDFs ~40× slower
        err.print(f"[yellow]注意 warning:[/yellow] {warning}")


@app.command()
def generate(
    seed: int = typer.Option(7), townships: int = typer.Option(2), schools: int = typer.Option(3, help="per township"),
    pupils_per_class: int = typer.Option(55), policy: str = typer.Option("default"),
):
    """Generate a synthetic county (schools, classes, staff, pupils, guardians) for trials."""
    from store.db import transaction
    from demo.synthetic import Size, generate_county
    with transaction(_factory()) as s:
        counts = generate_county(s, seed=seed, size=Size(townships=townships, schools_per_township=schools,
                                                         pupils_per_class=pupils_per_class), policy_name=policy)
    console.print("生成 generated: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


@roster_app.command("import")
def roster_import(file: Path = typer.Argument(..., exists=True, readable=True), json_out: bool = typer.Option(False, "--json")):
    """Import pupils and guardians from CSV (UTF-8/GBK) or XLSX; bad rows are listed, good rows kept."""
    from store.db import transaction
    from store.ingest.roster import import_roster
    with transaction(_factory()) as s:
        r = import_roster(s, file.read_bytes(), file.name, now=now_local())
    data = {"added": r.added, "updated": r.updated, "errors": [{"row": n, "reason": m} for n, m in r.errors]}

    def show(d):
        console.print(f"新增 added {d['added']}, 更新 updated {d['updated']}, 错误 errors {len(d['errors'])}")
        for e in d["errors"]:
            console.print(f"  第 {e['row']} 行 row {e['row']}: {e['reason']}")
    _emit(data, json_out, show)
    if r.errors:
        raise typer.Exit(2)


def _intake(school: str, day: date, marks, *, source: str, by: str, at: datetime, complete: bool, json_out: bool):
    from store.cases.context import CaseContext
    from store.db import transaction
    from store.cases.intake import record_morning_check
    with transaction(_factory()) as s:
        r = record_morning_check(s, CaseContext(s), school_code=school, day=day, marks=marks, source=source,
                                 submitted_by=by, now=at, complete=complete)
    return _show_intake(r, json_out)


def _show_intake(r, json_out: bool):
    data = {**r.summary(), "opened_case_ids": r.opened, "returned_case_ids": r.returned,
            "row_errors": [{"row": e.row, "student_no": e.student_no, "reason": e.message} for e in r.errors]}

    def show(d):
        console.print(f"{d['school']} {d['day']}: 新开案件 opened {d['opened']}, 复学 returned {d['returned']}, "
                      f"排除 excused {d['excused']}, 持续缺勤 continuing {d['continuing']}"
                      + ("（重复提交，未作改动 duplicate, nothing changed）" if d["duplicate"] else ""))
        for e in d["row_errors"]:
            console.print(f"  第 {e['row']} 行 {e['student_no']}: {e['reason']}")
    _emit(data, json_out, show)
    return r


@attendance_app.command("import")
def attendance_import(
    file: Path = typer.Argument(..., exists=True, readable=True),
    school: Optional[str] = typer.Option(None, help="学校代码 school code; without it the file's 学校代码 column "
                                         "names each row's school (a county file, through the morning_check flow)"),
    day: datetime = typer.Option(..., "--date", formats=["%Y-%m-%d"], help="晨检日期"),
    by: str = typer.Option("cli", help="提交人"),
    at: Optional[datetime] = typer.Option(None), json_out: bool = typer.Option(False, "--json"),
    confirm: bool = typer.Option(False, "--confirm", help="确认覆盖当日已上报记录、使案件结案 (apply a check that "
                                 "overwrites the day's marks or closes cases)"),
):
    """The morning check from a CSV/XLSX file (学籍号, 出勤状态[, 原因][, 学校代码]): opens, extends and closes cases.

    The rule of every entry (store.ingest.attendance_files.vet_check): a file with a bad row is refused whole,
    every bad row counted, the first 200 listed (exit 2); one that overwrites the day's marks or closes cases is
    previewed and applied only with --confirm (exit 2 without it, nothing applied). The file streams, with no
    row count: its size is the limit (BAOXUE_UPLOAD_MAX_MB). Without --school, a county file (学校代码 column)
    is one run of the morning_check flow (cli/attendance_county.py)."""
    from store.cases.context import CaseContext
    from store.cases.intake import record_morning_check
    from store.db import transaction
    from store.ingest.attendance_files import BadRows, NeedsConfirmation, parse_attendance, vet_check
    data = file.read_bytes()
    parsed = parse_attendance(data, filename=file.name)
    when = at or now_local()
    if school is None:
        if not parsed.county:
            _fail("请用 --school 指定学校，或在文件中加「学校代码」列 (give --school, or a 学校代码 column)", 2)
        from cli.attendance_county import import_county_file
        result = import_county_file(data, file.name, parsed, day=day.date(), by=by, when=when, confirm=confirm,
                                    json_out=json_out)
        if result["errors"] or result["rejected"]:
            raise typer.Exit(2)
        return
    marks, row_errors, more_errors = parsed.marks, parsed.errors, parsed.more_errors
    del parsed, data
    with transaction(_factory()) as s:
        try:
            vet_check(s, school_code=school, day=day.date(), marks=marks, complete=True, errors=row_errors,
                      more_errors=more_errors, confirm=confirm)
        except BadRows as exc:
            for e in [] if json_out else exc.review.errors:
                err.print(f"第 {e.row} 行 row {e.row} {e.student_no}: {e.message}")
            _emit_refusal(exc, json_out)
        except NeedsConfirmation as exc:
            if not json_out:
                for cid in exc.review.returned:
                    err.print(f"  案件 #{cid} 将按“晨检到校，复学”结案 (case would close as returned)")
                for cid in exc.review.excused:
                    err.print(f"  案件 #{cid} 将按“补假”排除 (case would be excused)")
                err.print("确认无误后加 --confirm 重新执行 (run again with --confirm to apply)")
            _emit_refusal(exc, json_out)
        r = record_morning_check(s, CaseContext(s), school_code=school, day=day.date(), marks=marks, source="upload",
                                 submitted_by=by, now=when, complete=True)
    _show_intake(r, json_out)
    if r.errors:
        raise typer.Exit(2)


def _emit_refusal(exc, json_out: bool):
    from cli.attendance_county import emit_refusal

    emit_refusal(exc, json_out)


@app.command()
def absent(
    pupil: str = typer.Argument(..., help="学籍号 student number"),
    day: datetime = typer.Option(..., "--date", formats=["%Y-%m-%d"]),
    reason: str = typer.Option("unknown", help="辍学原因分类 family|study|poverty|…"),
    by: str = typer.Option("cli"), at: Optional[datetime] = typer.Option(None), json_out: bool = typer.Option(False, "--json"),
):
    """Report one pupil missing at the morning check (opens a case or extends the streak)."""
    from sqlalchemy import select
    from store.db import transaction
    from store.cases.intake import MarkIn
    from store.models import Pupil, School
    with transaction(_factory()) as s:
        code = s.scalar(select(School.code).join(Pupil, Pupil.school_id == School.id).where(Pupil.student_no == pupil))
    if code is None:
        _fail(f"学籍号 {pupil} 不存在 (unknown pupil)")
    _intake(code, day.date(), [MarkIn(pupil, "unexcused", reason)], source="cli", by=by, at=at or now_local(),
            complete=False, json_out=json_out)


@app.command()
def act(
    case_id: int = typer.Argument(...), action: str = typer.Argument(..., help="record_phone_call | record_home_visit | "
        "record_collective_visit | serve_township_notice | serve_legal_notice | assign_helpers | record_reason | "
        "mark_returned | excuse | escalate_outside"
        " | referred cases: record_follow_up | record_police_search | record_guardian_persuasion | record_employer_persuasion"
        " | record_judicial_progress"),
    note: str = typer.Option("", help="说明"), by: str = typer.Option("cli", help="操作人 (staff id or name)"),
    reason: Optional[str] = typer.Option(None, help="excuse/escalate_outside reason; record_reason: the dropout reason "
                                                    "class (" + " | ".join(r.value for r in DropoutReason) + ")"),
    helper: list[str] = typer.Option([], help="三帮一 helper as 姓名:职务 (role id or its label, e.g. 张老师:班主任; repeat)"),
    at: Optional[datetime] = typer.Option(None), key: Optional[str] = typer.Option(None, help="idempotency key"),
):
    """Record what staff did on a case; refuses actions the case's state does not allow."""
    from machines.case_machine import ForbiddenEvent
    from store.cases.actions import CaseNotFound, PayloadInvalid, act as act_on
    from store.cases.context import CaseContext
    from store.db import transaction
    when = at or now_local()
    facts = {"reason": reason} if reason and action != "record_reason" else {}
    payload = None
    if helper:
        payload = {"helpers": [dict(zip(("name", "role"), (part.strip() for part in h.replace("：", ":").split(":", 1))))
                               for h in helper]}
    if action == "record_reason":  # 查明辍学原因: the reason class is the action's detail, the note its basis
        payload = {"reason": reason or "", **({"basis": note} if note else {})}
    try:
        with transaction(_factory()) as s:
            applied = act_on(s, CaseContext(s), case_id, action, actor=by, at=when, now=when, note=note,
                             payload=payload, idempotency_key=key, **facts)
    except PayloadInvalid as exc:  # the details do not fit: e.g. 三帮一 with fewer helpers than the policy wants
        _fail(str(exc), 2)
    except (ForbiddenEvent, CaseNotFound) as exc:
        _fail(str(exc))
    ev = applied.event
    from machines.vocabulary import event_label, state_label
    console.print(f"案件 case {case_id}: {event_label(ev.event, ev.to_state)}，"
                  f"{state_label(ev.from_state) if ev.from_state else ''} → {state_label(ev.to_state)} (seq {ev.seq})"
                  + (" — 重复提交 duplicate, nothing changed" if applied.duplicate else ""))


@app.command("case")
def show_case(case_id: int, json_out: bool = typer.Option(False, "--json")):
    """One case: state, history, duties, helpers."""
    from store.db import transaction
    from machines.vocabulary import event_label, state_label
    from store.reporting.queries import case_detail
    with transaction(_factory()) as s:
        data = case_detail(s, case_id)
    if data is None:
        _fail(f"case {case_id} not found (案件不存在)")

    def show(d):
        console.print(f"[bold]案件 {d['id']}[/bold] {d['pupil']} {d['school']} {d['class']} — "
                      f"{d['state_label']}, 策略 {d['policy']}, 开始 {d['opened_on']}")
        t = Table("seq", "时间 at", "事件 event", "from → to", "操作人 actor", "说明 reason")
        for e in d["events"]:
            t.add_row(str(e["seq"]), e["at"], event_label(e["event"], e["to"]),
                      f"{state_label(e['from']) if e['from'] else ''} → {state_label(e['to'])}", e["actor"], e["reason"])
        console.print(t)
        t = Table("职责 duty", "角色 role", "责任人 owner", "期限 due", "状态 status")
        for u in d["duties"]:
            t.add_row(event_label(u["action"]), u["role"], u["owner"] or "—", u["due_at"],
                      f"[red]{u['status']}[/red]" if u["status"] == "overdue" else u["status"])
        console.print(t)
    _emit(data, json_out, show)


@app.command("cases")
def list_cases_cmd(
    school: Optional[str] = typer.Option(None), state: Optional[str] = typer.Option(None),
    stuck: bool = typer.Option(False, help="only cases with an overdue duty"), at: Optional[datetime] = typer.Option(None),
    limit: int = typer.Option(500), json_out: bool = typer.Option(False, "--json"),
):
    """Cases by school and state; --stuck lists those with a duty past its deadline."""
    from store.db import transaction
    from store.reporting.queries import list_cases
    with transaction(_factory()) as s:
        rows = list_cases(s, school_code=school, state=state, stuck_at=(at or now_local()) if stuck else None, limit=limit)
        others = stuck_duties_cli(s, at or now_local(), school, limit) if stuck and not json_out else []

    def show(rows):
        t = Table("案件", "学生", "学校", "班级", "状态", "开始")
        for r in rows:
            t.add_row(str(r["id"]), r["pupil"], r["school"], r["class"], r["state_label"], r["opened_on"])
        console.print(t)
        console.print(f"{len(rows)} 件")
        if stuck and others:
            o = Table("类别", "编号", "学生", "学校", "逾期事项", "责任人", "截止")
            for d in others:
                o.add_row(d["kind_label"], str(d["ref_id"]), d["pupil"], d["school"], d["action_label"], d["owner"] or "（未指定）",
                          d["due_at"].isoformat(sep=" ", timespec="minutes"))
            console.print(o)
            console.print(f"另有 {len(others)} 项失学排查、防辍预警、重点关注事项逾期未办")
    _emit(rows, json_out, show)


def stuck_duties_cli(s, as_of: datetime, school: Optional[str], limit: int) -> list[dict]:
    """For ``cases --stuck``: the census, prevention and watch-list duties past due too (store.duties.ledger)."""
    from store.duties.ledger import overdue

    return overdue(s, as_of, scope=school_scope(s, school), kinds=("census", "prevention", "watch", "calendar", "report_due"), limit=limit)


@app.command()
def advance(
    as_of: datetime = typer.Option(..., "--as-of", help="the moment to advance to, e.g. 2026-11-23T09:30"),
    batch_size: Optional[int] = typer.Option(None, help="每批案件数 (default: 20000 SQLite, 5000 PostgreSQL)"), json_out: bool = typer.Option(False, "--json"),
):
    """Apply every escalation due at --as-of and mark overdue duties (set-based; safe to repeat)."""
    from store.cases.advance import advance as run_advance
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("advance", total=None)
        report = run_advance(_factory(), as_of, batch_size=batch_size, keep_ids=False,
                             progress=lambda what, n: progress.update(task, advance=n, description=what))
    data = report.as_dict()

    def show(d):
        console.print(f"推进至 {d['as_of']}: {d['total_transitions']} 次升级 transitions, {d['overdue']} 项逾期 overdue")
        for k, v in d["transitions"].items():
            console.print(f"  {k}: {v}")
    _emit(data, json_out, show)
    if report.skipped:  # the other calendars' cases moved; these schools' wait for their calendar
        from cli.errors import USER_ERROR, calendar_line
        fail("；".join(calendar_line(k.year, k.calendar_key, k.schools) for k in report.skipped), USER_ERROR)


@policy_app.command("show")
def policy_show(name: str, version: Optional[int] = typer.Option(None), json_out: bool = typer.Option(False, "--json")):
    """Show a loaded policy (the version cases use)."""
    from store.db import transaction
    from store.policy_files import PolicyRegistry
    with transaction(_factory()) as s:
        p = PolicyRegistry(s).get(name, version)

    def show(p):
        console.print(f"[bold]{p['label']}[/bold] ({p['name']}@{p['version']}) — {p['jurisdiction']}")
        t = Table("日 day", "步骤 step", "责任 roles", "职责 duties", "文书 documents")
        for st in p["steps"]:
            t.add_row(str(st["day"]), st["label"], "、".join(p["roles"].get(r, r) for r in st["roles"]),
                      "; ".join(f"{d['action']}→{d['role']} +{d['due_school_days']}d {d['due_time']}" for d in st["duties"]),
                      ", ".join(st["documents"]))
        console.print(t)
    _emit(p.model_dump(mode="json"), json_out, show)


@policy_app.command("check")
def policy_check(files: list[Path] = typer.Argument(None, help="policy files (default: the policy folder)")):
    """Validate policy files; a bad file is named with the field and the reason."""
    from store.policy_files import PolicyFileError, policy_files, read_policy_file
    bad = 0
    for path in files or policy_files():
        try:
            p, _ = read_policy_file(path)
            console.print(f"[green]ok[/green] {path}: {p.key}, {len(p.steps)} steps")
        except PolicyFileError as exc:
            bad += 1
            err.print(f"[red]invalid[/red] {exc}")
    if not files:
        bad += check_calendar_files()
    if bad:
        raise typer.Exit(2)


def check_calendar_files(today: Optional[date] = None) -> int:
    """`policy check`: the holiday lists (dates inside their year, no day both holiday and workday) and each
    calendar's terms against them for the next 60 days; returns how many files are invalid."""
    from rich.markup import escape

    from machines.calendar import missing_holiday_years
    from store.calendars import HolidayFileError, calendar_dir, holiday_files, load_calendars, read_holiday_file
    bad = 0
    for path in holiday_files():
        try:
            table = read_holiday_file(path)
            console.print(f"[green]ok[/green] {path}: {len(table.holidays)} holidays, {len(table.workdays)} 调休 workdays")
        except HolidayFileError as exc:
            bad += 1
            err.print(f"[red]invalid[/red] {escape(str(exc))}")
    if bad:
        return bad
    for key, cal in load_calendars(calendar_dir()).items():
        missing = missing_holiday_years(cal, today or now_local().date())
        for m in missing:
            err.print(f"[yellow]注意 warning:[/yellow] {escape(m.message)}")
        if not missing:
            console.print(f"[green]ok[/green] 校历 calendar {key}: holiday lists cover the next 60 days")
    return 0


@policy_app.command("migrate")
def policy_migrate(
    name: str, to: int = typer.Option(..., help="target version"), reason: str = typer.Option(...),
    by: str = typer.Option(...), at: Optional[datetime] = typer.Option(None),
):
    """Move open cases of a policy to a new version (logged; closed cases keep their version)."""
    from store.db import transaction
    from store.policy_files import load_policies_into
    from store.cases.policy_migration import migrate_open_cases
    when = at or now_local()
    with transaction(_factory()) as s:
        load_policies_into(s, now=when)
        n = migrate_open_cases(s, name, to, actor=by, reason=reason, now=when)
    console.print(f"{n} 件在办案件迁移至 {name}@{to} (open cases moved)")


def _read_password(from_stdin: bool) -> str:
    """A password from stdin (``--password-stdin``: the first line) or typed twice at a hidden
    prompt; never from the command line, where every user of the host can read it (ps, history)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("密码 password", hide_input=True, confirmation_prompt=True)


def _account(s, username: str):
    from store.access.accounts import find_user

    user = find_user(s, username)
    if user is None:
        _fail(f"账号 {username} 不存在 (no such account)")
    return user


PASSWORD_STDIN = typer.Option(False, "--password-stdin", help="read the password from stdin (first line), not a prompt")


@user_app.command("add-staff")
def user_add_staff(username: str, staff: str = typer.Option(..., "--staff", help="教职工手机号 (the staff record's phone)"),
                   password_stdin: bool = PASSWORD_STDIN):
    """Add an account for a person on the staff list: role, school/township and a head teacher's
    classes follow from the record. The password is asked for, read from stdin, or (neither) generated."""
    from store.access.staff_accounts import account_for_staff, staff_by_phone
    from store.db import transaction
    password = _read_password(password_stdin)
    try:
        with transaction(_factory()) as s:
            user, _ = account_for_staff(s, staff_by_phone(s, staff), username=username, password=password,
                                        now=now_local())
            console.print(f"账号已创建 created: {user.username} ({user.display_name}, {user.role})")
    except ValueError as exc:
        _fail(str(exc))


@user_app.command("reassign")
def user_reassign(username: str, staff: str = typer.Option(..., "--staff", help="新的教职工手机号")):
    """Move an account to another staff record (role and place follow it; sessions and tokens end)."""
    from store.access.accounts import find_user
    from store.access.staff_accounts import reassign, staff_by_phone
    from store.db import transaction
    try:
        with transaction(_factory()) as s:
            user = find_user(s, username)
            if user is None:
                _fail(f"账号 {username} 不存在")
            reassign(s, user, staff_by_phone(s, staff), now=now_local())
            console.print(f"账号已改属 reassigned: {username} → {user.display_name} ({user.role})")
    except ValueError as exc:
        _fail(str(exc))


@user_app.command("add")
def user_add(
    username: str, role: str = typer.Option(..., help="head_teacher | school_staff | township | county | operator"),
    name: Optional[str] = typer.Option(None, help="显示名"), school: Optional[str] = typer.Option(None, help="学校代码"),
    township: Optional[str] = typer.Option(None, help="乡镇代码"), klass: list[str] = typer.Option([], "--class", help="班级名称 (repeat)"),
    password_stdin: bool = PASSWORD_STDIN,
):
    """Add an account: a head teacher needs --school and --class, school staff --school, township --township.
    The password is asked for (hidden, twice) or read from stdin with --password-stdin."""
    from sqlalchemy import select
    from store.access.accounts import create_user
    from store.db import transaction
    from store.models import Jurisdiction, School, SchoolClass
    password = _read_password(password_stdin)
    try:
        with transaction(_factory()) as s:
            school_row = s.scalar(select(School).where(School.code == school)) if school else None
            if school and school_row is None:
                _fail(f"学校代码 {school} 不存在")
            township_id = s.scalar(select(Jurisdiction.id).where(Jurisdiction.code == township)) if township else None
            if township and township_id is None:
                _fail(f"乡镇代码 {township} 不存在")
            class_ids = [s.scalar(select(SchoolClass.id).where(SchoolClass.school_id == school_row.id, SchoolClass.name == k))
                         for k in klass] if school_row else []
            if None in class_ids:
                _fail(f"班级不存在: {klass[class_ids.index(None)]}")
            user = create_user(s, username=username, password=password, role=role, display_name=name,
                               school_id=school_row.id if school_row else None, township_id=township_id,
                               class_ids=class_ids, now=now_local())
            console.print(f"账号已创建 created: {user.username} ({role})")
    except ValueError as exc:
        _fail(str(exc))


@user_app.command("passwd")
def user_passwd(username: str, password_stdin: bool = PASSWORD_STDIN):
    """Set a new password (prompt or --password-stdin): every session and API token of the account ends."""
    from store.access.accounts import AccountError, reset_password
    from store.db import transaction
    password = _read_password(password_stdin)
    try:
        with transaction(_factory()) as s:
            reset_password(s, _account(s, username), now=now_local(), password=password)
    except AccountError as exc:
        _fail(str(exc))
    console.print(f"密码已更新，{username} 的登录和令牌均已失效 (password set; sessions and tokens ended)")


def _set_active(username: str, active: bool) -> None:
    from store.access.accounts import set_active
    from store.db import transaction
    with transaction(_factory()) as s:
        set_active(s, _account(s, username), active, now=now_local())
    console.print(f"{username}: " + ("已启用 active" if active else "已停用，登录和令牌均已失效 deactivated"))


@user_app.command("deactivate")
def user_deactivate(username: str):
    """Deactivate an account: it can no longer log in, its sessions end and its tokens are revoked."""
    _set_active(username, False)


@user_app.command("activate")
def user_activate(username: str):
    """Reactivate an account (its old tokens stay revoked; it logs in with its password)."""
    _set_active(username, True)


@user_app.command("list")
def user_list(json_out: bool = typer.Option(False, "--json")):
    """Every account with its role, place and state."""
    from store.access.accounts import list_users
    from store.db import transaction
    now = now_local()
    with transaction(_factory()) as s:
        rows = [{"username": u.username, "display_name": u.display_name, "role": u.role, "active": u.active,
                 "locked": bool(u.locked_until and u.locked_until > now), "last_login_at": u.last_login_at}
                for u in list_users(s)]

    _emit(rows, json_out, lambda data: print_table(
        "账号 accounts", ("username", "display_name", "role", "active", "locked", "last_login_at"), data))


@user_app.command("tokens")
def user_tokens(username: str, json_out: bool = typer.Option(False, "--json")):
    """The account's API tokens (prefix, purpose, expiry, state); the tokens themselves are stored only hashed."""
    from store.access.accounts import tokens_of
    from store.db import transaction
    now = now_local()
    with transaction(_factory()) as s:
        rows = [{"id": t.id, "name": t.name, "prefix": t.prefix, "created_at": t.created_at, "expires_at": t.expires_at,
                 "last_used_at": t.last_used_at,
                 "status": "revoked" if t.revoked_at else "expired" if t.expires_at and t.expires_at <= now else "active"}
                for t in tokens_of(s, _account(s, username))]

    _emit(rows, json_out, lambda data: print_table(
        f"{username} 的访问令牌 tokens", ("id", "name", "prefix", "expires_at", "last_used_at", "status"), data))


@user_app.command("revoke-token")
def user_revoke_token(username: str, token_id: int = typer.Argument(..., help="id from `baoxue user tokens`")):
    """Revoke one API token of the account."""
    from store.access.accounts import revoke_own_token
    from store.db import transaction
    with transaction(_factory()) as s:
        if not revoke_own_token(s, _account(s, username), token_id, now=now_local()):
            _fail(f"令牌 {token_id} 不属于 {username} 或已注销 (no such active token)")
    console.print(f"令牌 {token_id} 已注销 (revoked)")


@app.command()
def diagram(out: Path = typer.Option(Path("docs"), help="folder for case_machine.mmd and .svg")):
    """Write the case machine diagram (Mermaid and SVG), generated from the class."""
    from deploy.diagram import write_diagrams
    for path in write_diagrams(out):
        console.print(f"wrote {path}")


def _mount_subcommands() -> None:
    """Sub-commands that live with their features (documents, orchestration, prevention, oversight)."""
    from cli.documents import app as doc_app
    from cli import backup as backup_cli
    from cli import census as census_cli
    from cli import gate as gate_cli
    from cli import oversight as oversight_cli
    from cli import reports_work as reports_work_cli
    from cli.orchestration import app as orchestration_app

    app.add_typer(doc_app, name="doc")
    app.registered_commands.extend(orchestration_app.registered_commands)
    app.add_typer(gate_cli.gate_app, name="gate")  # 住校生出入校门
    app.add_typer(gate_cli.truancy_app, name="truancy")  # 旷课分级
    app.add_typer(census_cli.census_app, name="census")  # 失学排查
    app.add_typer(census_cli.handoff_app, name="handoff")  # 送达回证
    oversight_cli.mount(app)  # risk list|explain, reconcile MONTH, submit-/accept-figures
    app.add_typer(backup_cli.app, name="backup")  # backup create|check|restore|verify
    from cli import onboarding as onboarding_cli
    onboarding_cli.mount(app)  # onboard DIR, org templates|sample|import|schools|staff|pupils
    from cli import followup as followup_cli
    followup_cli.mount(app)  # ledger-book SCOPE MONTH: 台账 of referred cases (issue 16)
    from cli import notices as notices_cli
    app.add_typer(notices_cli.app, name="parent-notice")  # 辍学书面通报 fill|signed|reported
    from cli.accountability import app as accountability_app
    app.add_typer(accountability_app, name="accountability")  # evidence, talk, veto, ranking, chain, pledge (issue 17)
    reports_work_cli.mount(app)  # submission …, weekly …, spot-result … (issue 17 items 1–3)
    from cli import leave as leave_cli
    leave_cli.mount(app)  # leave apply|approve|refuse|list, transfer out|confirm, lesson absent|not-home


_mount_subcommands()

if __name__ == "__main__":
    app()
