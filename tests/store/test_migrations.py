"""Alembic revisions and the models describe the same schema, on SQLite and PostgreSQL."""
from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text

from store.db import make_engine
from store.schema import alembic_config, current_revision, head_revision, load_models, migrate


def _schema_diff(engine) -> list:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return compare_metadata(context, load_models())


def test_upgrade_to_head_creates_exactly_the_models_schema(blank_db_url):
    engine = make_engine(blank_db_url)
    try:
        migrate(engine)
        assert current_revision(engine) == head_revision()
        assert _schema_diff(engine) == []
    finally:
        engine.dispose()


def test_migrate_twice_is_a_no_op(blank_db_url):
    engine = make_engine(blank_db_url)
    try:
        migrate(engine)
        migrate(engine)
        assert current_revision(engine) == head_revision()
        assert _schema_diff(engine) == []
    finally:
        engine.dispose()


def test_downgrade_to_base_removes_every_model_table(blank_db_url):
    engine = make_engine(blank_db_url)
    try:
        migrate(engine)
        config = alembic_config()
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
        left = set(inspect(engine).get_table_names()) & set(load_models().tables)
        assert left == set()
        assert current_revision(engine) is None
    finally:
        engine.dispose()


# -- the conftest fixtures themselves ------------------------------------------------------------
def test_session_fixture_rolls_back_between_tests_part_1(session):
    session.execute(text("INSERT INTO jurisdictions (code, name, level) VALUES ('T-1', 'test', 'county')"))
    session.commit()  # releases the SAVEPOINT only
    assert session.scalar(text("SELECT count(*) FROM jurisdictions WHERE code = 'T-1'")) == 1


def test_session_fixture_rolls_back_between_tests_part_2(session):
    assert session.scalar(text("SELECT count(*) FROM jurisdictions WHERE code = 'T-1'")) == 0


def test_fresh_db_starts_empty_and_commits_for_real(fresh_db):
    from store.models import Jurisdiction

    with fresh_db() as s, s.begin():
        assert s.scalars(select(Jurisdiction)).all() == []
        s.add(Jurisdiction(code="F-1", name="县", level="county"))
    with fresh_db() as s:
        assert s.scalar(select(Jurisdiction.name).where(Jurisdiction.code == "F-1")) == "县"


def test_an_older_database_gets_the_cases_special_groups_from_their_pupils(blank_db_url):
    """0002 on a database made before ``cases.special_groups`` existed: the column is added and
    filled from each case's pupil; the schema is then the models' one."""
    from datetime import date, datetime

    from store.db import session_factory, transaction
    from store.models import Case, Pupil
    from tests.engine_helpers import setup_store

    engine = make_engine(blank_db_url)
    try:
        migrate(engine, "0001")
        with transaction(session_factory(engine)) as s:
            setup_store(s, pupils_per_class=2, grades=(3,), schools=1)
            pupils = s.scalars(select(Pupil).order_by(Pupil.id).limit(2)).all()
            pupils[0].special_groups, pupils[1].special_groups = ["left_behind", "poor"], []
            now = datetime(2026, 11, 16, 8)
            for p in pupils:
                s.add(Case(pupil_id=p.id, school_id=p.school_id, class_id=p.class_id, state="absent", version=1,
                           policy_name="default", policy_version=1, calendar_key="default", opened_on=date(2026, 11, 16),
                           opened_seq=1, created_at=now, updated_at=now))
        with engine.begin() as conn:  # the table as the baseline made it before the column existed
            conn.execute(text("ALTER TABLE cases DROP COLUMN special_groups"))
        migrate(engine)
        assert current_revision(engine) == head_revision()
        assert _schema_diff(engine) == []
        with transaction(session_factory(engine)) as s:
            assert s.execute(select(Case.special_groups).order_by(Case.id)).scalars().all() == [["left_behind", "poor"], []]
    finally:
        engine.dispose()


def test_an_older_database_gets_the_late_marks_table(blank_db_url):
    """0003 on a database made before ``late_marks`` existed: the table and its indexes are created,
    and the schema is then the models' one."""
    engine = make_engine(blank_db_url)
    try:
        migrate(engine, "0002")
        with engine.begin() as conn:  # the schema as the baseline made it before the table existed
            conn.execute(text("DROP TABLE late_marks"))
        migrate(engine)
        assert current_revision(engine) == head_revision()
        assert _schema_diff(engine) == []
    finally:
        engine.dispose()


def test_an_older_database_gets_the_calendar_duties_table(blank_db_url):
    """0004 on a database made before ``calendar_duties`` existed: the table is created; the schema is the models'."""
    engine = make_engine(blank_db_url)
    try:
        migrate(engine, "0003_late_marks")
        with engine.begin() as conn:  # the schema as the baseline made it before the table existed
            conn.execute(text("DROP TABLE calendar_duties"))
        migrate(engine)
        assert current_revision(engine) == head_revision()
        assert _schema_diff(engine) == []
    finally:
        engine.dispose()


def test_an_older_database_gets_the_render_retry_columns(blank_db_url):
    """0005 on a database made before ``document_requests.attempts/next_attempt_at`` existed: the
    columns are added (its requests at 0 attempts, due now); the schema is then the models' one."""
    engine = make_engine(blank_db_url)
    try:
        migrate(engine, "0004")
        with engine.begin() as conn:  # the table as the baseline made it before the columns existed
            conn.execute(text("ALTER TABLE document_requests DROP COLUMN attempts"))
            conn.execute(text("ALTER TABLE document_requests DROP COLUMN next_attempt_at"))
        migrate(engine)
        assert current_revision(engine) == head_revision()
        assert _schema_diff(engine) == []
    finally:
        engine.dispose()


def test_an_older_database_gets_the_attachments_table(blank_db_url):
    """0006 on a database made before attachments existed: the table is created, and the schema is
    then exactly the models' one (downgrading to 0005 drops it again)."""
    engine = make_engine(blank_db_url)
    try:
        migrate(engine, "0005_render_retries")
        with engine.begin() as conn:  # the schema as a database at 0005 had it
            conn.execute(text("DROP INDEX ix_attachments_case"))
            conn.execute(text("DROP TABLE attachments"))
        migrate(engine)
        assert current_revision(engine) == head_revision()
        assert _schema_diff(engine) == []
        config = alembic_config()
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0005_render_retries")
        assert "attachments" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()
