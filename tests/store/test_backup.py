"""Backup and restore (store.backup, `baoxue backup`): a populated store — cases in several states,
their events, duties, helpers, document requests, documents rendered into the archive, a visit
photo, accounts — is backed up (pg_dump / SQLite online backup + the archive folder), restored into
a brand-new database and folder, and exported again: the full canonical export (every row of
every table, sorted) and the archive's file hashes are equal, and every document file matches the
SHA-256 the database recorded. The restored store keeps working (its id sequences continue).
"""
from __future__ import annotations

import json
import time
from datetime import date, datetime

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from store.backup import BackupError, archive_files, canonical_export, check_backup, create_backup, restore_backup, verify_archive
from store.cases.context import CaseContext
from store.db import make_engine, session_factory, transaction
from store.models.documents import DocumentFile
from store.models import Case, Pupil, School
from tests.engine_helpers import THREE_HELPERS, morning, setup_store, sweep

DAYS = [date(2026, 11, 16), date(2026, 11, 17), date(2026, 11, 18), date(2026, 11, 19)]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64 + b"visit"


@pytest.fixture
def archive(tmp_path, monkeypatch):
    folder = tmp_path / "archive"
    folder.mkdir()
    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(folder))
    return folder


def populate(factory, archive) -> dict[str, int]:
    """A week of one school: absent, escalated, visited (with a photo), returned, excused cases; documents."""
    from documents.archive import render_for_case, render_queued
    from store.access.accounts import create_user
    from store.cases.actions import act
    from store.cases.attachments import save

    with transaction(factory) as s:
        code, pupils = setup_store(s, pupils_per_class=4)
        create_user(s, username="clerk", password="pw-2026-backup", role="county", now=datetime(2026, 11, 16, 7, 0))
    for n, day in enumerate(DAYS):
        away = pupils[:5] if n < 2 else pupils[:3]  # 4 and 5 are back on Wednesday
        morning(factory, code, day, away, statuses={pupils[6]: "病假"} if n == 0 else None, complete=True)
        sweep(factory, day, datetime.min.time().replace(hour=18))
    with transaction(factory) as s:
        ids = {no: s.scalar(select(Case.id).join(Pupil, Pupil.id == Case.pupil_id).where(Pupil.student_no == no)
                            .order_by(Case.id.desc())) for no in pupils[:3]}
        at = datetime(2026, 11, 19, 19, 0)
        photo = save(s, ids[pupils[0]], PNG, "家访.png", actor="user:teacher", now=at, archive_dir=archive,
                     max_bytes=5 * 1024 * 1024, images_only=True)
        act(s, CaseContext(s), ids[pupils[0]], "record_home_visit", actor="user:teacher", at=at, now=at,
            note="见到祖母", payload={"photos": [{"attachment_id": photo.id, "caption": "家访"}]})
        act(s, CaseContext(s), ids[pupils[1]], "assign_helpers", actor="user:school", at=at, now=at,
            payload={"helpers": THREE_HELPERS})
        act(s, CaseContext(s), ids[pupils[2]], "excuse", actor="user:school", at=at, now=at, reason="opened_in_error")
        render_for_case(s, ids[pupils[0]], "home_visit_record", actor="user:teacher", fmt="pdf", now=at)
    render_queued(factory, limit=6, now=datetime(2026, 11, 19, 20, 0))
    with transaction(factory) as s:
        states = dict(s.execute(select(Case.state, func.count()).group_by(Case.state)).all())
    return states


def test_a_backup_restored_into_a_new_database_and_folder_is_the_same_store(fresh_db, engine, blank_db_url, archive,
                                                                            tmp_path, monkeypatch):
    db_url = engine.url.render_as_string(hide_password=False)
    states = populate(fresh_db, archive)
    assert len(states) >= 3 and {"returned", "excused"} <= set(states)  # several states, closed ones too
    before = canonical_export(db_url)
    files_before = archive_files(archive)
    checked, problems = verify_archive(db_url, archive)
    assert checked >= 2 and problems == []
    assert len(files_before) >= 3 and any(rel.startswith("attachments/") for rel in files_before)

    t0 = time.monotonic()
    made = create_backup(db_url, archive, tmp_path / "backup", now=datetime(2026, 12, 1, 18, 0))
    restored_archive = tmp_path / "restored-archive"
    restored = restore_backup(tmp_path / "backup", blank_db_url, restored_archive)
    seconds = time.monotonic() - t0

    after = canonical_export(blank_db_url)
    assert sorted(after) == sorted(before)
    for table in before:
        assert after[table] == before[table], table
    assert archive_files(restored_archive) == files_before
    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(restored_archive))
    assert verify_archive(blank_db_url, restored_archive) == (checked, [])
    rows = sum(len(v) for v in before.values())
    assert restored.tables == made.tables and sum(made.tables.values()) == rows
    for table in ("cases", "case_events", "duties", "documents", "document_files", "document_requests", "users"):
        assert made.tables[table] > 0, table
    print(f"backup/restore: {rows} rows in {len(before)} tables compared, {len(files_before)} archive files, "
          f"{checked} document files verified, {seconds:.1f} s ({made.backend})")

    # the restored store keeps working: a new morning check opens a case with a fresh id, and a
    # document issued from the restored archive is the archived one, byte for byte
    from documents.archive import render_for_case, verify_file
    restored_engine = make_engine(blank_db_url)
    try:
        factory = session_factory(restored_engine)
        with transaction(factory) as s:
            top = s.scalar(select(func.max(Case.id)))
            pupil = s.scalars(select(Pupil.student_no).order_by(Pupil.id.desc())).first()
            school = s.scalar(select(School.code).join(Pupil, Pupil.school_id == School.id).where(Pupil.student_no == pupil))
        result = morning(factory, school, date(2026, 11, 20), [pupil], complete=False)
        assert result.opened and min(result.opened) > top
        with transaction(factory) as s:
            doc_id, path = s.execute(select(DocumentFile.id, DocumentFile.path).order_by(DocumentFile.id)).first()
            assert verify_file(s, restored_archive / path).id == doc_id
    finally:
        restored_engine.dispose()


def test_a_damaged_backup_or_a_used_target_is_refused(fresh_db, engine, blank_db_url, archive, tmp_path):
    db_url = engine.url.render_as_string(hide_password=False)
    with transaction(fresh_db) as s:
        setup_store(s, pupils_per_class=1)
    (archive / "ab").mkdir()
    (archive / "ab" / "doc.pdf").write_bytes(b"%PDF-1.7 issued")
    create_backup(db_url, archive, tmp_path / "backup", now=datetime(2026, 12, 1, 18, 0))
    with pytest.raises(BackupError, match="不是空的"):
        create_backup(db_url, archive, tmp_path / "backup", now=datetime(2026, 12, 1, 18, 0))
    with pytest.raises(BackupError, match="不是空的|已存在"):
        restore_backup(tmp_path / "backup", db_url, tmp_path / "a2")  # the live database is not empty
    copy = tmp_path / "backup" / "archive" / "ab" / "doc.pdf"
    copy.write_bytes(b"%PDF-1.7 tampered")
    with pytest.raises(BackupError, match="损坏"):
        check_backup(tmp_path / "backup")
    with pytest.raises(BackupError, match="损坏"):
        restore_backup(tmp_path / "backup", blank_db_url, tmp_path / "a3")
    assert not (tmp_path / "a3").exists()  # nothing was restored from a damaged backup


def test_the_backup_commands(fresh_db, engine, blank_db_url, archive, tmp_path, monkeypatch):
    from cli.main import app

    db_url = engine.url.render_as_string(hide_password=False)
    with transaction(fresh_db) as s:
        code, pupils = setup_store(s, pupils_per_class=1)
    morning(fresh_db, code, DAYS[0], pupils[:1])
    runner = CliRunner()
    r = runner.invoke(app, ["--db", db_url, "backup", "create", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    assert runner.invoke(app, ["backup", "check", str(tmp_path / "b")]).exit_code == 0
    r = runner.invoke(app, ["backup", "restore", str(tmp_path / "b"), "--to-db", blank_db_url,
                            "--to-archive", str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    assert "恢复完成" in r.output
    assert canonical_export(blank_db_url) == canonical_export(db_url)
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["tables"]["cases"] == 1 and manifest["backend"] == make_engine(db_url).dialect.name
