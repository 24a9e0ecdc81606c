"""A failed render retries (issue 14, row 13).

A request that failed transiently (the archive could not be written: disk full, a path blocked)
stayed ``failed`` for good, with no retry and no requeue command. Now it waits with backoff
(attempts, next_attempt_at) and a later render run renders it; after BAOXUE_RENDER_MAX_ATTEMPTS
it is ``failed`` with the reason, listed for the operator (/runs, ``baoxue doc failed``), and
``baoxue doc requeue ID|--failed`` puts it back. The failure is real: the archive folder's path
runs through a regular file, so the archive cannot be written (also as root).
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from documents.archive import render_queued
from store.db import settings
from store.models.documents import Document
from store.models import DocumentRequest
from tests.factories_documents import climb

NOW = datetime(2026, 11, 23, 10, 0)


@pytest.fixture
def archive(tmp_path, monkeypatch):
    """(block, restore): the archive folder made unwritable, and made writable again."""
    blocker = tmp_path / "disk"
    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(blocker / "archive"))

    def block():
        blocker.write_text("not a folder")

    def restore():
        blocker.unlink()

    return block, restore


def _requests(factory) -> list[DocumentRequest]:
    with factory() as s:
        return s.scalars(select(DocumentRequest).order_by(DocumentRequest.id)).all()


def test_a_render_that_failed_transiently_is_rendered_by_a_later_run(factory, archive):
    block, restore = archive
    with factory() as s, s.begin():
        climb(s, policy="default")
    block()
    counts = render_queued(factory, limit=100, actor="system", now=NOW)
    waiting = _requests(factory)
    assert counts == {"rendered": 0, "failed": 0, "skipped": 0, "retry": len(waiting)}
    assert all(r.status == "queued" and r.attempts == 1 and r.next_attempt_at == NOW + timedelta(minutes=5)
               and "Error" in r.error and "重试" in r.error for r in waiting), [(r.status, r.error) for r in waiting]
    restore()
    # a run before the wait is over leaves them; the next one after it renders every one
    assert render_queued(factory, limit=100, actor="system", now=NOW + timedelta(minutes=2))["rendered"] == 0
    counts = render_queued(factory, limit=100, actor="system", now=NOW + timedelta(minutes=6))
    assert counts["rendered"] == len(waiting) and counts["retry"] == counts["failed"] == 0
    done = _requests(factory)
    assert all(r.status == "rendered" and r.document_id and r.next_attempt_at is None for r in done)


def _give_up(factory, block) -> DocumentRequest:
    """Block the archive and run the queue (one request per run) until the first request gives up."""
    block()
    at = NOW
    for attempt in range(1, settings().render_max_attempts + 1):
        counts = render_queued(factory, limit=1, actor="system", now=at)
        first = _requests(factory)[0]
        assert first.attempts == attempt
        if attempt < settings().render_max_attempts:
            assert counts["retry"] == 1 and first.status == "queued"
            assert first.next_attempt_at - at == timedelta(minutes=5 * 4 ** (attempt - 1))  # backoff ×4
            at = first.next_attempt_at + timedelta(minutes=1)
    assert counts["failed"] == 1
    return first


def test_after_the_last_attempt_the_request_is_failed_visibly_and_requeue_brings_it_back(fresh_db, db_url, archive):
    from cli.main import app

    block, restore = archive
    with fresh_db() as s, s.begin():
        climb(s, policy="default")
    first = _give_up(fresh_db, block)
    assert first.status == "failed" and first.next_attempt_at is None and "已尝试 5 次" in first.error
    # a later run does not pick a failed request (it takes the next one, which fails as well)
    assert render_queued(fresh_db, limit=1, actor="system", now=NOW + timedelta(days=2))["retry"] == 1
    assert (_requests(fresh_db)[0].status, _requests(fresh_db)[0].attempts) == ("failed", 5)
    runner = CliRunner()
    listed = runner.invoke(app, ["--db", db_url, "doc", "failed", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert [(r["id"], r["status"], r["attempts"]) for r in rows] == [(first.id, "failed", 5), (first.id + 1, "queued", 1)]
    assert "已尝试 5 次" in rows[0]["error"] and rows[1]["next_attempt_at"]
    restore()
    r = runner.invoke(app, ["--db", db_url, "doc", "requeue", "--failed", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["requeued"] == [first.id], r.output
    back = _requests(fresh_db)[0]
    assert back.status == "queued" and back.attempts == 0 and back.next_attempt_at is None
    assert render_queued(fresh_db, limit=1, actor="system", now=NOW + timedelta(days=2))["rendered"] == 1
    again = _requests(fresh_db)[0]
    assert again.status == "rendered"
    with fresh_db() as s:
        assert s.get(Document, again.document_id) is not None
    r = runner.invoke(app, ["--db", db_url, "doc", "requeue", str(again.id), "99999"])
    assert r.exit_code == 1 and "99999" in r.output  # a rendered or unknown request is not requeued


def test_the_operator_sees_failed_renders_on_the_runs_page(factory, archive, tmp_path):
    from fastapi.testclient import TestClient

    from store.access.accounts import Role, create_user, start_session
    from tests.web_support import in_process_app

    block, _ = archive
    with factory() as s, s.begin():
        climb(s, policy="default")
        operator = create_user(s, username="ops", password="运维口令-2026", role=Role.operator, now=NOW)
        cookie, _ = start_session(s, operator, now=NOW, hours=24 * 30)
    first = _give_up(factory, block)
    with TestClient(in_process_app(factory, tmp_path / "archive")) as client:
        client.cookies.set("baoxue_session", cookie)
        page = client.get("/runs")
    assert page.status_code == 200
    assert f"#{first.id}" in page.text and "已放弃" in page.text and "NotADirectoryError" in page.text
    assert "baoxue doc requeue" in page.text
