"""Settings, engine and session factory. No engine is created at import time."""
from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_DB = Path("out") / "baoxue.db"
DEFAULT_SECRET_KEY = "change-me-in-production"


class Settings(BaseSettings):
    """Read once from the environment (``BAOXUE_*``)."""

    model_config = SettingsConfigDict(env_prefix="BAOXUE_", extra="ignore")

    database_url: str = f"sqlite:///{DEFAULT_DB}"
    policy_dir: Path | None = None     # default: the shipped deploy/policies
    calendar_dir: Path | None = None   # default: the shipped deploy/calendars
    archive_dir: Path | None = None    # default: the folder `archive` beside a SQLite database (see below)
    font_dir: Path | None = None       # a bureau's licensed fonts (方正小标宋, 仿宋_GB2312)
    secret_key: str = DEFAULT_SECRET_KEY  # signs the login form and what the web app hands to a worker
    # bounds on what an upload may make the server read (store/ingest/tabular.py, web/app.py): one setting each,
    # each named in its error message so an operator knows what to raise
    upload_max_mb: int = 10            # BAOXUE_UPLOAD_MAX_MB: an uploaded table (roster, census, morning check)
    request_max_mb: int = 64           # BAOXUE_REQUEST_MAX_MB: a whole request body (a visit's photos), cut off while it streams
    table_max_rows: int = 50000        # BAOXUE_TABLE_MAX_ROWS: rows of a CSV or a worksheet (declared or read)
    table_max_columns: int = 200       # BAOXUE_TABLE_MAX_COLUMNS: columns of a worksheet (declared or read)
    xlsx_max_unpacked_mb: int = 200    # BAOXUE_XLSX_MAX_UNPACKED_MB: a workbook unpacking to more is refused (zip bomb)
    render_max_attempts: int = 5       # BAOXUE_RENDER_MAX_ATTEMPTS: a render failing transiently is tried this often, then failed
    render_retry_minutes: int = 5      # BAOXUE_RENDER_RETRY_MINUTES: the first retry's wait, ×4 for each further one
    production: bool = False  # BAOXUE_PRODUCTION=1: refuse to start with the default or a short secret_key

    @model_validator(mode="after")
    def _real_secret_in_production(self) -> "Settings":
        if self.production and (self.secret_key == DEFAULT_SECRET_KEY or len(self.secret_key) < 32):
            raise ValueError("BAOXUE_SECRET_KEY must be set to a random value of at least 32 characters in production "
                             "(生产环境须设置 BAOXUE_SECRET_KEY，至少 32 位随机字符)")
        return self

    @model_validator(mode="after")
    def _archive_beside_the_database(self) -> "Settings":
        """The archive defaults to the folder beside a SQLite database (out/baoxue.db → out/archive),
        whatever the current directory; with a server database, to ./out/archive until set
        (production sets BAOXUE_ARCHIVE_DIR). Always an absolute path, fixed when read."""
        if self.archive_dir is None:
            self.archive_dir = default_archive_dir(self.database_url)
        self.archive_dir = Path(self.archive_dir).expanduser().resolve()
        return self


def default_archive_dir(database_url: str) -> Path:
    """The document archive that belongs to ``database_url``: ``archive/`` beside a SQLite file."""
    if database_url.startswith("sqlite:///") and not database_url.endswith(":memory:"):
        return Path(database_url.split("///", 1)[1]).expanduser().resolve().parent / "archive"
    return (Path("out") / "archive").resolve()


@lru_cache
def settings() -> Settings:
    return Settings()


WAL_AUTOCHECKPOINT_PAGES = 8192  # SQLite: ~32 MB of 4 kB pages (see _sqlite_pragmas)
SQLITE_CACHE_KIB = 65536         # SQLite: 64 MB page cache a connection (see _sqlite_pragmas)
SQLITE_MMAP_BYTES = 268435456    # SQLite: up to 256 MB of the file read through mapped pages
LEAN_CACHE_KIB = 2048            # SQLite: the page cache of a pass that reads a table once (lean_pages)


def make_engine(url: str | None = None, *, echo: bool = False) -> Engine:
    """An engine for ``url``: SQLite in WAL mode with write-locking transactions, or PostgreSQL."""
    url = url or settings().database_url
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"timeout": 60, "check_same_thread": False})
        _sqlite_pragmas(engine)
        return engine
    engine = create_engine(url, echo=echo, pool_pre_ping=True, pool_size=5, max_overflow=10)
    _postgres_session(engine)
    return engine


def _postgres_session(engine: Engine) -> None:
    """No JIT compilation: the product's statements are short index walks whose cost *estimates* at
    province scale pass ``jit_above_cost``; PostgreSQL then spent 0.3–0.7 s compiling a 10 ms statement
    (the sweep's steps, the county's watch-list summary — docs/performance.md, sections sweep2 and risk).
    Set per connection, so a pooler or a shared cluster's settings are not touched."""
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):  # pragma: no cover - exercised by every PostgreSQL test
        with dbapi_conn.cursor() as cur:
            cur.execute("SET jit = off")
        dbapi_conn.commit()


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):  # pragma: no cover - exercised by every SQLite test
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")  # 64 MB page cache: index inserts into a county-size file
        cur.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")   # read through the OS page cache
        # checkpoint the WAL into the database file every ~32 MB, not every 4 MB (the default): each
        # checkpoint writes back every page the WAL holds and syncs, so a page that several commits
        # change (the index leaves of a sweep's batches) is written once, not once per commit. Bulk
        # runs end with their own checkpoint (store.db.checkpoint, called by store.cases.advance.advance).
        cur.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):  # BEGIN IMMEDIATE: one writer at a time, no lock-upgrade deadlocks
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def checkpoint(factory: sessionmaker[Session]) -> None:
    """SQLite: write the WAL back into the database file now (PASSIVE: readers are not waited for).
    The end of a bulk run (the sweep), so its cost is paid within it; PostgreSQL: nothing to do."""
    engine = factory.kw["bind"]
    if isinstance(engine, Engine) and engine.dialect.name == "sqlite":  # (not a Connection in a caller's transaction)
        raw = engine.raw_connection()  # outside any transaction (a Connection would BEGIN IMMEDIATE)
        try:
            raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            raw.close()


@contextmanager
def one_checkpoint(factory: sessionmaker[Session]) -> Iterator[sessionmaker[Session]]:
    """A bulk run's transactions (the sweep's batches): on SQLite, on one connection that does not
    checkpoint the WAL when a commit makes it long (``wal_autocheckpoint``), and one PASSIVE checkpoint at
    the end — the index pages several batches change are written back into the file once, not once per
    checkpoint the batches would cross. PostgreSQL (or a caller's connection): ``factory`` as it is."""
    engine = factory.kw["bind"]
    if not (isinstance(engine, Engine) and engine.dialect.name == "sqlite"):
        yield factory
        return
    with engine.connect() as conn:
        raw = conn.connection.driver_connection  # a PRAGMA outside any transaction (no BEGIN IMMEDIATE)
        raw.execute("PRAGMA wal_autocheckpoint=0")
        try:
            yield sessionmaker(**{**factory.kw, "bind": conn})
        finally:
            if conn.in_transaction():
                conn.rollback()
            raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            raw.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")


@contextmanager
def lean_pages(session: Session) -> Iterator[None]:
    """SQLite: within the block, ``session``'s connection keeps a small page cache (``LEAN_CACHE_KIB``) and
    maps none of the file (``mmap_size=0``); the connection's settings are put back after. For a pass that
    reads a table once, or writes pages it will not read again (a county file's vet against the whole roster,
    the staged file's parts): with the connection's usual 64 MB cache and 256 MB of mapped file, such a pass
    leaves the process as large as the table it read (a 1 M-pupil roster: +150 MB peak RSS), so the county
    entry's memory grew with the file's rows (docs/performance.md, section sqlite). The pages come from the
    OS's file cache either way. PostgreSQL: nothing to do."""
    conn = session.connection()
    if conn.dialect.name != "sqlite":
        yield
        return
    raw = conn.connection.driver_connection
    raw.execute(f"PRAGMA cache_size=-{LEAN_CACHE_KIB}")
    raw.execute("PRAGMA mmap_size=0")
    try:
        yield
    finally:
        raw.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        raw.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")


def is_postgres(bind) -> bool:
    return bind.dialect.name == "postgresql"


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error."""
    with factory() as session, session.begin():
        yield session
