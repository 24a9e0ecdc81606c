"""Shared fixtures: every store test runs on SQLite and on PostgreSQL.

Database fixtures (each test that uses one runs twice, ``[sqlite]`` and ``[postgresql]``):

``db_url``      session: the URL of this worker's database, schema not yet created. SQLite is a
                file in a temp dir; PostgreSQL is ``baoxue_test_<worker>`` created on the server
                in BAOXUE_TEST_PG_URL (`make test` starts one) and dropped at the end.
``engine``      session: ``store.db.make_engine(db_url)`` migrated to head (``store.schema.migrate``).
``session``     function: a Session inside a transaction that is rolled back after the test.
                ``session.commit()`` only releases a SAVEPOINT, so services may commit freely.
``factory``     function: a sessionmaker bound to that same rolled-back transaction, for code that
                takes a factory (``store.db.transaction(factory)``). Shares the connection with
                ``session``: fine for sequential units of work, not for concurrency.
``fresh_db``    function: a real sessionmaker on ``engine``, all tables emptied before and after
                the test; for real commits and concurrency (two sweeps at once). Do not combine
                with ``session``/``factory`` in one test (the open transaction blocks TRUNCATE).
``blank_db_url`` function: URL of a brand-new empty database of the same backend (migration tests).

Without BAOXUE_TEST_PG_URL the ``[postgresql]`` variants fail; set BAOXUE_ALLOW_NO_PG=1 to skip
them instead for a quick local run (``BAOXUE_ALLOW_NO_PG=1 .venv/bin/pytest tests/test_x.py``).

``prefect_harness`` session, opt-in: one `prefect_test_harness` for every flow test of a worker.
"""
from __future__ import annotations

import atexit
import gc
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator

# Prefect reads its settings on import: keep its state and telemetry out of the user's home.
if "PREFECT_HOME" not in os.environ:
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="baoxue-prefect-")
    atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], ignore_errors=True)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

import psycopg
import pytest
from sqlalchemy import Connection, Engine, create_engine, make_url, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from store.db import make_engine, session_factory
from store.schema import load_models, migrate

PG_ENV = "BAOXUE_TEST_PG_URL"
ALLOW_NO_PG_ENV = "BAOXUE_ALLOW_NO_PG"


def _worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _pg_server_url() -> str:
    url = os.environ.get(PG_ENV)
    if url:
        return url
    message = (
        f"{PG_ENV} is not set, so the PostgreSQL variant cannot run. Use `make test` (it starts a "
        f"throwaway cluster), export {PG_ENV}=postgresql+psycopg://user:pw@host:port/db, "
        f"or set {ALLOW_NO_PG_ENV}=1 to skip the PostgreSQL variants."
    )
    if os.environ.get(ALLOW_NO_PG_ENV) == "1":
        pytest.skip(f"PostgreSQL variant skipped: {PG_ENV} is not set and {ALLOW_NO_PG_ENV}=1")
    pytest.fail(message, pytrace=False)


class _PgDatabases:
    """Creates and drops databases next to the one in BAOXUE_TEST_PG_URL."""

    def __init__(self, server_url: str) -> None:
        self.server_url = make_url(server_url)
        self.admin = create_engine(self.server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)

    def create(self, name: str) -> str:
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        return self.server_url.set(database=name).render_as_string(hide_password=False)

    def drop(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def close(self) -> None:
        self.admin.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.db'}"
        return
    databases = _PgDatabases(_pg_server_url())
    name = f"baoxue_test_{_worker_id()}".lower()
    try:
        yield databases.create(name)
    finally:
        databases.drop(name)
        databases.close()


@pytest.fixture(scope="session")
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def _outer_connection(engine: Engine):
    """One connection holding an outer transaction that the test never commits."""
    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            yield connection
        finally:
            if transaction.is_active:
                transaction.rollback()


@pytest.fixture
def factory(engine: Engine, _outer_connection) -> sessionmaker[Session]:
    # Same options as the app's factory, bound to the test's connection; a commit releases a SAVEPOINT.
    return sessionmaker(
        **{**session_factory(engine).kw, "bind": _outer_connection, "join_transaction_mode": "create_savepoint"}
    )


@pytest.fixture
def session(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as session:
        yield session


def _close_leaked(engine: Engine) -> list[str]:
    """Close Sessions and Connections on ``engine`` still inside a transaction: each holds locks
    (on SQLite every transaction is BEGIN IMMEDIATE, so one forgotten read blocks all writers)."""
    gc.collect()
    leaked = []
    for obj in gc.get_objects():
        if isinstance(obj, Session) and obj.bind is engine and obj.in_transaction():
            leaked.append(f"Session {obj!r}")
            obj.close()
        elif isinstance(obj, Connection) and obj.engine is engine and not obj.closed and obj.in_transaction():
            leaked.append(f"Connection {obj!r}")
            obj.close()
    return leaked


def _empty_all_tables(engine: Engine, *, after_test: bool) -> None:
    leaked = _close_leaked(engine)
    tables = list(reversed(load_models().sorted_tables))
    if engine.dialect.name == "postgresql":
        names = ", ".join(engine.dialect.identifier_preparer.format_table(t) for t in tables)
        truncate = text(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        try:
            with engine.begin() as conn:
                conn.execute(text("SET LOCAL lock_timeout = '5s'"))
                conn.execute(truncate)
        except OperationalError as exc:
            if not isinstance(exc.orig, psycopg.errors.LockNotAvailable):
                raise
            # Still locked by a transaction we could not find (a raw DBAPI connection?): this
            # database belongs to this worker alone, so end every other transaction in it.
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                leaked += [f"[{state}] {query}" for _, state, query in conn.execute(text(
                    "SELECT pg_terminate_backend(pid), state, query FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
                ))]
            with engine.begin() as conn:
                conn.execute(truncate)
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
            for table in tables:
                conn.execute(table.delete())
    if leaked:
        message = f"fresh_db: transactions left open {'by' if after_test else 'before'} the test: {leaked}"
        if after_test:
            pytest.fail(message + " (close every Session, e.g. `with fresh_db() as s:`)", pytrace=False)
        warnings.warn(message, stacklevel=1)


@pytest.fixture
def fresh_db(engine: Engine) -> Iterator[sessionmaker[Session]]:
    _empty_all_tables(engine, after_test=False)
    yield session_factory(engine)
    _empty_all_tables(engine, after_test=True)


@pytest.fixture
def blank_db_url(db_url: str, tmp_path) -> Iterator[str]:
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'blank.db'}"
        return
    databases = _PgDatabases(os.environ[PG_ENV])
    name = f"baoxue_blank_{_worker_id()}_{uuid.uuid4().hex[:8]}".lower()
    try:
        yield databases.create(name)
    finally:
        databases.drop(name)
        databases.close()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
