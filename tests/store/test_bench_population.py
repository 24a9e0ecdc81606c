"""The benchmark's population generator writes raw rows (COPY / executemany), bypassing the ORM's
defaults: when a column becomes NOT NULL it must learn it, or ``make bench`` breaks. A tiny
population is generated on each database and the product's own sweep runs on it."""
from __future__ import annotations

import importlib
import pkgutil

import pytest
from sqlalchemy import func, make_url, select

import store.models
from bench.generate import AS_OF, COLUMNS, Population, build
from store.cases.advance import advance
from store.db import make_engine, session_factory
from store.models import Base, Case


def test_the_generator_fills_every_column_the_schema_requires():
    for m in pkgutil.iter_modules(store.models.__path__):
        importlib.import_module(f"store.models.{m.name}")
    missing = []
    for table, cols in COLUMNS.items():
        given = {c.strip() for c in cols.split(",")}
        missing += [f"{table}.{c.name}" for c in Base.metadata.tables[table].columns
                    if c.name not in given and not c.nullable and c.server_default is None and not c.primary_key]
    assert missing == []


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    """A database the generator creates itself (it writes its own schema, as ``make bench`` does)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bench.sqlite'}"
        return
    from tests.conftest import _PgDatabases, _pg_server_url, _worker_id

    server = _pg_server_url()
    name = f"baoxue_benchgen_{_worker_id()}".lower()
    yield make_url(server).set(database=name).render_as_string(hide_password=False)
    dbs = _PgDatabases(server)
    dbs.drop(name)
    dbs.close()


def test_a_generated_population_sweeps_under_the_product(empty_url):
    db_url = empty_url
    pop = Population(3_000, 600, 60, 100, seed=5)
    counts = build(db_url, pop, quiet=True)["counts"]
    assert counts["pupils"] == 3_000 and counts["cases"] >= 600
    engine = make_engine(db_url)
    factory = session_factory(engine)
    report = advance(factory, AS_OF)
    assert report.total_transitions >= 60 and report.skipped == []  # every due case moved
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Case)) == counts["cases"]
    engine.dispose()
