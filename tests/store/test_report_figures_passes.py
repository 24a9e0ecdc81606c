"""The report read model's grouped pass (``store.reporting.reports.ledger_figures_many``, issue 6):
dropouts whose reason is none of the vocabulary's are counted as they are (the pass's second, exact
query), and over every school the pass reads the cases table itself, not an index and a row per entry.
"""
from __future__ import annotations

import random
from datetime import datetime

from sqlalchemy import event, select, update

from store.models import Case
from store.reporting import reports as rp
from tests.store.test_report_figures_grouped import project, random_ledger, reference_figures


def test_reasons_outside_the_vocabulary_are_counted_as_they_are(session):
    rng = random.Random(61)
    random_ledger(session, rng)
    ids = session.scalars(select(Case.id).where(Case.state.in_(rp.DROPOUT)).order_by(Case.id)).all()
    session.execute(update(Case).where(Case.id.in_(ids[::3])).values(reason="legacy_code"))  # an older import's reason
    session.flush()
    period = rp.month_period(2026, 11)
    every = [sc for level in rp.LEVELS for sc in rp.scopes(session, level)]
    for as_of in (datetime(2026, 11, 20, 17), datetime(2026, 12, 15, 9)):  # changed since the cut-off, and not
        for scope, got in zip(every, rp.ledger_figures_many(session, every, period, as_of)):
            want = reference_figures(session, scope, period, as_of)
            assert project(got, want) == want, (as_of, scope.level, scope.code)
    county = rp.ledger_figures_many(session, rp.scopes(session, "county"), period, datetime(2026, 12, 15, 9))[0]
    assert county["reasons"]["legacy_code"] > 0 and "legacy_code" not in rp.REASONS


def test_the_pass_over_every_school_reads_the_table(session):
    random_ledger(session, random.Random(5))
    conn = session.connection()
    seen: list[tuple[str, object]] = []

    def keep(_conn, _cursor, statement, parameters, _context, _many):
        if "GROUP BY cases.class_id, cases.school_id" in statement:
            seen.append((statement, parameters))

    event.listen(conn, "before_cursor_execute", keep)
    try:
        rp.ledger_figures_many(session, rp.scopes(session, "county"), rp.month_period(2026, 11), datetime(2026, 12, 15, 9))
    finally:
        event.remove(conn, "before_cursor_execute", keep)
    assert seen, "the grouped pass over the cases"
    statement, parameters = seen[0]
    explain = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
    plan = " ".join(str(row) for row in conn.exec_driver_sql(explain + statement, parameters))
    assert "ix_cases_opened_keys" not in plan and "ix_cases_school_state" not in plan, plan
    assert "cases.school_id IN" not in statement  # every school: no filter
