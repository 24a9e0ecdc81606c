"""Reports as the people's work (issue 17 items 1–3; seed 003 §三.3–三.4, seed 002 周查表, seed 001 情形 3).

- **月报 and term reports.** The scheduler drafts each level's report from the ledger (the figures
  read model, ``store.reporting.reports.report_figures_many``) and gives its owner (the school's
  principal, the township's cadre, the bureau) a duty due at the end of the policy's day (school
  ``[reports] school_due_day``, township ``township_due_day``, county month end; a term report on its
  term's last day). The 填表人 and 负责人 edit 存在问题 and 下一步 on the draft (version 0), then submit
  and sign: the submission is a new version with the figures and the text frozen; a correction is
  one more version, the earlier ones are kept. Lateness is the submission's time against the due
  time; a late first submission is an accountability entry (``late_report``), a missing one an
  overdue duty of the ledger (kind ``report``).
- **Weekly count (周查表).** On the policy's ``class_weekday`` every class with a head teacher gets
  a duty due that day; the head teacher submits 在册, 在校, 缺勤, 辍学, pre-filled from the ledger
  (the roster, the day's morning check, the class's dropouts by the figures read model). The sheet
  rolls classes up to schools and schools up to townships.
- **季查 results.** The inspector (township or county) records per sampled class of the sealed
  draw: enrolled, present, absent, discrepancies found, signed. A discrepancy opens a reconciliation
  item — the differences in ``store.reporting.reconcile``'s shape, with the ledger's cases behind the
  class (``reconcile.ledger_cases``) — and the school's duty to explain it; the office resolves it
  with the explanation.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from io import BytesIO
from typing import Any, Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from machines.policy import Policy
from machines.vocabulary import (
    LEVEL_LABELS, REPORT_DUTY_ACTIONS, REPORT_DUTY_KIND_LABELS, WEEKLY_COUNT, WEEKLY_COUNT_FIELDS,
)

from store.models import AttendanceMark, Case, CaseEvent, Jurisdiction, Pupil, School, SchoolClass, SchoolDay, Staff
from store.models.notifications import AccountabilityEntry
from store.models.report_work import ReportDuty, ReportVersion, SpotCheckResult, WeeklyCount
from store.reporting import reports as rp
from store.reporting.report_credit import credit, weekly_acts

DRAFT_LEAD_DAYS = 5          # the draft and its duty come this many days before the due date
SPOT_RECONCILE_DAYS = 7      # the school explains a 季查 discrepancy within a week
TEXT_MAX = 2000
SIGNER_ROLES = {"school": ("academic_office", "principal"), "township": ("township", "township_head"),
                "county": ("education_bureau", "education_bureau")}


class ReportWorkError(ValueError):
    """A rule of the people's reporting refused the request; the message is for staff (中文 English)."""


def end_of(day: date) -> datetime:
    return datetime.combine(day, time(23, 59, 59))


def report_period(kind: str, period: str) -> rp.ReportPeriod:
    """A monthly period "2026-11", or a term report's period (its first day "20260901", from the calendars)."""
    if kind == "monthly":
        try:
            year, month = (int(x) for x in period.split("-"))
            return rp.month_period(year, month)
        except ValueError:
            raise ReportWorkError(f"月份格式应为 2026-11 (month expected as YYYY-MM): {period!r}") from None
    if kind in ("term_start", "term_end"):
        from store.calendars import calendars

        for cal in calendars().values():
            for term in getattr(cal, "terms", []):
                if f"{term.start:%Y%m%d}" == period:
                    return rp.ReportPeriod(kind, period, term.start, term.end)
        raise ReportWorkError(f"没有从 {period} 开始的学期 (no term starts on {period})")
    raise ReportWorkError(f"未知的报告种类 {kind!r} (unknown report kind)")


def _staff(session: Session, scope: rp.ReportScope, role: str) -> Staff | None:
    q = select(Staff).where(Staff.role == role).order_by(Staff.id).limit(1)
    if scope.level == "school":
        return session.scalar(q.where(Staff.school_id == scope.school_ids[0]))
    j = session.scalar(select(Jurisdiction.id).where(Jurisdiction.code == scope.code))
    return session.scalar(q.where(Staff.jurisdiction_id == j))


# -- 月报 / term reports: drafts, duties, submissions ---------------------------------------------------------
def open_level(session: Session, *, policy: Policy, level: str, period: rp.ReportPeriod, now: datetime,
               actor: str = "system:report_drafts") -> list[tuple[ReportDuty, bool]]:
    """Draft every ``level`` report of ``period`` (version 0, figures from one ``report_figures_many``
    call) and open its owner's duty; idempotent: a scope with a duty already is left alone."""
    all_scopes = rp.scopes(session, level)
    have = {d.scope_code: d for d in session.scalars(select(ReportDuty).where(
        ReportDuty.report_kind == period.kind, ReportDuty.level == level, ReportDuty.period == period.label))}
    todo = [sc for sc in all_scopes if sc.code not in have]
    figures = rp.report_figures_many(session, todo, period, now, policy.standard_dropout_rate) if todo else []
    due = rp.due_on(policy, level, period)
    out = [(have[sc.code], False) for sc in all_scopes if sc.code in have]
    for sc, fig in zip(todo, figures):
        signers = [_staff(session, sc, r) for r in SIGNER_ROLES[level]]
        owner = signers[1] or signers[0]
        duty = ReportDuty(action="submit_report", role=rp.LEVEL_ROLE[level], owner_id=owner.id if owner else None,
                          status="open", created_at=now, report_kind=period.kind, level=level, scope_code=sc.code,
                          scope_name=sc.name, period=period.label, school_id=sc.school_ids[0] if level == "school" else None,
                          label=f"{sc.name}{REPORT_DUTY_KIND_LABELS[period.kind]} {period.label} 提交并签署",
                          due_at=end_of(due))
        session.add(duty)
        session.add(ReportVersion(report_kind=period.kind, level=level, scope_code=sc.code, period=period.label, version=0,
                                  status="draft", prepared_by=signers[0].name if signers[0] else "",
                                  approved_by=signers[1].name if signers[1] else "", figures=fig, due_on=due,
                                  actor=actor, created_at=now))
        out.append((duty, True))
    session.flush()
    return out


def draft_due(session: Session, *, policy: Policy, now: datetime, lead_days: int = DRAFT_LEAD_DAYS) -> dict[str, int]:
    """The monthly drafts whose due date is within ``lead_days`` (and not past): the daily run's work."""
    month = rp.month_period(now.year, now.month)
    out = {}
    for level in rp.LEVELS:
        due = rp.due_on(policy, level, month)
        if 0 <= (due - now.date()).days <= lead_days:
            out[level] = sum(created for _, created in open_level(session, policy=policy, level=level, period=month, now=now))
    return out


def _key(kind: str, level: str, code: str, period: str):
    return (ReportVersion.report_kind == kind, ReportVersion.level == level, ReportVersion.scope_code == code,
            ReportVersion.period == period)


def versions(session: Session, *, kind: str, level: str, code: str, period: str) -> list[ReportVersion]:
    return list(session.scalars(select(ReportVersion).where(*_key(kind, level, code, period)).order_by(ReportVersion.version)))


def latest_submitted(session: Session, *, kind: str, level: str, code: str, period: str) -> ReportVersion | None:
    return session.scalar(select(ReportVersion).where(*_key(kind, level, code, period), ReportVersion.version > 0)
                          .order_by(ReportVersion.version.desc()).limit(1))


def _duty(session: Session, kind: str, level: str, code: str, period: str) -> ReportDuty | None:
    return session.scalar(select(ReportDuty).where(ReportDuty.report_kind == kind, ReportDuty.level == level,
                                                   ReportDuty.scope_code == code, ReportDuty.period == period))


def _draft(session: Session, *, policy: Policy, kind: str, level: str, code: str, period: str, now: datetime) -> ReportVersion:
    if level not in rp.LEVELS:
        raise ReportWorkError(f"未知的层级 {level!r} (level: school/township/county)")
    p = report_period(kind, period)
    draft = session.scalar(select(ReportVersion).where(*_key(kind, level, code, period), ReportVersion.version == 0))
    if draft is None:
        try:
            rp.scope_of(session, level, code)
        except LookupError:
            raise ReportWorkError(f"{LEVEL_LABELS[level]} {code} 不存在 (unknown scope)") from None
        open_level(session, policy=policy, level=level, period=p, now=now, actor="system:report_drafts")
        draft = session.scalar(select(ReportVersion).where(*_key(kind, level, code, period), ReportVersion.version == 0))
    return draft


def _clean(text: str | None, limit: int = TEXT_MAX) -> str | None:
    if text is None:
        return None
    text = str(text).strip()
    if len(text) > limit:
        raise ReportWorkError(f"内容过长（最多 {limit} 字）(text too long)")
    return text


def edit_draft(session: Session, *, policy: Policy, kind: str, level: str, code: str, period: str, now: datetime,
               actor: str, problems: str | None = None, next_steps: str | None = None,
               prepared_by: str | None = None, approved_by: str | None = None) -> ReportVersion:
    """Save 存在问题 / 下一步 / 填表人 / 负责人 on the draft (the draft only: a submission is frozen)."""
    draft = _draft(session, policy=policy, kind=kind, level=level, code=code, period=period, now=now)
    for field, value, limit in (("problems", problems, TEXT_MAX), ("next_steps", next_steps, TEXT_MAX),
                                ("prepared_by", prepared_by, 32), ("approved_by", approved_by, 32)):
        value = _clean(value, limit)
        if value is not None:
            setattr(draft, field, value)
    draft.actor = actor
    session.flush()
    return draft


def submit(session: Session, *, policy: Policy, kind: str, level: str, code: str, period: str, now: datetime, actor: str,
           problems: str | None = None, next_steps: str | None = None, prepared_by: str | None = None,
           approved_by: str | None = None, reason: str = "") -> tuple[ReportVersion, bool]:
    """Submit and sign: a new frozen version (figures as the ledger says now, the draft's text);
    returns (version, created). The same text again is the same submission (no new version)."""
    draft = edit_draft(session, policy=policy, kind=kind, level=level, code=code, period=period, now=now, actor=actor,
                       problems=problems, next_steps=next_steps, prepared_by=prepared_by, approved_by=approved_by)
    missing = [label for label, v in (("存在问题", draft.problems), ("下一步工作安排", draft.next_steps),
                                      ("填表人", draft.prepared_by), ("负责人", draft.approved_by)) if not v]
    if missing:
        raise ReportWorkError(f"请填写{'、'.join(missing)}后再报送 (fill in {', '.join(missing)} before submitting)")
    last = latest_submitted(session, kind=kind, level=level, code=code, period=period)
    text = (draft.problems, draft.next_steps, draft.prepared_by, draft.approved_by)
    if last is not None and (last.problems, last.next_steps, last.prepared_by, last.approved_by) == text:
        return last, False
    p = report_period(kind, period)
    scope = rp.scope_of(session, level, code)
    figures = rp.report_figures_many(session, [scope], p, now, policy.standard_dropout_rate)[0]
    duty = _duty(session, kind, level, code, period)
    due = duty.due_at if duty is not None else end_of(draft.due_on)
    version = ReportVersion(report_kind=kind, level=level, scope_code=code, period=period,
                            version=(last.version if last else 0) + 1, status="submitted", problems=draft.problems,
                            next_steps=draft.next_steps, prepared_by=draft.prepared_by, approved_by=draft.approved_by,
                            figures=figures, due_on=draft.due_on, submitted_at=now, late=now > due, actor=actor,
                            reason=_clean(reason, 255) or ("" if last is None else "更正"), created_at=now)
    session.add(version)
    if duty is not None and duty.status in ("open", "overdue"):
        duty.status, duty.done_at, duty.done_late, duty.done_by = "done", now, now > duty.due_at, actor
        if duty.done_late:
            _late_entry(session, duty, now)
    session.flush()
    return version, True


def _late_entry(session: Session, duty: ReportDuty, at: datetime) -> None:
    """seed 001 情形 3 (汇报不及时): a report or count submitted after its due time, for the evidence."""
    key = f"report_duty:{duty.id}"
    if session.scalar(select(AccountabilityEntry.id).where(AccountabilityEntry.key == key)):
        return
    session.add(AccountabilityEntry(key=key, ground="late_report", staff_id=duty.owner_id, role=duty.role, case_id=None,
                                    duty_id=None, report_filing_id=None, due_at=duty.due_at, recorded_at=at,
                                    detail={"level": duty.level, "scope": duty.scope_name, "kind": duty.report_kind,
                                            "period": duty.period, "submitted_at": at.isoformat(sep=" ")}))


def report_rows(session: Session, *, kind: str, period: str, school_ids: list[int] | None = None,
                levels=rp.LEVELS, as_of: datetime | None = None) -> list[dict[str, Any]]:
    """Each report duty of ``period`` (in the reader's schools; township and county reports when the
    reader's schools include all of theirs) with its latest version: the 报送 page and the API."""
    mine = set(school_ids) if school_ids is not None else None
    scope_schools = {(sc.level, sc.code): set(sc.school_ids) for lv in levels for sc in rp.scopes(session, lv)}
    out = []
    for duty in session.scalars(select(ReportDuty).where(ReportDuty.report_kind == kind, ReportDuty.period == period,
                                                         ReportDuty.level.in_(levels)).order_by(ReportDuty.level, ReportDuty.scope_code)):
        covers = scope_schools.get((duty.level, duty.scope_code), set())
        if mine is not None and not (covers and covers <= mine):
            continue
        vs = versions(session, kind=kind, level=duty.level, code=duty.scope_code, period=period)
        sub = [v for v in vs if v.version > 0]
        draft = next((v for v in vs if v.version == 0), None)
        status = duty.status if as_of is None or duty.status != "open" or duty.due_at > as_of else "overdue"
        out.append({"duty_id": duty.id, "level": duty.level, "level_label": LEVEL_LABELS[duty.level],
                    "code": duty.scope_code, "scope": duty.scope_name, "kind": kind, "period": period,
                    "due_at": duty.due_at.isoformat(sep=" "), "status": status, "done_late": duty.done_late,
                    "owner_id": duty.owner_id, "draft": version_dict(draft) if draft else None,
                    "versions": [version_dict(v) for v in sub]})
    return out


def version_dict(v: ReportVersion, *, with_figures: bool = False) -> dict[str, Any]:
    out = {"version": v.version, "status": v.status, "problems": v.problems, "next_steps": v.next_steps,
           "prepared_by": v.prepared_by, "approved_by": v.approved_by, "due_on": v.due_on.isoformat(),
           "submitted_at": v.submitted_at.isoformat(sep=" ") if v.submitted_at else None, "late": v.late,
           "actor": v.actor, "reason": v.reason, "dropouts": v.figures.get("dropouts"),
           "dropout_rate": v.figures.get("dropout_rate"), "enrolled": v.figures.get("enrolled")}
    if with_figures:
        out["figures"] = v.figures
    return out


# -- the weekly count (周查表) ----------------------------------------------------------------------------------
def _is_school_day(session: Session, calendar_key: str, day: date) -> bool:
    known = session.scalar(select(func.count()).select_from(SchoolDay).where(SchoolDay.calendar_key == calendar_key))
    if not known:
        return day.weekday() < 5
    return session.scalar(select(SchoolDay.seq).where(SchoolDay.calendar_key == calendar_key, SchoolDay.day == day)) is not None


def open_weekly(session: Session, *, day: date, now: datetime, policy_of: Callable[[str], Policy]) -> int:
    """The weekly count's duties of ``day``: one per class with a head teacher, in the schools whose
    policy counts on this weekday and for which it is a school day; due at the end of the day."""
    made = 0
    have = set(session.scalars(select(ReportDuty.class_id).where(
        ReportDuty.report_kind == WEEKLY_COUNT, ReportDuty.period == day.isoformat())))
    counted = weekly_acts(session, day.isoformat())  # counts submitted before their duty: it is opened done
    for school in session.scalars(select(School).order_by(School.code)):
        if policy_of(school.policy_name).reports.class_weekday != day.weekday():
            continue
        if not _is_school_day(session, school.calendar_key, day):
            continue
        for klass in session.scalars(select(SchoolClass).where(SchoolClass.school_id == school.id,
                                                               SchoolClass.head_teacher_id.is_not(None)).order_by(SchoolClass.id)):
            if klass.id in have:
                continue
            duty = ReportDuty(action="submit_weekly_count", role="head_teacher", owner_id=klass.head_teacher_id,
                              status="open", created_at=now, report_kind=WEEKLY_COUNT, level="class",
                              scope_code=str(klass.id), scope_name=f"{school.name}{klass.name}", period=day.isoformat(),
                              school_id=school.id, class_id=klass.id, label=f"{klass.name} 周查 {day:%m-%d}",
                              due_at=end_of(day))
            session.add(duty)
            if credit(duty, counted.get(klass.id)).get("late"):
                session.flush()
                _late_entry(session, duty, duty.done_at)
            made += 1
    session.flush()
    return made


def weekly_prefill(session: Session, class_ids: list[int], day: date) -> dict[int, dict[str, int]]:
    """class id → 在册, 在校, 缺勤, 辍学, 集体家访 as the ledger says on ``day``: the roster, the day's morning
    check (every mark other than 到校 is an absence), the dropouts by the figures read model, and the
    collective visits (集体家访, with the village committee) recorded on the class's cases in the seven
    days ending on ``day`` (seed 002: 集体家访计入周查表)."""
    if not class_ids:
        return {}
    classes = session.execute(select(SchoolClass.id, SchoolClass.school_id, SchoolClass.name)
                              .where(SchoolClass.id.in_(class_ids))).all()
    enrolled = dict(session.execute(select(Pupil.class_id, func.count()).where(Pupil.class_id.in_(class_ids), Pupil.enrolled)
                                    .group_by(Pupil.class_id)).all())
    absent = dict(session.execute(select(Pupil.class_id, func.count()).join(AttendanceMark, AttendanceMark.pupil_id == Pupil.id)
                                  .where(Pupil.class_id.in_(class_ids), Pupil.enrolled, AttendanceMark.day == day,
                                         AttendanceMark.status != "present").group_by(Pupil.class_id)).all())
    scope_list = [rp.ReportScope("class", str(cid), name, (sid,), (cid,)) for cid, sid, name in classes]
    figures = rp.ledger_figures_many(session, scope_list, rp.month_period(day.year, day.month), end_of(day))
    week = (datetime.combine(day - timedelta(days=6), time.min), end_of(day))  # the seven days ending on ``day``
    visits = dict(session.execute(select(Case.class_id, func.count()).join(CaseEvent, CaseEvent.case_id == Case.id)
                                  .where(Case.class_id.in_(class_ids), CaseEvent.event == "record_collective_visit",
                                         CaseEvent.at >= week[0], CaseEvent.at <= week[1]).group_by(Case.class_id)).all())
    out = {}
    for (cid, _, _), f in zip(classes, figures):
        n, a = enrolled.get(cid, 0), absent.get(cid, 0)
        out[cid] = {"enrolled": n, "present": n - a, "absent": a, "dropouts": f["dropouts"],
                    "collective_visits": visits.get(cid, 0)}
    return out


def _count_field(name: str, value) -> int:
    try:
        n = int(str(value).strip())
    except (TypeError, ValueError):
        raise ReportWorkError(f"{WEEKLY_COUNT_FIELDS.get(name, name)} 应为整数 (integer expected): {value!r}") from None
    if not 0 <= n <= 10_000:
        raise ReportWorkError(f"{WEEKLY_COUNT_FIELDS.get(name, name)} 应在 0–10000 之间 (out of range)")
    return n


def submit_weekly(session: Session, *, class_id: int, day: date, counts: dict[str, Any], now: datetime, actor: str,
                  note: str = "", prefilled: dict[str, int] | None = None) -> tuple[WeeklyCount, bool]:
    """The head teacher's count of ``class_id`` on ``day``; returns (count, created). The same numbers
    again are the same submission; different ones a new version (the earlier is kept). Fields left
    out are the ledger's (``prefilled``: this class's ``weekly_prefill`` when the caller has it)."""
    klass = session.get(SchoolClass, class_id)
    if klass is None:
        raise ReportWorkError(f"班级 {class_id} 不存在 (unknown class)")
    if day > now.date():
        raise ReportWorkError(f"不能提前报送 {day} 的周查 (a count cannot precede its day)")
    unknown = sorted(set(counts) - set(WEEKLY_COUNT_FIELDS))
    if unknown:
        raise ReportWorkError(f"未知的周查项 {unknown} (unknown fields)")
    clean = {k: _count_field(k, counts[k]) for k in WEEKLY_COUNT_FIELDS if k in counts and str(counts[k]).strip() != ""}
    ledger = prefilled or weekly_prefill(session, [class_id], day)[class_id]  # prefilled: a batch's weekly_prefill
    values = {**ledger, **clean}
    if values["present"] + values["absent"] != values["enrolled"]:
        raise ReportWorkError(f"在校 {values['present']} + 缺勤 {values['absent']} 应等于在册 {values['enrolled']} "
                              f"(present + absent must equal enrolled)")
    note = _clean(note, 255) or ""
    last = session.scalar(select(WeeklyCount).where(WeeklyCount.class_id == class_id, WeeklyCount.day == day)
                          .order_by(WeeklyCount.version.desc()).limit(1))
    if last is not None and all(getattr(last, k) == values[k] for k in WEEKLY_COUNT_FIELDS) and last.note == note:
        return last, False
    duty = session.scalar(select(ReportDuty).where(ReportDuty.report_kind == WEEKLY_COUNT, ReportDuty.class_id == class_id,
                                                   ReportDuty.period == day.isoformat()))
    due = duty.due_at if duty is not None else end_of(day)
    row = WeeklyCount(class_id=class_id, school_id=klass.school_id, day=day, version=(last.version if last else 0) + 1,
                      ledger=ledger, note=note, submitted_by=actor, submitted_at=now, late=now > due,
                      **{k: values[k] for k in WEEKLY_COUNT_FIELDS})
    session.add(row)
    if duty is not None and duty.status in ("open", "overdue"):
        duty.status, duty.done_at, duty.done_late, duty.done_by = "done", now, now > duty.due_at, actor
        if duty.done_late:
            _late_entry(session, duty, now)
    session.flush()
    return row, True


def weekly_sheet(session: Session, *, day: date, school_ids: list[int] | None = None,
                 class_ids: list[int] | None = None, as_of: datetime | None = None) -> dict[str, Any]:
    """周查表 of ``day``: a row per class (submitted or not, with the ledger's figures), rolled up per
    school and per township; a class whose count is missing past its due time is marked overdue."""
    q = (select(SchoolClass.id, SchoolClass.name, School.id, School.name, Jurisdiction.name, Staff.name)
         .join(School, School.id == SchoolClass.school_id).join(Jurisdiction, Jurisdiction.id == School.township_id)
         .outerjoin(Staff, Staff.id == SchoolClass.head_teacher_id).order_by(Jurisdiction.code, School.code, SchoolClass.grade, SchoolClass.name))
    if school_ids is not None:
        q = q.where(School.id.in_(school_ids or [-1]))
    if class_ids is not None:
        q = q.where(SchoolClass.id.in_(class_ids or [-1]))
    classes = session.execute(q).all()
    ids = [c[0] for c in classes]
    duties = {d.class_id: d for d in session.scalars(select(ReportDuty).where(
        ReportDuty.report_kind == WEEKLY_COUNT, ReportDuty.period == day.isoformat(), ReportDuty.class_id.in_(ids or [-1])))}
    latest: dict[int, WeeklyCount] = {}
    for wc in session.scalars(select(WeeklyCount).where(WeeklyCount.day == day, WeeklyCount.class_id.in_(ids or [-1]))
                              .order_by(WeeklyCount.version)):
        latest[wc.class_id] = wc
    ledger = weekly_prefill(session, ids, day)
    rows, schools, towns = [], defaultdict(lambda: dict.fromkeys((*WEEKLY_COUNT_FIELDS, "classes", "submitted", "missing"), 0)), {}
    town_tot = defaultdict(lambda: dict.fromkeys((*WEEKLY_COUNT_FIELDS, "classes", "submitted", "missing"), 0))
    for cid, cname, sid, sname, town, teacher in classes:
        wc, duty = latest.get(cid), duties.get(cid)
        if wc is not None:
            status = "late" if wc.late else "submitted"
        elif duty is None:
            status = "not_due"
        elif duty.status == "overdue" or (as_of is not None and duty.due_at <= as_of):
            status = "overdue"
        else:
            status = "open"
        figures = {k: getattr(wc, k) for k in WEEKLY_COUNT_FIELDS} if wc else None
        rows.append({"class_id": cid, "class": cname, "school_id": sid, "school": sname, "township": town,
                     "head_teacher": teacher, "status": status, "submitted": figures, "ledger": ledger.get(cid),
                     "version": wc.version if wc else None, "submitted_by": wc.submitted_by if wc else None,
                     "submitted_at": wc.submitted_at.isoformat(sep=" ") if wc else None, "note": wc.note if wc else ""})
        for tot in (schools[(town, sname)], town_tot[town]):
            tot["classes"] += 1
            tot["submitted"] += wc is not None
            tot["missing"] += wc is None and status == "overdue"
            for k in WEEKLY_COUNT_FIELDS:
                tot[k] += (figures or ledger.get(cid) or {}).get(k, 0)
        towns[town] = town
    return {"day": day.isoformat(), "fields": WEEKLY_COUNT_FIELDS, "classes": rows,
            "schools": [{"township": t, "school": s, **v} for (t, s), v in schools.items()],
            "townships": [{"township": t, **v} for t, v in town_tot.items()]}


def weekly_xlsx(sheet: dict[str, Any]) -> bytes:
    """周查表 as a workbook: classes, schools, townships (names cannot become formulas)."""
    from openpyxl import Workbook

    from store.ingest.tabular import xlsx_safe

    labels = list(WEEKLY_COUNT_FIELDS.values())
    keys = list(WEEKLY_COUNT_FIELDS)
    status = {"submitted": "已报", "late": "逾期报送", "overdue": "未报（逾期）", "open": "待报", "not_due": "—"}
    wb = Workbook()
    ws = wb.active
    ws.title = "班级"
    ws.append([f"控辍保学周查表 {sheet['day']}"])
    ws.append(["乡镇", "学校", "班级", "班主任", "状态", *labels, *(f"台账{x}" for x in labels)])
    for r in sheet["classes"]:
        sub, led = r["submitted"] or {}, r["ledger"] or {}
        ws.append([r["township"], r["school"], r["class"], r["head_teacher"] or "", status[r["status"]],
                   *(sub.get(k, "") for k in keys), *(led.get(k, "") for k in keys)])
    for title, rows, first in (("学校", sheet["schools"], ("township", "school")), ("乡镇", sheet["townships"], ("township",))):
        ws = wb.create_sheet(title)
        ws.append([*("乡镇", "学校")[:len(first)], "班级数", "已报", "未报", *labels])
        for r in rows:
            ws.append([*(r[k] for k in first), r["classes"], r["submitted"], r["missing"], *(r[k] for k in keys)])
    xlsx_safe(wb)
    buf = BytesIO()
    wb.save(buf)
    return buf.getvalue()


# -- 季查 results ------------------------------------------------------------------------------------------
SPOT_FIELDS = {"enrolled": "在籍人数", "present": "实到人数", "absent": "缺勤人数", "discrepancies": "发现不一致"}


def _sampled_row(check, school_code: str, class_name: str) -> dict[str, Any] | None:
    return next((r for r in check.figures.get("classes", [])
                 if r["school_code"] == school_code and r["class"] == class_name), None)


def record_spot_result(session: Session, *, quarter: str, class_id: int, counts: dict[str, Any], findings: str,
                       inspector: str, inspector_role: str, now: datetime, actor: str) -> tuple[SpotCheckResult, bool]:
    """The inspector's signed findings in one sampled class (once; the same again is no new record).
    Differences from the ledger (enrolment, the inspector's discrepancies) open a reconciliation item
    and the school's duty to explain it."""
    from store.reporting import reconcile as rc

    check = rp.sealed_check(session, quarter)
    if check is None:
        raise ReportWorkError(f"{quarter} 尚未抽取季查样本 (no sealed draw for {quarter})")
    klass = session.get(SchoolClass, class_id)
    school = session.get(School, klass.school_id) if klass else None
    row = _sampled_row(check, school.code, klass.name) if school else None
    if row is None:
        raise ReportWorkError(f"班级 {class_id} 不在 {quarter} 的抽查样本中 (class not in the sealed sample)")
    if inspector_role not in ("township", "county"):
        raise ReportWorkError("季查须由乡镇或县级检查人员签署 (the inspector is a township or county official)")
    inspector = _clean(inspector, 32)
    if not inspector:
        raise ReportWorkError("请填写检查人员姓名（签字）(the inspector signs by name)")
    values = {k: _count_field(k, counts.get(k)) for k in SPOT_FIELDS}
    if values["present"] + values["absent"] != values["enrolled"]:
        raise ReportWorkError(f"实到 {values['present']} + 缺勤 {values['absent']} 应等于在籍 {values['enrolled']}")
    findings = _clean(findings) or ""
    seen = session.scalar(select(SpotCheckResult).where(SpotCheckResult.spot_check_id == check.id,
                                                        SpotCheckResult.class_id == class_id))
    if seen is not None:
        if all(getattr(seen, k) == values[k] for k in SPOT_FIELDS) and seen.findings == findings:
            return seen, False
        raise ReportWorkError(f"{school.name}{klass.name} 的季查结果已由 {seen.inspector} 签署，不能修改 (already signed)")
    # the ledger's cases of the class, as reconcile counts them (one definition of dropout / out of school)
    class_cases = set(session.scalars(select(Case.id).where(Case.class_id == class_id)))
    cases = {k: [c for c in v if c["case_id"] in class_cases]
             for k, v in rc.ledger_cases(session, [school.id], f"{now:%Y-%m}", now)[school.id].items()}
    differences = []
    if values["enrolled"] != row["enrolled"]:
        differences.append({"field": "enrolled", "label": "在籍人数", "submitted": values["enrolled"], "ledger": row["enrolled"],
                            "diff": values["enrolled"] - row["enrolled"], "hides": False, "cases": []})
    if values["discrepancies"]:
        differences.append({"field": "discrepancies", "label": "核查发现与台账不一致", "submitted": values["discrepancies"],
                            "ledger": 0, "diff": values["discrepancies"], "hides": True, "cases": cases["out_of_school"]})
    result = SpotCheckResult(spot_check_id=check.id, quarter=check.quarter, school_id=school.id, class_id=class_id,
                             findings=findings, ledger=row, inspector=inspector, inspector_role=inspector_role,
                             signed_at=now, actor=actor, differences=differences,
                             status="open" if differences else "consistent", **values)
    session.add(result)
    session.flush()
    if differences:
        owner = session.scalar(select(Staff.id).where(Staff.school_id == school.id, Staff.role == "principal")
                               .order_by(Staff.id).limit(1))
        session.add(ReportDuty(action="reconcile_spot_check", role="principal", owner_id=owner, status="open", created_at=now,
                               report_kind="spot_check", level="school", scope_code=school.code, scope_name=school.name,
                               period=f"{check.quarter}-{result.id}", school_id=school.id, class_id=class_id,
                               label=f"{klass.name} 季查差异说明（{check.quarter}）",
                               due_at=end_of(now.date() + timedelta(days=SPOT_RECONCILE_DAYS))))
        session.flush()
    return result, True


def resolve_spot_result(session: Session, result_id: int, *, by: str, at: datetime, explanation: str,
                        school_ids: list[int] | None = None) -> SpotCheckResult:
    """The office closes a 季查 reconciliation item with the school's explanation (required)."""
    result = session.get(SpotCheckResult, result_id)
    if result is None or (school_ids is not None and result.school_id not in school_ids):
        raise LookupError(f"季查记录 {result_id} 不存在，或不在您的管辖范围内 (result not found)")
    if result.status != "open":
        return result
    explanation = _clean(explanation) or ""
    if not explanation:
        raise ReportWorkError("须填写差异说明后方可销号 (an explanation is required)")
    result.status, result.resolved_by, result.resolved_at, result.explanation = "resolved", by, at, explanation
    duty = session.scalar(select(ReportDuty).where(ReportDuty.report_kind == "spot_check",
                                                   ReportDuty.period == f"{result.quarter}-{result.id}"))
    if duty is not None and duty.status in ("open", "overdue"):
        duty.status, duty.done_at, duty.done_late, duty.done_by = "done", at, at > duty.due_at, by
    session.flush()
    return result


def spot_results(session: Session, *, quarter: str, school_ids: list[int] | None = None) -> list[dict[str, Any]]:
    """The sealed sample's classes of ``quarter`` with their recorded results (the 季查 page, sheet, API)."""
    check = rp.sealed_check(session, quarter)
    if check is None:
        return []
    ids = {(code, name): (cid, sid) for cid, name, sid, code in session.execute(
        select(SchoolClass.id, SchoolClass.name, School.id, School.code).join(School, School.id == SchoolClass.school_id)
        .where(School.code.in_(list(check.sample.get("classes", {})) or ["-"])))}
    results = {r.class_id: r for r in session.scalars(select(SpotCheckResult).where(SpotCheckResult.spot_check_id == check.id))}
    out = []
    for row in check.figures.get("classes", []):
        cid, sid = ids.get((row["school_code"], row["class"]), (None, None))
        if cid is None or (school_ids is not None and sid not in school_ids):
            continue
        r = results.get(cid)
        out.append({"quarter": check.quarter, "class_id": cid, "school_id": sid, "school": row["school"],
                    "township": row.get("township", ""), "class": row["class"], "ledger_enrolled": row["enrolled"],
                    "ledger_open": row.get("ledger_open", 0), "result_id": r.id if r else None,
                    "result": None if r is None else {
                        **{k: getattr(r, k) for k in SPOT_FIELDS}, "findings": r.findings, "inspector": r.inspector,
                        "inspector_role": r.inspector_role, "signed_at": r.signed_at.isoformat(sep=" "),
                        "status": r.status, "differences": r.differences, "explanation": r.explanation,
                        "resolved_by": r.resolved_by}})
    return out


def spot_evidence(session: Session, school_ids: list[int], quarter: str | None = None) -> list[dict[str, Any]]:
    """季查 differences as the accountability evidence lists reconciliation rows (reconcile.evidence's shape)."""
    q = select(SpotCheckResult, School.name).join(School, School.id == SpotCheckResult.school_id).where(
        SpotCheckResult.school_id.in_(school_ids or [-1]), SpotCheckResult.status != "consistent")
    if quarter:
        q = q.where(SpotCheckResult.quarter == quarter)
    return [{"school": name, "period": r.quarter, "label": d["label"], "submitted": d["submitted"], "ledger": d["ledger"],
             "hides": d["hides"], "case_ids": [c["case_id"] for c in d["cases"]], "status": r.status,
             "accepted_by": r.resolved_by, "explanation": r.explanation, "ground": "季查发现底数不清、数据不实"}
            for r, name in session.execute(q.order_by(SpotCheckResult.id)) for d in r.differences]


def duty_action_label(action: str) -> str:
    return REPORT_DUTY_ACTIONS.get(action, action)


def policy_for(session: Session, level: str, code: str) -> Policy:
    """The policy a scope's reports follow: its (first) school's."""
    from store.policy_files import PolicyRegistry

    if level == "class":
        name = session.scalar(select(School.policy_name).join(SchoolClass, SchoolClass.school_id == School.id)
                              .where(SchoolClass.id == int(code)))
    else:
        try:
            sc = rp.scope_of(session, level, code)
        except LookupError:
            raise ReportWorkError(f"{LEVEL_LABELS.get(level, level)} {code} 不存在 (unknown scope)") from None
        name = session.scalar(select(School.policy_name).where(School.id.in_(sc.school_ids or (-1,))).order_by(School.id).limit(1))
    return PolicyRegistry(session).get(name or "default")


def policies(session: Session) -> Callable[[str], Policy]:
    from store.policy_files import PolicyRegistry

    registry = PolicyRegistry(session)
    return registry.get
