"""The demo: a generated county lives through four school weeks under the real flows.

A local Prefect server records every run; the flows are the production flows, called with the
instant of each schedule tick as ``as_of`` — the clock is the only thing replaced. Between the
ticks, simulated people do what schools do: submit the morning check (web, API, CLI, upload, SIS
export), phone families, visit homes, serve notices — or leave some duties undone, so they go
overdue. The scenario guarantees cases in every state when the clock stops: it stops on the
morning after the fourth week, after that morning's check (``absent``) and before its 09:30 sweep.

Compression (documented, not hidden), to stay within minutes on two cores: on school days the
09:30 sweep, the 16:05 reminders and a Friday-evening render run; the hourly sweeps in between
are left out (the next morning's sweep fires what they would have: deadlines are rows, not
waiting runs). ``every_tick=True`` replays every scheduled tick.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time as dtime, timedelta
from pathlib import Path
from typing import Callable

START = date(2026, 11, 9)  # a Monday: four weeks cover the 23rd, the 25th and the month end
MORNING_CHECK_AT = dtime(8, 0)
STAFF_AT = (dtime(10, 30), dtime(15, 0))
SOURCES = ("web", "api", "cli", "upload", "sis", "web")
# Of the schedule, the ticks that can change something in the scenario (school days only: no streak
# grows and no deadline falls on a weekend); every_tick=True replays all of them.
COMPRESSED = {"advance-cases": {dtime(9, 30)}, "duty-reminders": {dtime(16, 5)}, "render-documents": {dtime(18, 45)},
              "report-duties": {dtime(7, 30)}}
RENDER_WEEKDAYS = {4}  # the demo renders the week's documents on Friday evening (and when the clock stops)
# Of a step's pending duty: chance it is done on time, or late (a day after its deadline).
DILIGENCE = {"record_phone_call": (0.8, 0.1), "record_home_visit": (0.7, 0.15), "record_collective_visit": (0.6, 0.2),
             "assign_helpers": (0.6, 0.2), "serve_township_notice": (0.6, 0.2), "serve_legal_notice": (0.7, 0.2)}


@dataclass
class Plan:
    """Who is absent on which school day (1-based) and the special story lines."""

    days: list[date]
    absent: dict[int, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))  # day → student_no → status
    school_of: dict[str, str] = field(default_factory=dict)
    outside: dict[int, list[tuple[str, str, dtime]]] = field(default_factory=lambda: defaultdict(list))
    stop_listing: dict[str, int] = field(default_factory=dict)  # after escalation the pupil is the township's

    def mark(self, no: str, first: int, last: int, status: str = "缺勤") -> None:
        for d in range(first, min(last, len(self.days)) + 1):
            self.absent[d][no] = status


def make_plan(pupils: list[tuple[str, str]], days: list[date], seed: int) -> Plan:
    """``pupils``: (student_no, school code). Deterministic from ``seed``."""
    rng = random.Random(seed)
    pool = pupils[:]
    rng.shuffle(pool)
    take = iter(pool)
    plan = Plan(days)

    def pick() -> str:
        no, school = next(take)
        plan.school_of[no] = school
        return no

    n = len(days)
    last = n - 1  # the last full school day; day n is the morning the clock stops
    # Everyday absences: most are back the next day, some after two to four days.
    for d in range(1, n + 1):
        for _ in range(rng.randint(1, 3)):
            length = rng.choices([1, 2, 3, 4], weights=[60, 22, 12, 6])[0]
            plan.mark(pick(), d, d + length - 1)
    sick = pick()                                   # absent without a note, then 病假: excused
    plan.mark(sick, 4, 4)
    plan.mark(sick, 5, 6, "病假")
    leave = pick()                                  # 事假 note on the second day
    plan.mark(leave, 11, 11)
    plan.mark(leave, 12, 12, "事假")
    gone = pick()                                   # whereabouts unknown after the home visit
    plan.mark(gone, 2, 3)
    plan.outside[3].append((gone, "whereabouts_unknown", dtime(15, 0)))
    plan.stop_listing[gone] = 4
    away = pick()                                   # working away (外出务工)
    plan.mark(away, 6, 8)
    plan.outside[8].append((away, "working_away", dtime(15, 0)))
    plan.stop_listing[away] = 9
    back = pick()                                   # the whole ladder, back after the legal notice
    plan.mark(back, 3, 9)
    refuses = pick()                                # refuses after the legal notice: escalated
    plan.mark(refuses, 4, 12)
    plan.outside[12].append((refuses, "refusal_after_notice", dtime(15, 0)))
    plan.stop_listing[refuses] = 13
    relapse = pick()                                # back on day 3, absent again a week later
    plan.mark(relapse, 1, 2)
    plan.mark(relapse, 8, 10)
    # Open at every step when the clock stops (streak on the last full day: 7, 4, 3, 2, 1).
    for first in (last - 6, last - 5, last - 3, last - 2, last - 1, last):
        plan.mark(pick(), first, n)
    for _ in range(2):
        plan.mark(pick(), n, n)                     # absent on the last morning: registered, not yet swept
    return plan


def school_days(start: date, count: int) -> list[date]:
    from store.calendars import calendars

    cal = calendars()["default"]
    out, d = [], start
    while len(out) < count:
        if cal.is_school_day(d):
            out.append(d)
        d += timedelta(days=1)
    return out


def submissions(plan: Plan, n: int, day: date, schools: list[str], at: datetime) -> list:
    """The morning check of day ``n``: on the first day each school submits its own (web, API, CLI,
    upload…); afterwards the county SIS export carries every school's marks in one submission."""
    from tasks.intake import MarkRow, MorningCheckSubmission

    listed = {no: st for no, st in plan.absent.get(n, {}).items() if plan.stop_listing.get(no, 10**6) > n}
    if n > 1:
        marks = [MarkRow(student_no=no, status=st, school_code=plan.school_of[no]) for no, st in sorted(listed.items())]
        return [MorningCheckSubmission(day=day, school_code=None, marks=marks, source="sis", submitted_by="demo:sis",
                                       submitted_at=at, complete=True, schools=schools).signed()]
    return [MorningCheckSubmission(  # signed as the web app signs (the flow refuses an unsigned one)
        day=day, school_code=code, source=SOURCES[i % len(SOURCES)], submitted_by=f"demo:{code}",
        submitted_at=at + timedelta(minutes=i % 6),  # within the check's five minutes, however many schools
        marks=[MarkRow(student_no=no, status=st) for no, st in sorted(listed.items()) if plan.school_of[no] == code]).signed()
        for i, code in enumerate(schools)]


# -- the simulated people -------------------------------------------------------------------------
def staff_round(factory, now: datetime, plan: Plan, day_no: int) -> Counter:
    """Staff record what they did on the cases: each pending duty by its owner, or not."""
    from sqlalchemy import select

    from demo.notices import duty_payload, notice_ready
    from machines.states import OPEN_STATES
    from store.cases.actions import act
    from store.cases.context import CaseContext
    from store.db import transaction
    from demo.reasons import helpers_for, investigated_reason
    from store.models import Case, Duty, Pupil

    done: Counter = Counter()
    with transaction(factory) as s:
        rows = s.execute(select(Duty.id, Duty.case_id, Duty.action, Duty.due_at, Duty.owner_id, Duty.status)
                         .join(Case, Case.id == Duty.case_id)
                         .where(Duty.status.in_(("open", "overdue")), Case.state.in_([x.value for x in OPEN_STATES]),
                                Duty.created_at <= now)
                         .order_by(Duty.id)).all()
    for duty_id, case_id, action, due_at, owner, status in rows:
        on_time, late = DILIGENCE.get(action, (0.7, 0.1))
        r = random.Random(duty_id * 7919).random()
        if r < on_time and now <= due_at:
            pass
        elif on_time <= r < on_time + late and now > due_at + timedelta(hours=12):
            pass
        else:
            continue
        if not notice_ready(factory, case_id, action):  # demo/notices.py: the 书面通报 is filled in first
            continue
        payload = duty_payload(action, duty_id)
        if action == "assign_helpers":  # 三帮一: the named helpers the policy wants (demo/reasons.py)
            with transaction(factory) as s:
                payload = {"helpers": helpers_for(s, CaseContext(s), case_id)}
        with transaction(factory) as s:
            act(s, CaseContext(s), case_id, action, actor=f"staff:{owner}" if owner else "staff", at=now, now=now,
                note="演示：责任人录入", payload=payload, idempotency_key=f"demo:{duty_id}:{action}")
            if action == "record_home_visit":  # the visit finds the reason (查明辍学原因, seed 002)
                act(s, CaseContext(s), case_id, "record_reason", actor=f"staff:{owner}" if owner else "staff",
                    at=now, now=now, note="家访查明", payload={"reason": investigated_reason(case_id), "basis": "家访了解"},
                    idempotency_key=f"demo:{duty_id}:record_reason")
        done[action] += 1
    for no, reason, at in plan.outside.get(day_no, []):
        if at != now.time():
            continue
        with transaction(factory) as s:
            case_id = s.scalar(select(Case.id).join(Pupil, Pupil.id == Case.pupil_id)
                               .where(Pupil.student_no == no, Case.state.in_([x.value for x in OPEN_STATES])))
            if case_id is None:
                continue
            act(s, CaseContext(s), case_id, "escalate_outside", actor="staff:principal", at=now, now=now,
                note={"whereabouts_unknown": "家访未见，去向不明，报镇政府和派出所",
                      "working_away": "外出务工，移交村委会和镇政府劝返",
                      "refusal_after_notice": "法律文书送达后仍拒不复学"}[reason],
                idempotency_key=f"demo:outside:{case_id}", reason=reason)
        done["escalate_outside"] += 1
    return done


# -- the run --------------------------------------------------------------------------------------
@dataclass
class DemoResult:
    out: Path
    summary: dict
    seconds: float


def run_demo(out: Path, *, weeks: int = 4, seed: int = 7, every_tick: bool = False,
             progress: Callable[[str], None] = print, keep_server: bool = False) -> DemoResult:
    from deploy.local import free_port, prefect_home_for, start_prefect_server, stop, wait_healthy

    t0 = time.monotonic()
    out = out.resolve()
    for stale in ("baoxue.db", "baoxue.db-wal", "baoxue.db-shm", "archive", "prefect", "reports", "logs", "summary.json"):
        p = out / stale
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{out / 'baoxue.db'}"
    os.environ["BAOXUE_DATABASE_URL"] = db_url
    os.environ["BAOXUE_ARCHIVE_DIR"] = str(out / "archive")
    from store.db import settings

    settings.cache_clear()
    home = prefect_home_for(db_url)
    port = free_port()
    progress(f"starting the Prefect server (PREFECT_HOME={home}) …")
    # The simulated clock fires the schedules; the server's own scheduler (real time) stays off here.
    os.environ["PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED"] = "false"
    os.environ["PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED"] = "false"
    try:
        server, api_url = start_prefect_server(home, port, out / "logs" / "prefect-server.log")
    finally:
        os.environ.pop("PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED")
        os.environ.pop("PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED")
    try:
        wait_healthy(api_url + "/health", server, log=out / "logs" / "prefect-server.log")
        progress(f"Prefect server up on {api_url} ({time.monotonic() - t0:.0f} s)")
        summary = _simulate(out, api_url, weeks=weeks, seed=seed, every_tick=every_tick, progress=progress, t0=t0)
    finally:
        if not keep_server:
            stop(server)
    accounts = seed_accounts(out, datetime.fromisoformat(str(summary["clock_stopped_at"])))
    summary["accounts"] = [{k: v for k, v in a.items() if k != "password"} for a in accounts]
    summary["wall_seconds"] = round(time.monotonic() - t0, 1)
    (out / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    return DemoResult(out, summary, time.monotonic() - t0)


def seed_accounts(out: Path, now: datetime) -> list[dict]:
    """One login per role for the demo county; passwords go to out/accounts.txt (demo only)."""
    from store.access.accounts import seed_demo_accounts
    from store.db import make_engine, session_factory, transaction

    engine = make_engine(f"sqlite:///{(out / 'baoxue.db').resolve()}")
    try:
        with transaction(session_factory(engine)) as s:
            accounts = [{"username": a.username, "password": a.password, "role": a.role, "name": a.display_name,
                         "where": a.where} for a in seed_demo_accounts(s, now=now)]
    finally:
        engine.dispose()
    (out / "accounts.txt").write_text("".join(f"{a['username']}\t{a['password']}\t{a['role']}\t{a['name']}\t{a['where']}\n"
                                              for a in accounts), encoding="utf-8")
    return accounts


def _simulate(out: Path, api_url: str, *, weeks: int, seed: int, every_tick: bool, progress, t0: float) -> dict:
    from prefect.settings import PREFECT_API_URL, PREFECT_LOGGING_TO_API_BATCH_INTERVAL, temporary_settings
    from sqlalchemy import func, select

    from deploy.deployments import load_flow, no_heartbeat, spec, ticks
    from demo import oversight as oversight_demo
    from store.bootstrap import init_store
    from store.db import make_engine, session_factory, transaction
    from store.ingest.onboarding import onboard
    from store.models import Jurisdiction, Pupil, School, Staff
    from demo.county_export import generated_county_files
    from demo.synthetic import Size
    from tasks.intake import MarkRow, MorningCheckSubmission
    from tasks.runtime import SimulatedClock, clock_set_to, dispose_all, using
    from demo import prevention as prevention_demo
    from demo import census as census_demo
    from demo import followup as followup_demo
    from demo import accountability as accountability_demo
    from demo import reports_work as reports_demo
    from demo import leave as leave_demo

    days = school_days(START, weeks * 5 + 1)
    begin = datetime.combine(days[0], dtime(0, 0))
    stop_at = datetime.combine(days[-1], dtime(8, 30))
    engine = make_engine(os.environ["BAOXUE_DATABASE_URL"])
    init_store(engine, now=begin)
    factory = session_factory(engine)
    # the county enters as a real one does: its files (区划, 学校, 教职工, 班级, 学籍) through the onboarding import
    files = generated_county_files(seed=seed, size=Size(townships=2, schools_per_township=3, pupils_per_class=55))
    with transaction(factory) as s:
        onboarded = onboard(s, list(files.items()), now=begin, apply=True)
        if not onboarded.applied:
            raise RuntimeError(f"the demo county's files did not import: {onboarded.as_dict()}")
        counts = {"townships": s.scalar(select(func.count()).select_from(Jurisdiction).where(Jurisdiction.level == "township")),
                  "schools": s.scalar(select(func.count()).select_from(School)),
                  "pupils": s.scalar(select(func.count()).select_from(Pupil)),
                  "staff": s.scalar(select(func.count()).select_from(Staff))}
        oversight_demo.flag_learning_difficulty(s, seed)  # 学困生 on the roster (issue 8 part 4)
        accountability_demo.setup(s, begin, out)  # 包保 chains, 责任书 issued/rendered/some signed (issue 17 item 7)
        pupils = s.execute(select(Pupil.student_no, School.code).join(School, School.id == Pupil.school_id)
                           .order_by(Pupil.id)).all()
        schools = list(s.scalars(select(School.code).order_by(School.code)))
        wutai = followup_demo.add_wutaishan_school(s, seed)  # issue 16: a 五台山 township, referred cases followed up
        schools.append(wutai.code)
    progress(f"county onboarded from its files: {counts['townships']} townships, {counts['schools']} schools, "
             f"{counts['pupils']} pupils, {counts['staff']} staff")
    plan = make_plan([tuple(p) for p in pupils], days, seed)
    oversight_demo.plan_rising_absences(plan, [tuple(p) for p in pupils], seed)  # absences rising week on week
    prevention_demo.plan_truants(plan, [tuple(p) for p in pupils])  # 旷课分级: tiers 1–4 (issue 8 part 3)
    followup_demo.plan_stories(plan, wutai)  # referred pupils stay absent and followed up; 五台山 ones come back
    leave_lines = leave_demo.plan_leave(plan, [tuple(p) for p in pupils])  # 请假/转学/课前清点 (issue 17 items 5, 6, 8)
    day_no = {d: i + 1 for i, d in enumerate(days)}

    def wanted(t: datetime, name: str) -> bool:
        if every_tick:
            return True
        if name == "term-report":  # a no-op unless a term starts or ends in the window
            from tasks.reports import term_period
            return any(term_period(t.date(), w) for w in ("term_start", "term_end"))
        if name not in COMPRESSED:
            return True
        if name == "render-documents" and t.weekday() not in RENDER_WEEKDAYS:
            return False
        return t.time() in COMPRESSED[name] and t.date() in day_no

    events: list[tuple[datetime, int, str, object]] = []
    for t, sp in ticks(begin, stop_at):
        if wanted(t, sp.name):
            events.append((t, 2, "deployment", sp))
    for d in days:
        events.append((datetime.combine(d, MORNING_CHECK_AT), 0, "morning_check", d))
        if d != days[-1]:
            for at in STAFF_AT:
                events.append((datetime.combine(d, at), 1, "staff", d))
    events.sort(key=lambda e: (e[0], e[1]))

    sim = SimulatedClock(begin)
    flow_runs = Counter()
    seconds: Counter = Counter()
    staff_done = Counter()
    last_day = None
    with temporary_settings(updates={PREFECT_API_URL: api_url, PREFECT_LOGGING_TO_API_BATCH_INTERVAL: 0.5}), \
            no_heartbeat(), using(factory), clock_set_to(sim):
        run = DeploymentRuns(sim)
        morning = lambda sub: run(spec("morning-check"), submission=sub)  # noqa: E731
        render = lambda **kw: run(spec("render-documents"), **kw)  # noqa: E731
        for t, _, what, obj in events:
            sim.set(t)
            t_start = time.perf_counter()
            if t.date() != last_day and t.date() in day_no:
                last_day = t.date()
                progress(f"[{time.monotonic() - t0:5.0f} s] school day {day_no[t.date()]:2}/{len(days)} {t.date()} "
                         f"({sum(flow_runs.values())} flow runs so far)")
            if what == "morning_check":
                for sub in submissions(plan, day_no[obj], obj, schools, t):
                    morning(sub)
                    flow_runs["morning_check"] += 1
                seconds["morning_check"] += time.perf_counter() - t_start
            elif what == "staff":
                staff_done += staff_round(factory, t, plan, day_no[obj])
                staff_done += oversight_demo.submit_monthly_figures(factory, t)  # 月报上报, one school under-reports
                staff_done += oversight_demo.review_submissions(factory, t)  # 审核: honest accepted, the hiding one refused
                staff_done += oversight_demo.helpers_round(factory, t)  # 帮扶: preventive duties done, a few left overdue
                staff_done += prevention_demo.gate_round(factory, t, day_no[obj], len(days) - 1)  # 住校生出入校门
                staff_done += census_demo.census_round(factory, t, day_no[obj], out, run)  # 排查 and 送达回证 (issue 8 parts 1, 6)
                staff_done += followup_demo.followup_round(factory, t)  # 移交跟踪: 回访, 查找, 劝返 (issue 16)
                staff_done += accountability_demo.talk_round(factory, t, day_no[obj])  # 约谈 and its follow-up (issue 17 item 4)
                staff_done += reports_demo.reports_round(factory, t)  # 月报签署, 周查, 季查结果 (issue 17 items 1–3)
                staff_done += leave_demo.leave_round(factory, t, day_no[obj], leave_lines)  # 请假审批、转出、课前清点
                seconds["staff"] += time.perf_counter() - t_start
            else:
                sp = obj
                if sp.name == "quarterly-spot-check":
                    run(sp, as_of=t, seed=seed * 1000 + 17)
                elif sp.name == "advance-cases":
                    run(sp, as_of=t, render=False)
                else:
                    run(sp, as_of=t)
                flow_runs[sp.flow_name] += 1
                seconds[sp.flow_name] += time.perf_counter() - t_start
        t_start = time.perf_counter()
        render(as_of=stop_at)  # what the last rounds asked for
        flow_runs["render_documents"] += 1
        seconds["render_documents"] += time.perf_counter() - t_start
        _drain_prefect()
    summary = _summarise(factory, api_url, stop_at, flow_runs, staff_done, counts)
    summary["prevention"] = prevention_demo.summary(factory)  # gate log and truancy tiers (issue 8 parts 2–3)
    summary["census"] = census_demo.summary(factory, stop_at)  # 排查 and 送达回证 (issue 8 parts 1, 6)
    summary["oversight"] = oversight_demo.summary(factory)  # watch list and reconciliation (issue 8 parts 4–5)
    summary["followup"] = followup_demo.summary(factory, out, stop_at)  # referred cases, 销号, 台账 (issue 16)
    summary["accountability"] = accountability_demo.summary(factory, days[0], stop_at)  # evidence by kind, 约谈, 责任书 (issue 17)
    summary["reports_work"] = reports_demo.summary(factory)  # signed reports, weekly counts, 季查 results (issue 17)
    summary["leave"] = leave_demo.summary(factory)  # leave approvals, transfers, lesson counts (issue 17)
    summary["seconds_by_flow"] = {k: round(v, 1) for k, v in seconds.items()}
    dispose_all()
    engine.dispose()
    return summary


class DeploymentRuns:
    """Each tick becomes a flow run *of its deployment* (as a worker would start it), executed in
    this process: the UI then shows every run under its deployment, with the same flow code, tagged
    with the simulated school day (``sim-day:2026-11-23``: the UI's runs filter finds a day's runs)."""

    def __init__(self, clock) -> None:
        from deploy.deployments import runner_deployments

        self.clock = clock
        self.ids = {d.name: d.apply() for d in runner_deployments()}

    def __call__(self, sp, **params):
        from prefect.client.orchestration import get_client
        from prefect.flow_engine import run_flow
        from pydantic import BaseModel

        from deploy.deployments import load_flow

        wire = {k: (v.model_dump(mode="json") if isinstance(v, BaseModel) else
                    v.isoformat() if isinstance(v, (datetime, date)) else v) for k, v in params.items()}
        with get_client(sync_client=True) as client:
            flow_run = client.create_flow_run_from_deployment(self.ids[sp.name], parameters=wire,
                                                              tags=[*sp.tags, sim_day_tag(self.clock.now())])
        return run_flow(load_flow(sp), flow_run=flow_run, parameters={**sp.parameters, **params})


def sim_day_tag(now: datetime) -> str:
    """The tag of a demo run: the simulated school day it belongs to."""
    return f"sim-day:{now.date().isoformat()}"


def _drain_prefect() -> None:
    """Send the runs' last logs and events before the server stops (else the exit waits on retries)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        try:
            worker.drain_all(timeout=30, at_exit=False)
        except Exception:  # pragma: no cover - best effort
            pass


def _summarise(factory, api_url: str, stop_at: datetime, flow_runs: Counter, staff_done: Counter, counts: dict) -> dict:
    from sqlalchemy import func, select

    from machines.states import CaseState
    from store.db import transaction
    from store.models import Case, DocumentRequest, Duty
    from store.models.notifications import AccountabilityEntry, Notification
    from store.models.reports import ReportFiling, SpotCheck

    with transaction(factory) as s:
        by_state = dict(s.execute(select(Case.state, func.count()).group_by(Case.state)).all())
        requests = dict(s.execute(select(DocumentRequest.status, func.count()).group_by(DocumentRequest.status)).all())
        req_kinds = dict(s.execute(select(DocumentRequest.kind, func.count()).group_by(DocumentRequest.kind)).all())
        try:
            from store.models.documents import Document

            docs = dict(s.execute(select(Document.kind, func.count()).group_by(Document.kind)).all())
        except Exception:
            docs = {}
        overdue = s.scalar(select(func.count()).select_from(Duty).where(Duty.status == "overdue")) or 0
        done_late = s.scalar(select(func.count()).select_from(Duty).where(Duty.done_late.is_(True))) or 0
        reports = s.execute(select(ReportFiling.level, ReportFiling.period, ReportFiling.late, ReportFiling.files)
                            .order_by(ReportFiling.level, ReportFiling.scope_code)).all()
        relapses = s.scalar(select(func.count()).select_from(Case).where(Case.relapse_of.is_not(None))) or 0
        notes = dict(s.execute(select(Notification.kind, func.count()).group_by(Notification.kind)).all())
        accountability = s.scalar(select(func.count()).select_from(AccountabilityEntry)) or 0
        spot = s.execute(select(SpotCheck.quarter, SpotCheck.seed, SpotCheck.sample)).all()
    prefect_runs = _count_flow_runs(api_url)
    return {
        "clock_stopped_at": stop_at.isoformat(sep=" "),
        "county": counts,
        "cases_by_state": {st.value: by_state.get(st.value, 0) for st in CaseState},
        "relapses": relapses,
        "documents_by_kind": docs,
        "document_requests": {"by_status": requests, "by_kind": req_kinds},
        "overdue_duties": overdue,
        "duties_done_late": done_late,
        "staff_actions": dict(staff_done),
        "notifications": notes,
        "accountability_entries": accountability,
        "reports": [{"level": lv, "period": p, "late": late, "files": files} for lv, p, late, files in reports],
        "spot_checks": [{"quarter": q, "seed": sd, "sample": smp} for q, sd, smp in spot],
        "flow_runs": {"total": prefect_runs.get("total", sum(flow_runs.values())),
                      "by_flow": prefect_runs.get("by_flow", dict(flow_runs)),
                      "by_state": prefect_runs.get("by_state", {}), **({"error": prefect_runs["error"]}
                                                                      if "error" in prefect_runs else {})},
    }


def _count_flow_runs(api_url: str) -> dict:
    """Flow runs as the Prefect server recorded them: total, by flow, by final state."""
    try:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.sorting import FlowRunSort
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            with get_client(sync_client=True) as client:
                runs, offset = [], 0
                while True:
                    page = client.read_flow_runs(limit=200, offset=offset, sort=FlowRunSort.EXPECTED_START_TIME_ASC)
                    runs += page
                    if len(page) < 200:
                        break
                    offset += 200
                names = {f.id: f.name for f in client.read_flows(limit=200)}
        return {"total": len(runs), "by_flow": dict(Counter(names.get(r.flow_id, "?") for r in runs)),
                "by_state": dict(Counter(r.state_name or "?" for r in runs))}
    except Exception as exc:  # pragma: no cover - reported, not fatal
        return {"error": repr(exc)}
