"""store.streaming.stream_rows on both databases: the rows a select gives through ``session.execute`` (joins,
expanding ``IN`` lists, PostgreSQL's array parameter, dates, JSON), in its order, read in chunks, the session
usable after; on PostgreSQL the driver's chunked stream, whose first rows arrive while the server is still
running the query (seen from a second connection in ``pg_stat_activity``)."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import case, func, literal_column, select, text

from store.models import Pupil, School
from store.models.risk import WatchEntry
from store.reporting.work_queues import ids_in
from store.streaming import stream_rows
from tests.engine_helpers import setup_store

T = datetime(2026, 12, 5, 9, 0)


def test_the_stream_gives_the_rows_and_order_execute_gives(session):
    setup_store(session, pupils_per_class=6, grades=(3, 7), schools=2)
    pupils = session.scalars(select(Pupil).order_by(Pupil.id)).all()
    for i, p in enumerate(pupils[:5]):
        session.add(WatchEntry(pupil_id=p.id, school_id=p.school_id, class_id=p.class_id, since=date(2026, 10, 1 + i),
                               until=None, rules=[{"rule": "poor", "label": "贫困生", "why": f"第{i}条"}],
                               policy="default@1", updated_at=T))
    session.flush()
    codes = session.scalars(select(School.code)).all()
    stmt = (select(Pupil.id, Pupil.name, Pupil.student_no, School.name.label("school"), WatchEntry.since, WatchEntry.rules,
                   case((Pupil.id % 2 == 0, "双"), else_="单").label("parity"))
            .join(School, School.id == Pupil.school_id).outerjoin(WatchEntry, WatchEntry.pupil_id == Pupil.id)
            .where(ids_in(session, Pupil.id, [p.id for p in pupils[1:]]), School.code.in_(codes))
            .order_by(School.code.desc(), Pupil.id))
    expected = session.execute(stmt)
    want_keys, want = list(expected.keys()), [tuple(r) for r in expected.all()]
    assert len(want) == len(pupils) - 1 and any(r[5] for r in want)  # a real list, JSON rows among them
    keys, rows = stream_rows(session, stmt, chunk=7)
    got = [tuple(r) for r in rows]
    assert keys == want_keys and got == want
    assert all(isinstance(r[4], date) for r in got if r[4] is not None)
    assert all(r[5] is None or r[5][0]["label"] == "贫困生" for r in got)  # JSON read back as JSON on either path
    # the connection is free again, the transaction intact
    assert session.scalar(select(func.count()).select_from(Pupil)) == len(pupils)
    if session.get_bind().dialect.name == "postgresql":
        _, rows = stream_rows(session, stmt, chunk=7)
        assert rows.gi_code.co_name == "_psycopg_stream"  # the driver's stream, not a result read whole
        assert [tuple(r) for r in rows] == want


def test_on_postgresql_the_first_rows_arrive_while_the_server_still_runs_the_query(session, engine):
    """The last of 1 200 rows waits half a second on the server: the first chunk is in the app's hands while
    a second connection still sees the query running (on SQLite, in-process, the rows are simply all there)."""
    if session.get_bind().dialect.name != "postgresql":  # in-process: nothing to overlap, the result read in parts
        setup_store(session, pupils_per_class=6, grades=(3, 4), schools=1)
        stmt = select(Pupil.id).order_by(Pupil.id)
        _, rows = stream_rows(session, stmt, chunk=2)
        assert rows.gi_code.co_name != "_psycopg_stream" and [r[0] for r in rows] == session.scalars(stmt).all()
        return
    g = func.generate_series(1, 1200).table_valued("n").render_derived()
    stmt = select(g.c.n, func.pg_sleep(case((g.c.n == 1200, 0.5), else_=0)).label("slept"))  # no ORDER BY: no sort
    marker = f"stream-probe-{id(stmt)}"
    stmt = stmt.where(literal_column(f"'{marker}'") == marker)
    _, rows = stream_rows(session, stmt, chunk=100)
    first = next(rows)
    with engine.connect() as other:
        states = other.execute(text("SELECT state FROM pg_stat_activity WHERE query LIKE :q AND pid <> pg_backend_pid()"),
                               {"q": f"%{marker}%"}).scalars().all()
    rest = [r[0] for r in rows]
    assert first[0] == 1 and states == ["active"]
    assert rest == list(range(2, 1201))
    assert session.scalar(select(func.count()).select_from(Pupil)) >= 0  # the session's connection is free again
