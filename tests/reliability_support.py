"""Shared pieces of the reliability tests (issue 7): databases copied from a template, a small
population with a due set, a snapshot of everything an advance or a document batch writes, and
workers that run the real code in a separate OS process so a test can SIGKILL them.

Workers are forked from a ``forkserver`` that has imported the store and the documents package
and warmed WeasyPrint up once (``tests.reliability_worker``), so a worker starts in milliseconds
and a kill at a random delay lands inside the run rather than inside ``import``. Each worker makes
its own engine and connections after the fork; ``Process.kill()`` is a real ``SIGKILL``.
"""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import random
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import create_engine, make_url, select, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from store.db import make_engine, session_factory, transaction
from store.schema import migrate

MON, TUE, WED, THU, FRI = (date(2026, 11, d) for d in range(16, 21))
AS_OF = datetime(2026, 11, 20, 19, 0)        # Friday evening: day 5 for Monday's cases, day 3 for Wednesday's
RENDER_NOW = datetime(2026, 11, 20, 20, 0)


def worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


# -- databases ----------------------------------------------------------------------------------------
class Databases:
    """A template database of one backend and throwaway copies of it.

    SQLite: files in ``folder`` (the template is checkpointed and closed, then copied).
    PostgreSQL: ``CREATE DATABASE … TEMPLATE …`` on the server of ``base_url``.
    """

    def __init__(self, base_url: str, folder: Path, tag: str):
        self.url = make_url(base_url)
        self.postgres = self.url.get_backend_name() == "postgresql"
        self.folder = folder
        self.prefix = f"rel_{worker_id()}_{tag}".lower()
        self.made: list[str] = []
        self.admin = create_engine(self.url, isolation_level="AUTOCOMMIT", poolclass=NullPool) if self.postgres else None

    def _url(self, name: str) -> str:
        if self.postgres:
            return self.url.set(database=name).render_as_string(hide_password=False)
        return f"sqlite:///{self.folder / (name + '.db')}"

    def build_template(self, populate: Callable[[sessionmaker[Session]], None]) -> None:
        name = self.prefix + "_tmpl"
        if self.postgres:
            self._drop(name)
            with self.admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            self.made.append(name)
        engine = make_engine(self._url(name))
        try:
            migrate(engine)
            populate(session_factory(engine))
        finally:
            engine.dispose()

    def copy(self, suffix: str) -> str:
        name, template = f"{self.prefix}_{suffix}", self.prefix + "_tmpl"
        if self.postgres:
            self._drop(name)
            with self.admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
                # PostgreSQL ≥ 15 copies a database through WAL records (STRATEGY WAL_LOG), each sequence page
                # with the WAL-ahead credit (log_cnt) its template had: the copy's next nextval() calls write no
                # WAL until that credit runs out, so a crash before then restores the sequence to the copied
                # value, below ids already committed. A checkpoint puts the copied pages behind the redo
                # point, and PostgreSQL WAL-logs the first nextval() after a checkpoint.
                conn.execute(text("CHECKPOINT"))
            self.made.append(name)
        else:
            # nobody is connected to the template: its file and WAL (if any is left) are consistent
            for ext in ("", "-wal"):
                target = Path(f"{self.folder / name}.db{ext}")
                target.unlink(missing_ok=True)
                source = Path(f"{self.folder / template}.db{ext}")
                if source.exists():
                    shutil.copyfile(source, target)
            Path(f"{self.folder / name}.db-shm").unlink(missing_ok=True)
        return self._url(name)

    def wait_for_no_sessions(self, url: str, timeout: float = 30.0) -> None:
        """Until no backend is connected to ``url``'s database (a killed worker's server process has
        noticed its client is gone and rolled back). Nothing to wait for on SQLite: the OS drops a
        dead process's file locks at once."""
        if not self.postgres:
            return
        name = make_url(url).database
        deadline = time.monotonic() + timeout
        with self.admin.connect() as conn:
            while conn.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d"), {"d": name}):
                if time.monotonic() > deadline:
                    raise AssertionError(f"a killed worker's session on {name} did not end in {timeout} s")
                time.sleep(0.02)

    def _drop(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def drop(self, url: str) -> None:
        name = make_url(url).database
        if self.postgres:
            self._drop(name)
            if name in self.made:
                self.made.remove(name)
        else:
            for ext in ("", "-wal", "-shm"):
                Path(name + ext).unlink(missing_ok=True)

    def close(self) -> None:
        if self.postgres:
            for name in list(self.made):
                self._drop(name)
            self.admin.dispose()


# -- the population -------------------------------------------------------------------------------
def open_cases(factory: sessionmaker[Session], *, pupils_per_class: int, seed: int = 1) -> int:
    """A one-school county; two thirds of the pupils absent from Monday, the rest also from Wednesday
    (two cohorts at different steps on Friday). Returns the number of cases opened."""
    from tests.engine_helpers import morning, setup_store

    with transaction(factory) as s:
        code, pupils = setup_store(s, pupils_per_class=pupils_per_class, grades=(3, 7), seed=seed)
    early = pupils[: len(pupils) * 2 // 3]
    morning(factory, code, MON, early)
    morning(factory, code, WED, pupils)
    return len(pupils)


# -- what a run wrote ---------------------------------------------------------------------------------
def snapshot(factory: sessionmaker[Session], archive: Path | None = None) -> dict[str, Any]:
    """Everything an advance or a document batch writes, without surrogate ids (which may differ
    between two runs), in a canonical order, so two databases can be compared with ``==``."""
    from store.models.documents import Document, DocumentCounter, DocumentFile
    from store.models import Case, CaseEvent, DocumentRequest, Duty

    with transaction(factory) as s:
        out: dict[str, Any] = {
            "cases": sorted(s.execute(select(Case.id, Case.state, Case.version, Case.closed_on)).all()),
            "events": sorted(s.execute(select(
                CaseEvent.case_id, CaseEvent.seq, CaseEvent.event, CaseEvent.from_state, CaseEvent.to_state,
                CaseEvent.at, CaseEvent.recorded_at, CaseEvent.actor)).all()),
            "duties": sorted(s.execute(select(
                Duty.case_id, Duty.step, Duty.action, Duty.role, Duty.due_at, Duty.status, Duty.overdue_at)).all()),
            "requests": sorted(s.execute(select(
                DocumentRequest.case_id, DocumentRequest.kind, DocumentRequest.event_seq, DocumentRequest.status)).all()),
            "documents": sorted(s.execute(select(
                Document.doc_key, Document.version, Document.kind, Document.issuer, Document.year, Document.number,
                Document.doc_number)).all(), key=repr),
            "counters": sorted(s.execute(select(DocumentCounter.issuer, DocumentCounter.year,
                                                DocumentCounter.last_number)).all()),
            "files": sorted(s.execute(select(Document.doc_key, DocumentFile.fmt, DocumentFile.sha256, DocumentFile.path)
                                      .join(DocumentFile, DocumentFile.document_id == Document.id)).all()),
        }
        # A rendered request points at its document (not at a second one).
        out["linked"] = sorted(s.execute(
            select(DocumentRequest.case_id, DocumentRequest.kind, DocumentRequest.event_seq, Document.doc_key)
            .join(Document, Document.id == DocumentRequest.document_id)).all())
    if archive is not None:
        out["files_on_disk"] = all(
            (archive / path).is_file() and hashlib.sha256((archive / path).read_bytes()).hexdigest() == sha
            for _, _, sha, path in out["files"])
    return out


def exactly_once_problems(snap: dict[str, Any]) -> list[str]:
    """What would be wrong on its own, whatever the reference says: a doubled event, a case whose
    version is not its last event, a document or request twice, a number twice or skipped."""
    problems = []
    keys = Counter((c, s) for c, s, *_ in snap["events"])
    problems += [f"event {k} written {n} times" for k, n in keys.items() if n > 1]
    last = {}
    for c, s, *_ in snap["events"]:
        last[c] = max(last.get(c, 0), s)
    problems += [f"case {c} at version {v} but last event {last.get(c)}" for c, _, v, _ in snap["cases"]
                 if last.get(c) != v]
    for seqs in _by(snap["events"], lambda e: e[0], lambda e: e[1]).values():
        if sorted(seqs) != list(range(1, len(seqs) + 1)):
            problems.append(f"event seqs {sorted(seqs)} have a gap")
    reqs = Counter((c, k, s) for c, k, s, _ in snap["requests"])
    problems += [f"document request {k} queued {n} times" for k, n in reqs.items() if n > 1]
    docs = Counter((key, v) for key, v, *_ in snap["documents"])
    problems += [f"document {k} archived {n} times" for k, n in docs.items() if n > 1]
    numbered = _by([d for d in snap["documents"] if d[5] is not None], lambda d: (d[3], d[4]), lambda d: d[5])
    last_number = {(i, y): n for i, y, n in snap["counters"]}
    for issuer, numbers in numbered.items():
        if sorted(numbers) != list(range(1, len(numbers) + 1)):
            problems.append(f"{issuer} numbers {sorted(numbers)} repeat or skip")
        if last_number.get(issuer) != len(numbers):
            problems.append(f"{issuer} counter at {last_number.get(issuer)} for {len(numbers)} numbered documents")
    if len({d[6] for d in snap["documents"] if d[6]}) != len([d for d in snap["documents"] if d[6]]):
        problems.append("a 发文字号 appears on two documents")
    if snap.get("files_on_disk") is False:
        problems.append("an archived file is missing on disk or its bytes do not match its SHA-256")
    return problems


def _by(rows, key, value) -> dict:
    out: dict = {}
    for r in rows:
        out.setdefault(key(r), []).append(value(r))
    return out


def differences(got: dict[str, Any], want: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Per table: (rows missing compared with ``want``, rows extra), only where they differ."""
    out = {}
    for k in want:
        if got.get(k) != want[k]:
            g, w = Counter(map(repr, got.get(k) or [])) if isinstance(got.get(k), list) else Counter(), \
                Counter(map(repr, want[k])) if isinstance(want[k], list) else Counter()
            out[k] = (sum((w - g).values()), sum((g - w).values())) if isinstance(want[k], list) else (got.get(k), want[k])
    return out


# -- workers (run in a forked process) --------------------------------------------------------------------
def advance_worker(url: str, as_of: datetime, batch_size: int, marks) -> None:
    """The sweep, as the worker runs it: store.cases.advance.advance, batch by batch, each batch its own commit.
    ``marks``: when it began, committed its first batch, finished (for the kill's timing only)."""
    from store.cases.advance import advance

    def progress(*_) -> None:
        marks[FIRST] = marks[FIRST] or time.monotonic()
        marks[BATCHES] += 1

    engine = make_engine(url)
    factory = session_factory(engine)
    marks[BEGAN] = time.monotonic()
    advance(factory, as_of, batch_size=batch_size, progress=progress)
    marks[FINISHED] = time.monotonic()
    engine.dispose()


def render_worker(url: str, archive: str, now: datetime, limit: int, marks) -> None:
    """The document batch, as tasks.render.render_batch runs it: documents.render_queued."""
    os.environ["BAOXUE_ARCHIVE_DIR"] = archive
    from documents.archive import render_queued

    engine = make_engine(url)
    factory = session_factory(engine)
    marks[BEGAN] = marks[FIRST] = time.monotonic()
    render_queued(factory, limit=limit, actor="system:render_documents", now=now)
    marks[FINISHED] = time.monotonic()
    engine.dispose()


BEGAN, FIRST, FINISHED, BATCHES = 0, 1, 2, 3


def new_marks():
    """Lock-free doubles in shared memory: when a worker began, committed a first batch, finished,
    and how many batches it has committed (the advance only)."""
    return forkserver().RawArray("d", 4)


_CONTEXT: multiprocessing.context.BaseContext | None = None


def forkserver() -> multiprocessing.context.BaseContext:
    """The forkserver context, preloaded with the store, the documents and a warm WeasyPrint."""
    global _CONTEXT
    if _CONTEXT is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["tests.reliability_worker"])
        _CONTEXT = ctx
    return _CONTEXT


@dataclass
class Run:
    """One worker process: started, maybe killed, always reaped."""

    seconds: float = 0.0      # from the worker's "began" to its "finished" (or to the kill)
    first: float = 0.0        # from "began" to the first committed batch (the advance; 0 for the renderer)
    batches: int = 0          # batches committed (the advance; 0 for the renderer)
    killed: bool = False
    exitcode: int | None = None


def run_worker(target: Callable, args: tuple, *, kill_after: float | None = None, after_batches: int = 0,
               timeout: float = 120.0) -> Run:
    """Run ``target(*args, marks)`` in a forked process; SIGKILL it ``kill_after`` seconds after it
    marked that it began, or if ``after_batches``, ``kill_after`` seconds after it committed that
    many batches (None: let it finish). ``marks`` is lock-free shared memory (a lock held
    by a killed process would never be released): the worker writes CLOCK_MONOTONIC times."""
    marks = new_marks()
    proc = forkserver().Process(target=target, args=(*args, marks), daemon=True)
    proc.start()
    deadline = time.monotonic() + timeout
    try:
        while not marks[BEGAN] and proc.exitcode is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"worker {target.__name__} did not start in {timeout} s")
            time.sleep(0.002)
        t0 = marks[BEGAN] or time.monotonic()
        if kill_after is not None:
            while after_batches and marks[BATCHES] < after_batches and proc.exitcode is None:
                time.sleep(0.0005)
            start = time.monotonic() if after_batches else t0
            proc.join(max(0.0, start + kill_after - time.monotonic()))
            if proc.exitcode is None:
                proc.kill()  # SIGKILL
            seconds, first_at = time.monotonic() - t0, 0.0
        else:
            proc.join(timeout)
            seconds = (marks[FINISHED] or time.monotonic()) - t0
            first_at = (marks[FIRST] - t0) if marks[FIRST] else 0.0
        proc.join(timeout)
        batches = int(marks[BATCHES])
        if proc.exitcode is None:
            raise AssertionError(f"worker {target.__name__} still running after {timeout} s")
        return Run(seconds, first_at, batches, killed=proc.exitcode == -9, exitcode=proc.exitcode)
    finally:
        if proc.exitcode is None:
            proc.kill()
            proc.join()


@dataclass
class Trial:
    seed: int
    kills: list[float] = field(default_factory=list)      # kill delays (s after the worker began)
    progress: list[float] = field(default_factory=list)   # share of the reference's work done at each kill
    killed: int = 0                                       # kills that hit a running worker


def crash_trials(databases: Databases, *, trials: int, seed: int, worker: Callable,
                 args_for: Callable[[str, Path], tuple], done: Callable[[dict], int],
                 archive_root: Path | None = None) -> tuple[dict, list[Trial], list[str]]:
    """The reference run on one copy of the template, then ``trials`` copies, each killed once or twice
    at a seeded random moment of its run and then run to completion. Returns (reference snapshot,
    trials, failures); a failure names the trial and what differs."""
    rng = random.Random(seed)
    ref_url = databases.copy("ref")
    ref_archive = _archive(archive_root, "ref")
    ref_run = run_worker(worker, args_for(ref_url, ref_archive))
    assert ref_run.exitcode == 0, f"reference run failed: exit code {ref_run.exitcode}"
    reference = _snap(ref_url, ref_archive)
    databases.drop(ref_url)
    total = done(reference)
    problems = [f"reference: {p}" for p in exactly_once_problems(reference)]
    results = []
    for i in range(trials):
        trial = Trial(seed=seed * 1000 + i)
        url, archive = databases.copy(f"t{i}"), _archive(archive_root, f"t{i}")
        try:
            for _ in range(rng.choice((1, 1, 2))):
                # a third of the kills at a random moment of the whole run (start-up and planning
                # too); the rest, where the worker counts its batches, at a random moment of a
                # random batch (after batch k has committed, within one batch's time)
                if ref_run.batches and rng.random() >= 1 / 3:
                    after = rng.randint(1, ref_run.batches)
                    delay = rng.uniform(0.0, (ref_run.seconds - ref_run.first) / ref_run.batches)
                else:
                    after, delay = 0, rng.uniform(0.0, ref_run.seconds)
                run = run_worker(worker, args_for(url, archive), kill_after=delay, after_batches=after)
                trial.kills.append(round(delay, 3))
                trial.killed += run.killed
                if not run.killed and run.exitcode != 0:
                    problems.append(f"trial {i}: worker exited with {run.exitcode}")
                databases.wait_for_no_sessions(url)
                trial.progress.append(round(done(_snap(url, None)) / total, 3) if total else 1.0)
            final = run_worker(worker, args_for(url, archive))
            if final.exitcode != 0:
                problems.append(f"trial {i}: the restart exited with {final.exitcode}")
            got = _snap(url, archive)
            problems += [f"trial {i}: {p}" for p in exactly_once_problems(got)]
            diff = differences(got, reference)
            if diff:
                problems.append(f"trial {i} (kills at {trial.kills} s): differs from the reference "
                                f"(table: rows missing, rows extra) {diff}")
        finally:
            databases.drop(url)
        results.append(trial)
    return reference, results, problems


def _archive(root: Path | None, name: str) -> Path:
    if root is None:
        return Path("/nonexistent")
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _snap(url: str, archive: Path | None) -> dict:
    engine = make_engine(url)
    try:
        return snapshot(session_factory(engine), archive if archive and archive.exists() else None)
    finally:
        engine.dispose()


def summary(trials: list[Trial]) -> str:
    kills = sum(len(t.kills) for t in trials)
    hit = sum(t.killed for t in trials)
    mid = sum(1 for t in trials for p in t.progress if 0 < p < 1)
    shares = sorted(p for t in trials for p in t.progress)
    return (f"{len(trials)} trials, {kills} SIGKILLs ({hit} hit a running worker, {mid} left the work part-done; "
            f"share of the work done at each kill {shares})")


def count(snap: dict, key: str, pred: Callable[[tuple], bool] = lambda r: True) -> int:
    return sum(1 for r in snap[key] if pred(r))


# -- a PostgreSQL cluster of the test's own (to stop and start it) ------------------------------------
class Cluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1 at a free port, as deploy/testdb.sh makes one:
    initdb into a temporary directory, ``pg_ctl`` start/stop. As root it belongs to and runs as the
    ``postgres`` user (PostgreSQL refuses to run as root)."""

    def __init__(self) -> None:
        import glob
        import socket
        import tempfile

        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                       key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
        bindir = os.environ.get("PG_BINDIR") or (str(Path(found[-1]).parent) if found else None)
        if not bindir:
            raise RuntimeError("PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin (deploy/setup.sh system)")
        self.bin = Path(bindir)
        self.root = Path(tempfile.mkdtemp(prefix="baoxue-outage-", dir="/tmp"))
        self.data = self.root / "data"
        self.password = os.urandom(12).hex()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        (self.root / "pwfile").write_text(self.password + "\n")
        if os.geteuid() == 0:
            os.chmod(self.root, 0o755)
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.root / "pwfile", "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "baoxue", f"--pwfile={self.root / 'pwfile'}",
                  "--auth=scram-sha-256", "--encoding=UTF8", "--no-locale", "--no-sync")
        conf = (f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = ''\n"
                "fsync = off\nfull_page_writes = off\nmax_connections = 50\n")
        with open(self.data / "postgresql.conf", "a") as fh:
            fh.write(conf)
        self.running = False

    def _run(self, tool: str, *args: str) -> None:
        import subprocess

        cmd = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stdout}{done.stderr}")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60", "start")
        self.running = True

    def stop(self, mode: str = "immediate") -> None:
        """``immediate``: every backend killed at once, no checkpoint; the next start recovers (a crash)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")
        self.running = False

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://baoxue:{self.password}@127.0.0.1:{self.port}/{database}"

    def destroy(self) -> None:
        if self.running:
            try:
                self.stop()
            except RuntimeError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)
