"""The database schema: which modules define models, and `migrate` to bring a database to head.

Every model module subclasses `store.models.Base`, so importing the modules listed in
`MODEL_MODULES` registers all tables on one `MetaData`. Alembic (store/migrations/) reads that
metadata for autogenerate, and `migrate(engine)` applies the revisions in code: the app, the CLI
and the tests all use it, nobody calls `create_all` outside the baseline revision.

From a shell: ``alembic -c store/alembic.ini upgrade head`` (BAOXUE_DATABASE_URL picks the database).
"""
from __future__ import annotations

import importlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData, text

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Modules whose import registers tables on store.models.Base. A module that does not exist yet
# is skipped; an import error inside an existing module is not.
MODEL_MODULES: list[str] = [
    "store.models",
    "store.models.documents",
    "store.models.reports",
    "store.models.notifications",
    "store.models.accounts",
    "store.models.risk",
    "store.models.reconcile",
    "store.models.prevention",
    "store.models.census",
    "store.models.calendar",
    "store.models.attachments",
    "store.models.accountability",
    "store.models.report_work",  # issue 17: report duties, versions, weekly counts, 季查 results
    "store.models.leave",
    "store.models.intake_files",  # issue 20: a county's morning-check file, named by its run
]

# pg_advisory_xact_lock key, so two processes starting at once do not both run the migrations.
_MIGRATION_LOCK = 0x6261_6F78  # "baox"


def load_models() -> MetaData:
    """Import every module in `MODEL_MODULES` and return the metadata they share."""
    for name in MODEL_MODULES:
        importlib.import_module(name)
    from store.models import Base

    return Base.metadata


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config built in code (no ini file, so the caller's logging is left alone)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision``, in one transaction."""
    config = alembic_config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
