"""Crash (issue 7.1): the worker is killed with SIGKILL at random moments of an advance and of a
document batch, then restarted; the result must equal a run that was never interrupted.

Each test builds a template database once, runs the real code (``store.cases.advance.advance``, the
sweep's batches; ``documents.render_queued``, the render task's batch) in a forked worker process
on a copy to get the reference, then for each seeded trial takes a fresh copy, starts a worker,
SIGKILLs it at a seeded random moment (once or twice per trial: a third of the kills at a random
delay within the reference run's duration, start-up included; the rest of the advance's kills at a
random delay within one batch's time after a random batch k has committed, as the worker counts
them in shared memory), and runs a worker to completion. Checked per trial, against the reference and on their own: every case in
the same state and version, every event once ((case, seq) unique and gap-free), the same duties,
every document request once, every document once with its own 发文字号 (gap-free per issuer), its
file on disk with the archived SHA-256. Small batches make the kills land inside the run.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from store.cases.advance import advance
from tests.reliability_support import (
    AS_OF, RENDER_NOW, Databases, advance_worker, count, crash_trials, open_cases, render_worker, summary,
)

pytestmark = pytest.mark.slow

ADVANCE_TRIALS = 10
DOCUMENT_TRIALS = 4


@pytest.fixture
def databases(db_url: str, tmp_path: Path):
    dbs = Databases(db_url, tmp_path, "crash")
    yield dbs
    dbs.close()


def _advanced(snap: dict) -> int:
    """What the advance writes: escalation events and overdue marks."""
    return count(snap, "events", lambda e: e[2] == "escalate") + count(snap, "duties", lambda d: d[5] == "overdue")


def test_an_advance_killed_at_random_moments_and_restarted_moves_every_case_exactly_once(databases):
    databases.build_template(lambda f: open_cases(f, pupils_per_class=9))
    reference, trials, problems = crash_trials(
        databases, trials=ADVANCE_TRIALS, seed=7, worker=advance_worker,
        args_for=lambda url, _archive: (url, AS_OF, 2), done=_advanced)
    print(f"\nadvance crash: {summary(trials)}; reference {_advanced(reference)} transitions+overdue marks")
    assert count(reference, "events", lambda e: e[2] == "escalate") == 12 * 5 + 6 * 3  # Monday's to day 5, Wednesday's to day 3
    assert not problems, "\n".join(problems)
    assert any(0 < p < 1 for t in trials for p in t.progress), "some kill must land in the middle of the run"


def _queue(factory) -> None:
    open_cases(factory, pupils_per_class=1)  # one case to day 5, one to day 3
    advance(factory, AS_OF)


def test_a_document_batch_killed_at_random_moments_and_restarted_issues_every_document_once(databases, tmp_path):
    databases.build_template(_queue)
    reference, trials, problems = crash_trials(
        databases, trials=DOCUMENT_TRIALS, seed=11, worker=render_worker,
        args_for=lambda url, archive: (url, str(archive), RENDER_NOW, 1000),
        done=lambda snap: len(snap["documents"]), archive_root=tmp_path / "archives")
    print(f"\ndocument crash: {summary(trials)}; reference {len(reference['documents'])} documents, "
          f"{count(reference, 'documents', lambda d: d[5] is not None)} numbered")
    # two cases' ladder papers (the 控辍方案 and the 书面通报 now follow staff actions, not the sweep)
    assert len(reference["documents"]) == len(reference["requests"]) >= 8
    assert all(r[3] == "rendered" for r in reference["requests"]) and reference["files_on_disk"]
    assert count(reference, "documents", lambda d: d[5] is not None) >= 2
    assert not problems, "\n".join(problems)
    assert any(0 < p < 1 for t in trials for p in t.progress)
