"""A watch-list duty is done by what was already done (issue 18 item 2, the watch list's share).

Two rules of a policy may ask the same act of a watched pupil's helper — 家校联系 (``home_contact``) for a
留守儿童 and again when absences rise or after a relapse; 学业辅导 and 心理关爱 likewise. When the refresh raises
a duty for a rule the pupil has just met, the helper may already have done that act for the entry that day
(she called home at 13:45 for the 留守 rule; the refresh at 18:00 finds absences rising and asks for a call
by the day after tomorrow). Such a duty is created done, pointing at the act (``done_event_id``: the
``duty_done`` event that recorded it; ``done_at`` its time); so is a duty the overdue marking would mark, when
the act was recorded after the duty was raised (the other rule's duty was done first).

The act counts from the start of the day the duty was raised: a call a month ago does not answer a rule met
today (the case ladder's credit counts acts since the case opened; a watch entry lasts for months). Only an
act recorded by its own duty counts (not another credit), so a credit never points at a credit.
"""
from __future__ import annotations

from datetime import datetime, time

from sqlalchemy import ColumnElement, and_, bindparam, func, select, update
from sqlalchemy.orm import Session, aliased

from store.models.risk import WatchDuty, WatchEvent

UNDONE = ("open", "overdue")


def credit_watch_duties(session: Session, *where: ColumnElement[bool]) -> int:
    """Mark done the open or overdue watch duties matching ``where`` (on :class:`WatchDuty`) whose act was
    already recorded on their entry: another duty of the same action on the same entry done by its own act on
    or after the day the duty was raised. Set-based: one select of the candidates, one of their acts' events,
    one executemany UPDATE. Returns how many."""
    act = aliased(WatchDuty)
    pairs = session.execute(
        select(WatchDuty.id, WatchDuty.created_at, act.id, act.done_at)
        .join(act, and_(act.entry_id == WatchDuty.entry_id, act.action == WatchDuty.action, act.id != WatchDuty.id))
        .where(*where, WatchDuty.status.in_(UNDONE), act.status == "done", act.done_at.is_not(None),
               act.done_event_id.is_(None), act.done_at >= func.date(WatchDuty.created_at))
        .order_by(WatchDuty.id, act.done_at, act.id)).all()
    first: dict[int, tuple[datetime, int]] = {}
    for duty_id, created, act_id, done_at in pairs:
        if duty_id not in first and done_at >= datetime.combine(created.date(), time.min):
            first[duty_id] = (done_at, act_id)
    if not first:
        return 0
    acts = {a for _, a in first.values()}
    events = {}
    for ev_id, payload in session.execute(select(WatchEvent.id, WatchEvent.payload).where(
            WatchEvent.event == "duty_done",
            WatchEvent.entry_id.in_(select(WatchDuty.entry_id).where(WatchDuty.id.in_(acts)))).order_by(WatchEvent.id)):
        events.setdefault((payload or {}).get("duty_id"), ev_id)
    rows = [{"did": d, "done_at": at, "ev": events.get(a)} for d, (at, a) in first.items() if events.get(a)]
    if rows:
        t = WatchDuty.__table__
        session.execute(update(t).where(t.c.id == bindparam("did"), t.c.status.in_(UNDONE))
                        .values(status="done", done_at=bindparam("done_at"), done_event_id=bindparam("ev")), rows)
        for obj in list(session.identity_map.values()):  # loaded duties are read again
            if isinstance(obj, WatchDuty) and obj.id in first:
                session.expire(obj)
    return len(rows)
