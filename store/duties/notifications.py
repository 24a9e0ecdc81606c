"""Duty reminders through a notification outbox, and the accountability record (DOMAIN.md §3, §5).

A duty that falls due soon gets a reminder; a duty past its deadline gets an overdue notice to
its owner and an entry in the accountability record — a case duty and a census, prevention or
watch-list duty alike (:mod:`store.duties.ledger`). Each is keyed (``duty:<id>:reminder``,
``duty:<id>:overdue``, ``duty:<id>``; ``census_duty:<id>…``, ``prevention_duty:<id>…``,
``watch_duty:<id>…`` for the other kinds) and the keys are unique, so however often the sweep runs
a duty is reminded once and recorded once.

Delivery is separate: :func:`deliver` hands queued rows to a :class:`Channel`. The default
:class:`OutboxChannel` keeps the message in the table and writes the log; a
:class:`WebhookChannel` posts JSON to an SMS/email gateway. Message bodies carry masked names only.
"""
from __future__ import annotations

import json
import logging
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from machines.identity import mask_name
from machines.states import OPEN_STATES

from store.duties.ledger import DutyRef, listed
from store.models import Case, Duty, School, Staff
from store.models.notifications import AccountabilityEntry, Notification

log = logging.getLogger("baoxue.notifications")
OPEN = [s.value for s in OPEN_STATES]


@dataclass
class ReminderReport:
    reminders: list[int] = field(default_factory=list)     # notification ids queued now
    overdue_notices: list[int] = field(default_factory=list)
    accountability: list[int] = field(default_factory=list)  # entry ids recorded now

    def as_dict(self) -> dict:
        return {"reminders": len(self.reminders), "overdue_notices": len(self.overdue_notices),
                "accountability": len(self.accountability)}


def _existing_keys(session: Session, model, keys: list[str]) -> set[str]:
    out: set[str] = set()
    for i in range(0, len(keys), 500):
        out |= set(session.scalars(select(model.key).where(model.key.in_(keys[i:i + 500]))))
    return out


def _done_late_rows(session: Session, since: datetime, limit: int) -> list[dict]:
    """Case duties done after their deadline lately, in the shape of :func:`store.duties.ledger.listed`'s rows."""
    q = (select(Duty, Case.state, School.name).join(Case, Case.id == Duty.case_id)
         .join(School, School.id == Case.school_id)
         .where(Duty.status == "done", Duty.done_late.is_(True), Duty.done_at > since).order_by(Duty.due_at, Duty.id).limit(limit))
    return [{"kind": "case", "duty_id": d.id, "ref_id": d.case_id, "key": DutyRef("case", d.id).key, "action": d.action, "step": d.step,
             "role": d.role, "owner_id": d.owner_id, "due_at": d.due_at, "done_at": d.done_at, "status": d.status,
             "state": state, "school": school} for d, state, school in session.execute(q)]


def _message(kind: str, d: dict, as_of: datetime):
    """Subject and body of a reminder or overdue notice; ``d`` is a ledger row with masked names."""
    action = d["action_label"]
    owner_txt = mask_name(d["owner"]) if d["owner"] else "（未指定责任人）"
    ref = (f"案件 {d['ref_id']}，{d['context']}" if d["kind"] == "case" else f"{d['kind_label']} #{d['ref_id']}，{d['context']}")
    pupil = f"学生 {d['pupil']}" if d["kind"] != "census" else f"适龄儿童 {d['pupil']}"
    if d["pupil"] is None:  # a report or weekly count (kind report_due): no pupil
        pupil = ""
    if kind == "duty_reminder":
        subject = f"【控辍保学提醒】{action} 将于 {d['due_at']:%m-%d %H:%M} 到期"
        body = f"{owner_txt}：{d['school']} {pupil}（{ref}）的「{action}」应于 {d['due_at']:%Y-%m-%d %H:%M} 前完成并录入。"
    else:
        subject = f"【控辍保学逾期】{action} 已逾期 {d['hours_overdue']} 小时"
        body = (f"{owner_txt}：{d['school']} {pupil}（{ref}）的「{action}」应于 {d['due_at']:%Y-%m-%d %H:%M} 前完成，"
                f"至今未录入，已记入责任追究记录。")
    return subject, body


def queue_duty_notices(session: Session, as_of: datetime, *, remind_within: timedelta = timedelta(hours=2),
                       limit: int = 5000) -> ReminderReport:
    """Queue reminders for duties due within ``remind_within`` and overdue notices plus
    accountability entries for duties past due — duties of every kind (case ladder, census,
    prevention, watch list: :mod:`store.duties.ledger`); returns what was written now (no commit)."""
    report = ReminderReport()
    soon = listed(session, as_of, statuses=("open",), due_after=as_of, due_by=as_of + remind_within, masked=True, limit=limit)
    late = listed(session, as_of, due_by=as_of, masked=True, limit=limit)
    for kind, rows, bucket in (("duty_reminder", soon, report.reminders), ("duty_overdue", late, report.overdue_notices)):
        suffix = "reminder" if kind == "duty_reminder" else "overdue"
        keys = [f"{d['key']}:{suffix}" for d in rows]
        seen = _existing_keys(session, Notification, keys)
        new = []
        for key, d in zip(keys, rows):
            if key in seen:
                continue
            subject, body = _message(kind, d, as_of)
            case = d["kind"] == "case"
            new.append({"key": key, "kind": kind, "channel": "outbox", "staff_id": d["owner_id"], "role": d["role"],
                        "case_id": d["ref_id"] if case else None, "duty_id": d["duty_id"] if case else None,
                        "subject": subject, "body": body, "status": "queued",
                        "attempts": 0, "created_at": as_of, "sent_at": None, "error": None})
        if new:
            bucket += list(session.scalars(insert(Notification).returning(Notification.id, sort_by_parameter_order=True), new))
    # Evidence for 责任追究: duties still undone past their deadline, and case duties done after it.
    late = [{**d, "done_at": None} for d in late] + _done_late_rows(session, as_of - timedelta(days=14), limit)
    keys = [d["key"] for d in late]
    seen = _existing_keys(session, AccountabilityEntry, keys)
    entries = [{
        "key": d["key"], "ground": "late_action" if d["status"] == "done" else "no_timely_action", "staff_id": d["owner_id"],
        "role": d["role"], "case_id": d["ref_id"] if d["kind"] == "case" else None,
        "duty_id": d["duty_id"] if d["kind"] == "case" else None, "report_filing_id": None, "due_at": d["due_at"],
        "recorded_at": as_of,
        "detail": {"action": d["action"], **({"step": d["step"]} if d["kind"] == "case" else
                                             {"kind": d["kind"], "duty_id": d["duty_id"], "ref_id": d["ref_id"]}),
                   "school": d["school"], "hours_overdue": round(((d["done_at"] or as_of) - d["due_at"]).total_seconds() / 3600, 1)},
    } for d in late if d["key"] not in seen]
    if entries:
        report.accountability = list(session.scalars(
            insert(AccountabilityEntry).returning(AccountabilityEntry.id, sort_by_parameter_order=True), entries))
    return report


def record_late_report(session: Session, *, filing_id: int, level: str, scope: str, due_on, filed_at: datetime,
                       staff_id: int | None, role: str | None) -> int | None:
    """The accountability entry (and notice) for a periodic report filed after its due date."""
    key = f"report:{filing_id}"
    if session.scalar(select(AccountabilityEntry.id).where(AccountabilityEntry.key == key)):
        return None
    entry = AccountabilityEntry(key=key, ground="late_report", staff_id=staff_id, role=role, case_id=None,
                                duty_id=None, report_filing_id=filing_id,
                                due_at=datetime.combine(due_on, datetime.max.time()).replace(microsecond=0),
                                recorded_at=filed_at, detail={"level": level, "scope": scope})
    session.add(entry)
    session.add(Notification(key=f"report:{filing_id}:late", kind="report_late", channel="outbox", staff_id=staff_id,
                             role=role, subject=f"【控辍保学】{scope} 报告逾期报送",
                             body=f"{scope} 应于 {due_on} 前报送的报告于 {filed_at:%Y-%m-%d %H:%M} 报送，已逾期。",
                             status="queued", attempts=0, created_at=filed_at))
    session.flush()
    return entry.id


# -- delivery ------------------------------------------------------------------------------------
class Channel(Protocol):
    name: str

    def send(self, note: Notification, recipient_phone: str | None) -> None: ...


class OutboxChannel:
    """The default: the outbox row is the message; the log line says it was issued (masked)."""

    name = "outbox"

    def send(self, note: Notification, recipient_phone: str | None) -> None:
        log.info("notification %s → %s: %s", note.key, note.role or "-", note.subject)


class WebhookChannel:
    """POST ``{"to", "subject", "body", "key"}`` as JSON to an SMS/e-mail gateway of the bureau."""

    name = "webhook"

    def __init__(self, url: str, *, timeout: float = 10.0):
        self.url, self.timeout = url, timeout

    def send(self, note: Notification, recipient_phone: str | None) -> None:
        data = json.dumps({"to": recipient_phone, "subject": note.subject, "body": note.body, "key": note.key},
                          ensure_ascii=False).encode()
        req = urllib.request.Request(self.url, data=data, headers={"Content-Type": "application/json",
                                                                   "Idempotency-Key": note.key})
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - configured URL
            if resp.status >= 300:
                raise RuntimeError(f"webhook answered {resp.status}")


def channel_from_settings(webhook_url: str | None) -> Channel:
    return WebhookChannel(webhook_url) if webhook_url else OutboxChannel()


def deliver(session: Session, channel: Channel, now: datetime, *, limit: int = 500) -> dict[str, int]:
    """Send up to ``limit`` queued notifications through ``channel`` (no commit)."""
    q = select(Notification).where(Notification.status == "queued").order_by(Notification.id).limit(limit)
    if session.bind.dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    sent = failed = 0
    notes = session.scalars(q).all()
    phones = dict(session.execute(select(Staff.id, Staff.phone).where(
        Staff.id.in_({n.staff_id for n in notes if n.staff_id}))).all()) if notes else {}
    for note in notes:
        note.attempts += 1
        note.channel = channel.name
        try:
            channel.send(note, phones.get(note.staff_id))
        except Exception as exc:  # one bad recipient must not stop the others
            note.error = str(exc)[:500]
            if note.attempts >= 3:
                note.status = "failed"
            failed += 1
            continue
        note.status, note.sent_at, note.error = "sent", now, None
        sent += 1
    return {"sent": sent, "failed": failed}
