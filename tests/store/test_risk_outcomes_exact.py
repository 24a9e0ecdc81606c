"""The watch list's month outcomes (the /risk box and the monthly report read ``risk.watch_outcomes``) count
pupils, not entries or cases, at the month's edges, on both databases — compared with a straightforward
reference that reads every entry and every case of the month into Python."""
from __future__ import annotations

from collections import Counter
from datetime import date, datetime

from sqlalchemy import select

from machines.vocabulary import DROPOUT_STATES
from store.models import Case, Pupil, School
from store.models.risk import WatchEntry
from store.prevention import risk
from tests.engine_helpers import setup_store

MONTHS = [(date(2026, 10, 1), date(2026, 10, 31)), (date(2026, 11, 1), date(2026, 11, 30)),
          (date(2026, 12, 1), date(2026, 12, 31))]
T = datetime(2026, 12, 5, 9, 0)


def _reference(s, school_ids, start: date, end: date) -> dict:
    """Every entry and every case read, the month's pupils counted as sets (the definition, row by row)."""
    entries = [e for e in s.scalars(select(WatchEntry))
               if (school_ids is None or e.school_id in school_ids) and e.since <= end and (e.until is None or e.until >= start)]
    watched = {e.pupil_id for e in entries}
    on_watch = [e for e in entries if e.until is None or e.until > end]
    dropout = {x.value for x in DROPOUT_STATES}
    cases = s.scalars(select(Case).where(Case.pupil_id.in_(watched or {-1}))).all()
    return {"on_watch": len({e.pupil_id for e in on_watch}), "added": len({e.pupil_id for e in entries if e.since >= start}),
            "left": len({e.pupil_id for e in entries if e.until is not None and start <= e.until <= end}),
            "watched": len(watched),
            "dropped_out": len({c.pupil_id for c in cases if c.state in dropout and c.opened_on <= end}),
            "returned": len({c.pupil_id for c in cases if c.state == "returned" and c.closed_on and start <= c.closed_on <= end}),
            "by_rule": dict(sorted(Counter(r["rule"] for e in on_watch for r in e.rules or []).items()))}


def test_the_month_outcomes_count_each_pupil_once_at_the_months_edges(session, monkeypatch):
    setup_store(session, pupils_per_class=6, grades=(3, 7), schools=2)
    a, b = session.scalars(select(School).order_by(School.id)).all()[:2]
    pa = session.scalars(select(Pupil).where(Pupil.school_id == a.id).order_by(Pupil.id)).all()
    class_b = session.scalar(select(Pupil.class_id).where(Pupil.school_id == b.id).limit(1))
    assert len(pa) >= 11
    p = pa[:11]

    def watch(i, since, until=None, school=a, rule="poor"):
        session.add(WatchEntry(pupil_id=p[i].id, school_id=school.id, class_id=class_b if school is b else p[i].class_id,
                               since=since, until=until, rules=[{"rule": rule, "label": rule, "why": "test"}],
                               policy="default@1", updated_at=T))

    def case_(i, state, opened, closed=None):
        session.add(Case(pupil_id=p[i].id, school_id=a.id, class_id=p[i].class_id, state=state, version=1,
                         policy_name="default", policy_version=1, calendar_key="default", opened_on=opened, opened_seq=1,
                         closed_on=closed, created_at=T, updated_at=T))

    d = date
    watch(0, d(2026, 10, 1), d(2026, 11, 10))                 # watched at two schools in the month: left A, joined B
    watch(0, d(2026, 11, 12), school=b, rule="left_behind")
    case_(0, "returned", d(2026, 10, 28), d(2026, 11, 1))      # two cases: returned on the month's first day …
    case_(0, "collective_visit", d(2026, 11, 5))               # … and a dropout since
    watch(1, d(2026, 10, 1))
    case_(1, "returned", d(2026, 11, 10), d(2026, 11, 15))     # two cases returned in the month: once
    case_(1, "returned", d(2026, 11, 25), d(2026, 11, 30))     # (the month's last day)
    watch(2, d(2026, 10, 1))
    case_(2, "returned", d(2026, 10, 20), d(2026, 10, 31))     # the day before the month …
    case_(2, "returned", d(2026, 11, 28), d(2026, 12, 1))      # … and the day after
    watch(3, d(2026, 10, 1))
    case_(3, "township_notice", d(2026, 12, 2))                # a dropout opened after the month
    watch(4, d(2026, 11, 30))                                   # added on the month's last day
    case_(4, "escalated", d(2026, 11, 30))                     # handed outside: a dropout
    watch(5, d(2026, 9, 1), d(2026, 10, 31))                   # left before the month: not watched in it
    case_(5, "judicial_notice", d(2026, 10, 1))
    watch(6, d(2026, 12, 1))                                    # added after the month
    case_(6, "collective_visit", d(2026, 11, 2))
    watch(7, d(2026, 11, 1), d(2026, 11, 30))                  # added on the first day, left on the last
    case_(7, "judicial_notice", d(2026, 11, 30))
    case_(8, "collective_visit", d(2026, 11, 3))               # a dropout never watched
    watch(9, d(2026, 10, 1), d(2026, 11, 3))                   # twice at the same school in the month
    watch(9, d(2026, 11, 20))
    case_(9, "absent", d(2026, 11, 25))
    watch(10, d(2026, 10, 1))                                   # watched, no case
    session.flush()

    # the reference itself, checked by hand for November, the county and school B
    nov = MONTHS[1]
    assert _reference(session, None, *nov) == {"on_watch": 7, "added": 4, "left": 3, "watched": 8, "dropped_out": 3,
                                                "returned": 2, "by_rule": {"left_behind": 1, "poor": 6}}
    assert _reference(session, {b.id}, *nov) == {"on_watch": 1, "added": 1, "left": 0, "watched": 1, "dropped_out": 1,
                                                  "returned": 1, "by_rule": {"left_behind": 1}}
    pg = session.get_bind().dialect.name == "postgresql"
    # the county's merge join (PostgreSQL, chosen at province scale) and the probes, both against the reference
    # the merge cut into 1, 2, 3 or 11 ranges of pupil ids (11: one watched pupil or none in each range)
    for merge, parts in (((False, 1), (True, 1), (True, 2), (True, 3), (True, 11)) if pg else ((False, 1),)):
        monkeypatch.setattr(risk, "_merge_pays", lambda s, merge=merge: merge)
        monkeypatch.setattr(risk, "_parts", lambda s, parts=parts: parts)
        for ids in (None, [a.id, b.id], [a.id], [b.id], []):
            for start, end in MONTHS:
                want = _reference(session, None if ids is None else set(ids), start, end)
                assert risk.watch_outcomes(session, ids, start, end) == want, (ids, start, merge, parts)
                assert risk.watch_outcomes(session, ids, start, end, by_rule=False) == \
                    {k: v for k, v in want.items() if k != "by_rule"}, (ids, start, merge, parts)
    if pg:  # the planner's settings are the transaction's own again after the merge
        from sqlalchemy import text

        assert session.execute(text("SELECT current_setting('enable_nestloop'), current_setting('enable_hashjoin')")).one() \
            == ("on", "on")


def test_the_county_merge_is_cut_into_the_servers_parallel_workers_and_counts_an_empty_list(session, monkeypatch):
    """PostgreSQL: as many pupil-id ranges as the server's parallel workers per query (0 workers: one range);
    no watch entry at all: zeros, not an error from the ranges of an empty list."""
    if session.get_bind().dialect.name != "postgresql":
        assert risk.watch_outcomes(session, None, *MONTHS[0], by_rule=False)["watched"] == 0
        return
    from sqlalchemy import text

    for workers, parts in (("0", 1), ("2", 2), ("4", 4)):
        session.execute(text("SELECT set_config('max_parallel_workers_per_gather', :w, true)"), {"w": workers})
        assert risk._parts(session) == parts
    monkeypatch.setattr(risk, "_merge_pays", lambda s: True)
    assert risk.watch_outcomes(session, None, *MONTHS[0], by_rule=False) == \
        {"on_watch": 0, "added": 0, "left": 0, "watched": 0, "dropped_out": 0, "returned": 0}
