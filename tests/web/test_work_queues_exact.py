"""The work queues' fast queries (issue 18, 1 M cases) show what a straightforward query shows: the same
rows in the same order on every page, the same capped counts and the same owner choices as sorting the
whole duty ledger (one UNION over every kind) in Python; the watch list's month outcomes as counting its
entries in Python. On both databases, on the small county of test_work_queues."""
from __future__ import annotations

from collections import Counter
from datetime import date

import pytest
from sqlalchemy import and_, or_, select

from machines.vocabulary import DROPOUT_STATES
from store.access.scope import Scope
from store.duties.ledger import ledger, row_dict
from store.models import Case, Duty, School, Staff
from store.models.risk import WatchDuty, WatchEntry
from store.prevention import risk
from store.reporting import work_queues as wq
from tests.web.test_work_queues import NOW, site  # noqa: F401  (the fixture)


def _reference(s, scope: Scope, *, kind=None, school_id=None, owner_id=None, step=None) -> list[dict]:
    """Every overdue duty of the queue kinds, filtered, in (due time, kind, id) order — no index, no limit."""
    u = ledger(due_by=NOW, kinds=(kind,) if kind else wq.QUEUE_KINDS)
    q = (select(u, School.name.label("school"), School.code.label("school_code"), School.policy_name.label("policy_name"),
                Staff.name.label("owner")).outerjoin(School, School.id == u.c.school_id)
         .outerjoin(Staff, Staff.id == u.c.owner_id))
    q = scope.apply(q, school_col=u.c.school_id, class_col=u.c.class_id)
    rows = [dict(r) for r in s.execute(q).mappings()]
    rows = [r for r in rows if (school_id is None or r["school_id"] == school_id)
            and (owner_id is None or r["owner_id"] == (owner_id or None)) and (not step or r["state"] == step)]
    return sorted(rows, key=lambda r: (r["due_at"], r["kind"], r["id"]))


def _ids(rows) -> list[tuple[str, int]]:
    return [(r["kind"], r.get("duty_id", r.get("id"))) for r in rows]


def _scopes(s, site):
    home = s.get(School, site["ids"]["home"])
    return [Scope(), Scope(township_ids=frozenset({home.township_id})), Scope(school_ids=frozenset({home.id}))]


def _shuffle_due_times(s) -> None:
    """Due times against id order (the fixture made them in due order): an order read by id alone would show."""
    for model, col in ((Duty, "due_at"), (WatchDuty, "due_on")):
        duties = s.scalars(select(model).where(model.status.in_(("open", "overdue"))).order_by(model.id)).all()
        dues = sorted(getattr(d, col) for d in duties)
        for d, due in zip(duties, reversed(dues[1::2] + dues[0::2])):
            setattr(d, col, due)
    s.flush()


def test_every_page_of_the_stuck_list_is_the_reference_query_cut_into_pages(site, factory, monkeypatch):
    monkeypatch.setattr(wq, "COUNT_CAP", 7)  # counts stop early: the cap and "7+" are exercised too
    with factory() as s:
        assert s.scalar(select(WatchDuty.id).where(WatchDuty.status.in_(("open", "overdue"))))
        _shuffle_due_times(s)
        for scope in _scopes(s, site):
            for kind in (*wq.QUEUE_KINDS, None):
                ref = _reference(s, scope, kind=kind)
                per = 5
                for page in range(1, -(-len(ref) // per) + 2):
                    got = wq.stuck_queue(s, scope, NOW, kind=kind, paging=wq.Paging(page, per))
                    assert _ids(got["rows"]) == _ids(ref[(page - 1) * per:page * per]), (scope, kind, page)
                    assert (got["total"], got["capped"]) == (min(len(ref), 7), len(ref) > 7)
                top = ref[:7]  # by owner, school or kind: the longest overdue (the cap), regrouped
                for sort, key in (("owner", lambda r: (r["owner"] or "", r["owner_id"] or 0)),
                                  ("school", lambda r: (r["school_code"] or "",)), ("kind", lambda r: (r["kind"],))):
                    got = wq.stuck_queue(s, scope, NOW, kind=kind, sort=sort, paging=wq.Paging(1, 20))
                    want = sorted(top, key=lambda r: (*key(r), r["due_at"], r["id"]))
                    if kind is None or sort != "kind":
                        assert _ids(got["rows"]) == _ids(want), (scope, kind, sort)
                    else:  # one kind sorted "by kind" is the overdue order
                        assert _ids(got["rows"]) == _ids(ref[:20])
            tabs = {t["kind"]: (t["count"], t["capped"]) for t in wq.stuck_tabs(s, scope, NOW)}
            assert tabs == {k: (min(len(r), 7), len(r) > 7) for k in wq.QUEUE_KINDS
                            for r in [_reference(s, scope, kind=k)]}
            tabs_list = wq.stuck_tabs(s, scope, NOW)
            for kind in (*wq.QUEUE_KINDS, None):  # the page's count read from the tabs equals its own count
                with_tabs = wq.stuck_queue(s, scope, NOW, kind=kind, tabs=tabs_list)
                alone = wq.stuck_queue(s, scope, NOW, kind=kind)
                assert (with_tabs["total"], with_tabs["capped"]) == (alone["total"], alone["capped"])


def test_filters_and_owner_choices_match_the_reference(site, factory, monkeypatch):
    monkeypatch.setattr(wq, "OWNER_SAMPLE", 6)
    with factory() as s:
        _shuffle_due_times(s)
        county = Scope()
        everything = _reference(s, county)
        owner = Counter(r["owner_id"] for r in everything if r["owner_id"]).most_common(1)[0][0]
        for kind in ("case", "watch", None):
            for f in ({"owner_id": owner}, {"owner_id": 0}, {"school_id": site["ids"]["home"]}, {"step": "absent"},
                      {"step": "collective_visit"}):
                ref = _reference(s, county, kind=kind, **f)
                got = wq.stuck_queue(s, county, NOW, kind=kind, paging=wq.Paging(1, 100), **f)
                assert _ids(got["rows"]) == _ids(ref) and got["total"] == len(ref), (kind, f)
            sample = _reference(s, county, kind=kind)
            sample = sorted(sample, key=lambda r: (r["due_at"], r["id"]))[:6]
            want = Counter(r["owner_id"] for r in sample if r["owner_id"])
            got = wq.stuck_owners(s, county, NOW, kind=kind)
            assert {o["id"]: o["count"] for o in got} == dict(want)
            assert [o["count"] for o in got] == sorted((o["count"] for o in got), reverse=True)


def test_the_case_list_by_deadline_is_each_open_cases_next_duty_in_order(site, factory):
    with factory() as s:
        _shuffle_due_times(s)
        for scope in _scopes(s, site):
            nxt = {}
            for cid, due, did in s.execute(select(Duty.case_id, Duty.due_at, Duty.id).join(Case, Case.id == Duty.case_id)
                                           .where(Duty.status.in_(("open", "overdue")),
                                                  Case.state.in_(wq.OPEN))):
                nxt[cid] = min(nxt.get(cid, (due, did)), (due, did))
            allowed = set(s.scalars(scope.apply(select(Case.id))))
            want = sorted((v, cid) for cid, v in nxt.items() if cid in allowed)
            got = wq.case_queue(s, scope, NOW, sort="due", paging=wq.Paging(1, 100))
            assert [r["id"] for r in got["rows"]] == [cid for _, cid in want] and got["total"] == len(want)


def _outcomes_in_python(s, school_ids, start: date, end: date) -> dict:
    """The month outcomes counted row by row (the definition)."""
    overlap = and_(WatchEntry.school_id.in_(school_ids), WatchEntry.since <= end,
                   or_(WatchEntry.until.is_(None), WatchEntry.until >= start))
    rows = s.execute(select(WatchEntry.pupil_id, WatchEntry.since, WatchEntry.until, WatchEntry.rules).where(overlap)).all()
    pupils = {r.pupil_id for r in rows}
    on_watch = [r for r in rows if r.until is None or r.until > end]
    by_rule = Counter(rule["rule"] for r in on_watch for rule in r.rules or [])
    cases = s.execute(select(Case.pupil_id, Case.state, Case.opened_on, Case.closed_on)).all()
    dropped = {c.pupil_id for c in cases if c.state in {x.value for x in DROPOUT_STATES} and c.opened_on <= end}
    returned = {c.pupil_id for c in cases if c.state == "returned" and c.closed_on and start <= c.closed_on <= end}
    return {"on_watch": len({r.pupil_id for r in on_watch}), "added": len({r.pupil_id for r in rows if start <= r.since <= end}),
            "left": len({r.pupil_id for r in rows if r.until is not None and start <= r.until <= end}),
            "watched": len(pupils), "dropped_out": len(dropped & pupils), "returned": len(returned & pupils),
            "by_rule": dict(sorted(by_rule.items()))}


def test_the_watch_lists_month_outcomes_are_counted_in_the_database_alike(site, factory):
    with factory() as s:
        entries = s.scalars(select(WatchEntry).order_by(WatchEntry.id)).all()
        entries[0].until = date(2026, 11, 20)   # one left in the month, one added later, one with two rules
        entries[1].since = date(2026, 12, 3)
        entries[2].rules = [*entries[2].rules, {"rule": "poor", "label": "贫困", "why": "test"}]
        s.flush()
        every = [x.id for x in s.scalars(select(School))]
        for ids in (every, [site["ids"]["home"]], [site["ids"]["far"]], []):
            for start, end in ((date(2026, 11, 1), date(2026, 11, 30)), (date(2026, 12, 1), date(2026, 12, 31)),
                               (date(2026, 10, 1), date(2026, 10, 31))):
                want = _outcomes_in_python(s, ids or [-1], start, end)
                assert risk.watch_outcomes(s, ids, start, end) == want, (ids, start)
        assert risk.watch_outcomes(s, None, date(2026, 11, 1), date(2026, 11, 30)) == \
            _outcomes_in_python(s, every, date(2026, 11, 1), date(2026, 11, 30))
        want = _outcomes_in_python(s, every, date(2026, 11, 1), date(2026, 11, 30))
        assert risk.watch_outcomes(s, None, date(2026, 11, 1), date(2026, 11, 30), by_rule=False) == \
            {k: v for k, v in want.items() if k != "by_rule"}
        s.rollback()


def test_a_home_list_of_more_than_200_duties_says_there_are_more(site, factory):
    """The home page lists the 200 soonest due of the reader's own duties and says when there are more."""
    from datetime import timedelta

    from store.models.accounts import User
    from tests.web.test_work_queues import _as

    with factory() as s:
        teacher = s.scalar(select(User).where(User.username == "teacher"))
        entry = s.scalar(select(WatchEntry).where(WatchEntry.school_id == site["ids"]["home"]).order_by(WatchEntry.id))
        page = _as(site, "teacher").get("/stuck").text
        assert 'id="my-duties-more"' not in page
        s.add_all([WatchDuty(entry_id=entry.id, rule_id=f"r{i}", action="home_contact", role="head_teacher", status="open",
                             created_at=NOW, owner_id=teacher.staff_id, due_on=NOW.date() + timedelta(days=1 + i % 9))
                   for i in range(201)])
        s.commit()
    page = _as(site, "teacher").get("/stuck").text
    listed = page.split('id="my-duties"')[1].split("</table>")[0].count("<tr") - 1
    assert listed == 200 and 'id="my-duties-more"' in page and f"owner={teacher.staff_id}" in page


@pytest.mark.parametrize("walk_from", [0, 2_000])
def test_the_case_list_searched_by_name_number_or_id_is_the_reference_query(site, factory, monkeypatch, walk_from):
    """/cases?q=: a one-character name (many pupils), a longer one, a 学籍号 and an ID number find the cases
    of the pupils whose name begins so or whose number is it, within the reader's scope, in every sort, paged,
    with the capped count — as filtering every case in Python finds them."""
    import random
    from datetime import timedelta

    from store.models import Pupil

    monkeypatch.setattr(wq, "COUNT_CAP", 7)
    monkeypatch.setattr(wq, "WALK_FROM", walk_from)  # 0: PostgreSQL walks the list's order for every search
    rng = random.Random(18)
    with factory() as s:
        proto = s.scalar(select(Case).order_by(Case.id))
        taken = set(s.scalars(select(Case.pupil_id)))
        pupils = s.scalars(select(Pupil).order_by(Pupil.id)).all()
        for i, p in enumerate(pupils):  # names against id order: 万 first, 万思 a few of them, 王 (not 万) others
            p.name = ("万思" + "甲乙丙"[i % 3]) if i % 7 == 0 else ("万" + "春秋冬"[i % 3]) if i % 3 == 0 else "王" + "一二"[i % 2]
            if p.id in taken:
                continue
            closed = i % 5 == 0  # a closed case is not listed (the list shows open cases)
            s.add(Case(pupil_id=p.id, school_id=p.school_id, class_id=p.class_id, state="returned" if closed else "absent",
                       policy_name=proto.policy_name, policy_version=proto.policy_version,
                       calendar_key=proto.calendar_key, opened_on=proto.opened_on - timedelta(days=rng.randrange(40)),
                       opened_seq=proto.opened_seq, closed_on=proto.opened_on if closed else None, reason="unknown",
                       created_at=NOW, updated_at=NOW))
        s.flush()
        assert len([p for p in pupils if p.name.startswith("万")]) >= 20
        probe = s.get(Pupil, s.scalar(select(Case.pupil_id).where(Case.state == "absent").order_by(Case.id.desc())))
        cases = s.execute(select(Case.id, Case.school_id, Case.opened_on, Case.state, Pupil.name, Pupil.student_no,
                                 Pupil.id_number).join(Pupil, Pupil.id == Case.pupil_id)).all()
        for scope in _scopes(s, site):
            allowed = set(s.scalars(scope.apply(select(Case.id))))
            for q in ("万", "万思", " 万思甲 ", probe.student_no, probe.id_number.lower(), "万%", "无此人"):
                t = q.strip()
                hit = [c for c in cases if c.id in allowed and c.state in wq.OPEN and (
                    c.name.startswith(t) or c.student_no == t or (len(t) == 18 and c.id_number == t.upper()))]
                for sort, key in (("opened", lambda c: (c.opened_on, c.id)), ("id", lambda c: -c.id),
                                  ("school", lambda c: (c.school_id, c.opened_on, c.id))):
                    want = [c.id for c in sorted(hit, key=key)]
                    for page in range(1, -(-len(want) // 5) + 2):
                        got = wq.case_queue(s, scope, NOW, q=q, sort=sort, paging=wq.Paging(page, 5))
                        assert [r["id"] for r in got["rows"]] == want[(page - 1) * 5:page * 5], (scope, q, sort, page)
                        assert (got["total"], got["capped"]) == (min(len(want), 7), len(want) > 7), (scope, q)
                        if sort != "opened":
                            break
                got = wq.case_queue(s, scope, NOW, q=q, sort="due", paging=wq.Paging(1, 100))
                assert {r["id"] for r in got["rows"]} <= {c.id for c in hit}, (scope, q)
        s.rollback()
