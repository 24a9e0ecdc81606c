"""A staged morning-check file is parsed once: the entry's parse is handed to the run in the same process
(keyed by the bytes' SHA-256, taken once), a run elsewhere parses the bytes again to the same rows, and a
file whose bytes changed is refused either way (store.ingest.staged)."""
from __future__ import annotations

from datetime import datetime

import pytest

from store.ingest.attendance_files import parse_attendance
from store.ingest.staged import StagedFileMissing, stage_file, staged_parse
from store.models.intake_files import StagedFile, StagedFilePart

FILE = "学校代码,学籍号,出勤状态\nS1,G1,缺勤\nS1,G2,到校\nS2,G3,病假\n".encode()
NOW = datetime(2026, 11, 16, 8, 0)


def test_the_run_takes_the_entrys_parse_once_and_refuses_changed_bytes(factory):
    parsed = parse_attendance(FILE, filename="c.csv")
    with factory() as s:
        file_id, digest = stage_file(s, FILE, "c.csv", by="user:county", now=NOW, parsed=parsed)
        assert staged_parse(s, file_id, digest, parse_attendance) is parsed  # handed over, not parsed again
        again = staged_parse(s, file_id, digest, parse_attendance)  # taken once: a retry parses the bytes
        assert again is not parsed and again.by_school == parsed.by_school
        with pytest.raises(StagedFileMissing):
            staged_parse(s, file_id, "0" * 64, parse_attendance)
        stage_file(s, FILE, "c.csv", by="user:county", now=NOW, parsed=parsed)
        s.get(StagedFilePart, (file_id, 0)).body = FILE.replace(b"G1", b"G9")  # the kept parse is never trusted over the bytes
        s.flush()
        with pytest.raises(StagedFileMissing):
            staged_parse(s, file_id, digest, parse_attendance)


def test_a_file_is_staged_in_parts_and_read_back_whole(factory, monkeypatch):
    """staged_file_parts (0020_intake3): the bytes a part a statement, read back whole and hash-checked;
    a file staged before the parts (its bytes in staged_files.body) reads back as before."""
    import store.ingest.staged as staged
    from store.ingest.staged import staged_bytes

    monkeypatch.setattr(staged, "PART_BYTES", 7)
    with factory() as s:
        file_id, digest = stage_file(s, FILE, "c.csv", by="user:county", now=NOW)
        assert s.get(StagedFile, file_id).body == b""
        assert len(s.query(StagedFilePart).filter_by(file_id=file_id).all()) == -(-len(FILE) // 7)
        assert staged_bytes(s, file_id, digest) == (FILE, "c.csv")
        old = StagedFile(sha256=digest, filename="old.csv", size=len(FILE), body=FILE, created_by="x", created_at=NOW)
        s.add(old)
        s.flush()
        assert staged_bytes(s, old.id, digest) == (FILE, "old.csv")
