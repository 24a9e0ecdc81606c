"""`baoxue leave …` (请假、免学/缓学 with approval), `baoxue transfer …` (转出/转入) and
`baoxue lesson …` (每节课前清点, 放学未回家), mounted into the main CLI (store.cases.leave, store.cases.lessons)."""
from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Optional

import typer

from cli.common import console, emit, factory as _factory, fail_with as _fail, now_local, print_table

leave_app = typer.Typer(help="请假与免学/缓学审批 leave and exemption approval (seed 002)", no_args_is_help=True)
transfer_app = typer.Typer(help="转学：转出登记、转入确认 transfers (seed 002)", no_args_is_help=True)
lesson_app = typer.Typer(help="每节课前清点、放学未回家 lesson counts (seed 000 §二)", no_args_is_help=True)

KIND_ALIASES = {"病假": "sick_leave", "事假": "personal_leave", "免学": "exemption", "缓学": "exemption",
                "sick_leave": "sick_leave", "personal_leave": "personal_leave", "exemption": "exemption"}


def _day(value: str | None, default: date | None = None) -> date:
    if not value:
        return default or now_local().date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        _fail(f"日期格式应为 2026-11-16 (bad date '{value}')")


def _at(value: str | None) -> datetime:
    if not value:
        return now_local()
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        _fail(f"时间格式应为 2026-11-16T10:00 (bad time '{value}')")


def _pupil(s, student_no: str):
    from sqlalchemy import select

    from store.models import Pupil
    pupil = s.scalar(select(Pupil).where(Pupil.student_no == student_no))
    if pupil is None:
        _fail(f"学籍号 {student_no} 不存在 (unknown pupil)")
    return pupil


def _apply(student_no: str, kind: str, first: date, last: date, actor: str, at: datetime, reason: str,
           to_school: Optional[str] = None, certificate: Optional[Path] = None) -> dict:
    from sqlalchemy import select

    from store.cases.attachments import AttachmentRefused
    from store.cases.context import CaseContext
    from store.cases.leave import LeaveError, apply_for, attach_certificate
    from store.db import settings, transaction
    from store.models import School
    try:
        with transaction(_factory()) as s:
            pupil = _pupil(s, student_no)
            to_id = to_name = None
            if to_school:
                to_id = s.scalar(select(School.id).where(School.code == to_school))
                to_name = None if to_id else to_school
            r = apply_for(s, CaseContext(s), pupil_id=pupil.id, kind=kind, first_day=first, last_day=last, source="cli",
                          actor=actor, now=at, reason=reason, to_school_id=to_id, to_school_name=to_name)
            if certificate is not None:
                attach_certificate(s, r.id, certificate.read_bytes(), certificate.name, actor=actor, now=at,
                                   archive_dir=Path(settings().archive_dir), max_bytes=10 * 1024 * 1024)
            return {"id": r.id, "kind": r.kind, "days": r.days, "role": r.role, "due_at": r.due_at.isoformat(sep=" ")}
    except (LeaveError, AttachmentRefused, LookupError) as exc:
        _fail(str(exc))


@leave_app.command("apply")
def leave_apply(student_no: str, kind: str = typer.Option("病假", help="病假/事假/免学/缓学"),
                first: Optional[str] = typer.Option(None, help="first day (default today)"),
                last: Optional[str] = typer.Option(None, help="last day (default = first)"),
                reason: str = typer.Option("", help="事由"), certificate: Optional[Path] = typer.Option(
                    None, exists=True, readable=True, help="假条/医疗证明 (JPG/PNG/WebP/PDF)"),
                actor: str = typer.Option("cli"), at: Optional[str] = typer.Option(None),
                json_out: bool = typer.Option(False, "--json")):
    """Apply for leave or 免学/缓学: routed by the policy (一天以上教导处，三天以上校长; 免学/缓学 县教育局)."""
    if kind not in KIND_ALIASES:
        _fail(f"类别应为 病假/事假/免学/缓学 (unknown kind '{kind}')")
    first_day = _day(first)
    out = _apply(student_no, KIND_ALIASES[kind], first_day, _day(last, first_day), actor, _at(at), reason,
                 certificate=certificate)
    emit(out, json_out, lambda d: console.print(f"申请 #{d['id']}：{d['days']} 天，审批人 {d['role']}，期限 {d['due_at']}"))


def _decide(request_id: int, approve: bool, actor: str, at: Optional[str], note: str, json_out: bool,
            receipt: Optional[Path] = None) -> None:
    from store.cases.attachments import AttachmentRefused
    from store.cases.context import CaseContext
    from store.cases.leave import LeaveError, attach_certificate, decide
    from store.db import settings, transaction
    from machines.vocabulary import decision_label
    now = _at(at)
    try:
        with transaction(_factory()) as s:
            if receipt is not None:
                attach_certificate(s, request_id, receipt.read_bytes(), receipt.name, actor=actor, now=now,
                                   archive_dir=Path(settings().archive_dir), max_bytes=10 * 1024 * 1024)
            r = decide(s, CaseContext(s), request_id, approve=approve, actor=actor, now=now, note=note)
            if r.kind == "exemption":  # the county's decision is a document
                from documents.exemption_decision import issue_decision
                issue_decision(s, r.id, actor=actor, now=now)
            out = {"id": r.id, "decision": r.decision, "label": decision_label(r.kind, r.decision), "case_id": r.case_id,
                   "document_id": r.document_id}
    except (LeaveError, AttachmentRefused, LookupError) as exc:
        _fail(str(exc))
    emit(out, json_out, lambda d: console.print(f"申请 #{d['id']}：{d['label']}"
                                                 + (f"（案件 #{d['case_id']} 已排除）" if d["case_id"] and approve else "")))


@leave_app.command("approve")
def leave_approve(request_id: int, actor: str = typer.Option("cli"), at: Optional[str] = typer.Option(None),
                  note: str = typer.Option(""), json_out: bool = typer.Option(False, "--json")):
    """Approve a leave or 免学/缓学 application (an open case of the pupil is excused)."""
    _decide(request_id, True, actor, at, note, json_out)


@leave_app.command("refuse")
def leave_refuse(request_id: int, actor: str = typer.Option("cli"), at: Optional[str] = typer.Option(None),
                 note: str = typer.Option(""), json_out: bool = typer.Option(False, "--json")):
    """Refuse an application: its days count as unexcused absence at the next sweep."""
    _decide(request_id, False, actor, at, note, json_out)


@leave_app.command("list")
def leave_list(school: Optional[str] = typer.Option(None, help="school code"),
               pending: bool = typer.Option(False, "--pending"), json_out: bool = typer.Option(False, "--json")):
    """Leave, 免学/缓学 and transfer requests, newest first."""
    from machines.vocabulary import REQUEST_KIND_LABELS, decision_label
    from cli.common import school_scope
    from store.cases.leave import listed
    with _factory()() as s:
        scope = school_scope(s, school)
        rows = listed(s, scope, decision="pending" if pending else None)
    out = [{"id": r["id"], "类别": REQUEST_KIND_LABELS[r["kind"]], "学籍号": r["student_no"], "起": r["first_day"],
            "止": r["last_day"], "天数": r["days"], "审批": r["role"], "期限": r["due_at"],
            "结果": decision_label(r["kind"], r["decision"]), "转入学校": r["to_school"]} for r in rows]
    emit(out, json_out, lambda d: print_table("请假/免学/转学申请", tuple(d[0]) if d else ("id",), d))


@transfer_app.command("out")
def transfer_out(student_no: str, to_school: str = typer.Option(..., help="接收学校：县内学校代码，或县外学校名称"),
                 day: Optional[str] = typer.Option(None, help="转出日期 (default today)"),
                 actor: str = typer.Option("cli"), at: Optional[str] = typer.Option(None),
                 json_out: bool = typer.Option(False, "--json")):
    """Record a 转出 with its receiving school; unconfirmed within the policy's days it opens a case."""
    first = _day(day)
    out = _apply(student_no, "transfer", first, first, actor, _at(at), "转出", to_school=to_school)
    emit(out, json_out, lambda d: console.print(f"转出 #{d['id']}：待接收学校确认转入，期限 {d['due_at']}"))


@transfer_app.command("confirm")
def transfer_confirm(request_id: int, receipt: Optional[Path] = typer.Option(
        None, exists=True, readable=True, help="县外学校的接收回执 (JPG/PNG/WebP/PDF)"),
        actor: str = typer.Option("cli"), at: Optional[str] = typer.Option(None),
        json_out: bool = typer.Option(False, "--json")):
    """Confirm 转入 (the receiving school in the county), or upload the receipt of a school outside it."""
    _decide(request_id, True, actor, at, "确认转入", json_out, receipt=receipt)


@lesson_app.command("absent")
def lesson_absent(school: str, student_no: str, lesson: int = typer.Option(..., help="第几节"),
                  subject: str = typer.Option("", help="科目"), day: Optional[str] = typer.Option(None),
                  actor: str = typer.Option("cli"), at: Optional[str] = typer.Option(None),
                  json_out: bool = typer.Option(False, "--json")):
    """A subject teacher found the pupil missing at a lesson: the day counts as absent (opens or extends the case)."""
    from store.cases.context import CaseContext
    from store.cases.intake import IntakeError
    from store.cases.lessons import LessonError, report_lesson_absence
    from store.db import transaction
    now = _at(at)
    try:
        with transaction(_factory()) as s:
            r = report_lesson_absence(s, CaseContext(s), school_code=school, student_no=student_no,
                                      day=_day(day, now.date()), lesson=lesson, subject=subject, actor=actor, now=now)
            out = {"report_id": r.report_id, "duplicate": r.duplicate, "case_id": r.case_id}
    except (LessonError, IntakeError, LookupError) as exc:
        _fail(str(exc))
    emit(out, json_out, lambda d: console.print(
        ("已登记过（未重复）" if d["duplicate"] else "已登记") + (f"，案件 #{d['case_id']}" if d["case_id"] else "")))


@lesson_app.command("not-home")
def lesson_not_home(student_no: str, parent: str = typer.Option(..., help="报告家长姓名"),
                    phone: Optional[str] = typer.Option(None), note: str = typer.Option(""),
                    day: Optional[str] = typer.Option(None), actor: str = typer.Option("cli"),
                    at: Optional[str] = typer.Option(None), json_out: bool = typer.Option(False, "--json")):
    """A parent reports the pupil did not come home after school: the school's same-day search is a duty."""
    from store.cases.context import CaseContext
    from store.cases.lessons import LessonError, report_not_home
    from store.db import transaction
    now = _at(at)
    try:
        with transaction(_factory()) as s:
            pupil = _pupil(s, student_no)
            report, new = report_not_home(s, CaseContext(s), pupil_id=pupil.id, day=_day(day, now.date()),
                                          parent_name=parent, parent_phone=phone, note=note, actor=actor, now=now)
            out = {"report_id": report.id, "new": new, "duty_id": report.duty_id}
    except LessonError as exc:
        _fail(str(exc))
    emit(out, json_out, lambda d: console.print(f"放学未回家已登记，学校当日查找（任务 #{d['duty_id']}）"))


def mount(app: typer.Typer) -> None:
    app.add_typer(leave_app, name="leave")        # 请假、免学/缓学审批
    app.add_typer(transfer_app, name="transfer")  # 转出、转入确认
    app.add_typer(lesson_app, name="lesson")      # 每节课前清点、放学未回家
