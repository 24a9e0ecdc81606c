"""Backup and restore: the database and the document archive, as one set, checked by hashes.

A backup is a folder::

    manifest.json        what was taken, when, from which backend; the SHA-256 of every file
    database.dump        PostgreSQL: ``pg_dump --format=custom`` (restored with ``pg_restore``)
    database.sqlite      SQLite: a copy made with the sqlite3 online backup API (safe while the app runs)
    archive/...          every file of the document archive (issued documents, visit photos, reports)

Order matters: the database is copied first, the archive second. Archive files are written once
under their content hash and never changed, so the archive copy holds every file the database copy
names (and perhaps a few issued a moment later, which nothing refers to): the pair is consistent
without stopping the application.

Restore goes into an *empty* database (a new SQLite file, or a PostgreSQL database just made
with ``createdb``) and an empty or matching archive folder, after checking every hash of the
backup; afterwards :func:`verify_archive` checks every ``document_files`` row against its file.
Procedure for operators: docs/operations.md.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, inspect, make_url, select, text
from sqlalchemy.pool import NullPool

MANIFEST = "manifest.json"
FORMAT = "baoxue-backup/1"


class BackupError(RuntimeError):
    """The backup cannot be made or restored (message in Chinese and English)."""


@dataclass
class BackupReport:
    folder: Path
    backend: str
    tables: dict[str, int] = field(default_factory=dict)  # row counts at backup time
    archive_files: int = 0
    archive_bytes: int = 0
    database_bytes: int = 0
    seconds: float = 0.0


# -- helpers -----------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _backend(db_url: str) -> str:
    name = make_url(db_url).get_backend_name()
    if name not in ("sqlite", "postgresql"):
        raise BackupError(f"不支持的数据库 unsupported database: {name}")
    return name


def _sqlite_path(db_url: str) -> Path:
    path = make_url(db_url).database
    if not path or path == ":memory:":
        raise BackupError("内存数据库无法备份 (an in-memory SQLite database cannot be backed up)")
    return Path(path)


def pg_bindir() -> Path | None:
    """PG_BINDIR, else the newest Debian /usr/lib/postgresql/*/bin, else None (use PATH)."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return found[-1] if found else None


def _pg_tool(name: str) -> str:
    bindir = pg_bindir()
    tool = bindir / name if bindir and (bindir / name).exists() else shutil.which(name)
    if not tool:
        raise BackupError(f"找不到 {name}（请安装 postgresql-client）({name} not found: install postgresql-client)")
    return str(tool)


def _pg_args(db_url: str) -> tuple[list[str], dict[str, str]]:
    """libpq connection arguments without the password on the command line (it goes in PGPASSWORD)."""
    url = make_url(db_url)
    args = ["--dbname", url.database or "postgres"]
    if url.host:
        args += ["--host", url.host]
    if url.port:
        args += ["--port", str(url.port)]
    if url.username:
        args += ["--username", url.username]
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return args, env


def _run(cmd: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"{Path(cmd[0]).name} 失败 failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def archive_files(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under the archive folder (temporary files left out)."""
    out: dict[str, str] = {}
    if not folder.exists():
        return out
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.name.endswith((".tmp", ".part")):
            out[path.relative_to(folder).as_posix()] = _sha256(path)
    return out


def _row_counts(engine: Engine) -> dict[str, int]:
    names = inspect(engine).get_table_names()
    with engine.connect() as conn:
        return {n: conn.execute(text(f'SELECT count(*) FROM "{n}"')).scalar_one() for n in sorted(names)}


# -- backup ------------------------------------------------------------------------------------------
def create_backup(db_url: str, archive_dir: Path, dest: Path, *, now: datetime) -> BackupReport:
    """Copy the database, then the archive, into the new folder ``dest``; write the manifest last."""
    t0 = time.monotonic()
    backend = _backend(db_url)
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"备份目录 {dest} 不是空的 (the backup folder is not empty)")
    dest.mkdir(parents=True, exist_ok=True)
    engine = create_engine(db_url, poolclass=NullPool)
    try:
        report = BackupReport(dest, backend, tables=_row_counts(engine))
    finally:
        engine.dispose()
    if backend == "sqlite":
        db_file = dest / "database.sqlite"
        src = sqlite3.connect(_sqlite_path(db_url))
        dst = sqlite3.connect(db_file)
        try:
            with dst:
                src.backup(dst)  # online: a consistent snapshot while others keep writing
        finally:
            dst.close()
            src.close()
    else:
        db_file = dest / "database.dump"
        args, env = _pg_args(db_url)
        _run([_pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", "--file", str(db_file), *args], env)
    report.database_bytes = db_file.stat().st_size

    files = archive_files(Path(archive_dir))
    for rel in files:
        target = dest / "archive" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(archive_dir) / rel, target)
    copied = archive_files(dest / "archive")
    if copied != files:  # a file changed under us: archive files are immutable, so this is damage
        raise BackupError("归档文件在复制时发生变化 (archive files changed while being copied)")
    report.archive_files = len(files)
    report.archive_bytes = sum((dest / "archive" / rel).stat().st_size for rel in files)
    manifest = {
        "format": FORMAT, "backend": backend, "created_at": now.isoformat(timespec="seconds"),
        "database": {"file": db_file.name, "sha256": _sha256(db_file), "bytes": report.database_bytes},
        "tables": report.tables, "archive": files,
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    report.seconds = time.monotonic() - t0
    return report


def read_manifest(folder: Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise BackupError(f"{folder} 不是 Baoxue 备份（缺少 {MANIFEST}）(not a Baoxue backup)")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise BackupError(f"未知的备份格式 unknown backup format: {manifest.get('format')}")
    return manifest


def check_backup(folder: Path) -> dict[str, Any]:
    """Every hash in the manifest matches its file; returns the manifest, else raises BackupError."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    db_file = folder / manifest["database"]["file"]
    if not db_file.exists() or _sha256(db_file) != manifest["database"]["sha256"]:
        raise BackupError(f"数据库备份文件损坏或缺失 (database file damaged or missing): {db_file.name}")
    found = archive_files(folder / "archive")
    bad = sorted(rel for rel, sha in manifest["archive"].items() if found.get(rel) != sha)
    if bad:
        raise BackupError(f"{len(bad)} 个归档文件损坏或缺失 (archive files damaged or missing): {', '.join(bad[:5])}")
    return manifest


# -- restore -----------------------------------------------------------------------------------------
def restore_backup(folder: Path, db_url: str, archive_dir: Path) -> BackupReport:
    """Restore the backup in ``folder`` into the empty database ``db_url`` and the folder ``archive_dir``."""
    t0 = time.monotonic()
    folder = Path(folder)
    manifest = check_backup(folder)
    backend = _backend(db_url)
    if backend != manifest["backend"]:
        raise BackupError(f"备份来自 {manifest['backend']}，不能恢复到 {backend} "
                          f"(a {manifest['backend']} backup cannot be restored into {backend})")
    db_file = folder / manifest["database"]["file"]
    if backend == "sqlite":
        path = _sqlite_path(db_url)
        if path.exists() and path.stat().st_size > 0:
            raise BackupError(f"目标数据库 {path} 已存在，请换一个新文件名 (the target SQLite file exists)")
        path.parent.mkdir(parents=True, exist_ok=True)
        src = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
        dst = sqlite3.connect(path)
        try:
            with dst:
                src.backup(dst)
            dst.execute("PRAGMA journal_mode=WAL")
        finally:
            dst.close()
            src.close()
    else:
        engine = create_engine(db_url, poolclass=NullPool)
        try:
            if inspect(engine).get_table_names():
                raise BackupError("目标数据库不是空的，请用 createdb 新建一个 (the target database is not empty)")
        finally:
            engine.dispose()
        args, env = _pg_args(db_url)
        _run([_pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error",
              *args, str(db_file)], env)

    archive_dir = Path(archive_dir)
    for rel, sha in manifest["archive"].items():
        target = archive_dir / rel
        if target.exists():
            if _sha256(target) != sha:
                raise BackupError(f"归档目录中已有不同的文件 {rel} (a different file is already there)")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.restore.tmp")
        shutil.copyfile(folder / "archive" / rel, tmp)
        os.chmod(tmp, 0o444)
        os.replace(tmp, target)
    engine = create_engine(db_url, poolclass=NullPool)
    try:
        report = BackupReport(folder, backend, tables=_row_counts(engine), archive_files=len(manifest["archive"]),
                              database_bytes=db_file.stat().st_size)
    finally:
        engine.dispose()
    if report.tables != manifest["tables"]:
        raise BackupError(f"恢复后的行数与备份不一致 (row counts differ after restore): "
                          f"{ {k: (v, report.tables.get(k)) for k, v in manifest['tables'].items() if report.tables.get(k) != v} }")
    report.seconds = time.monotonic() - t0
    return report


def verify_archive(db_url: str, archive_dir: Path) -> tuple[int, list[str]]:
    """(files checked, problems): every ``document_files`` row has its file with the recorded SHA-256."""
    engine = create_engine(db_url, poolclass=NullPool)
    problems: list[str] = []
    try:
        if "document_files" not in inspect(engine).get_table_names():
            return 0, []
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, path, sha256 FROM document_files ORDER BY id")).all()
    finally:
        engine.dispose()
    for file_id, rel, sha in rows:
        path = Path(archive_dir) / rel
        if not path.exists():
            problems.append(f"document_files {file_id}: {rel} 缺失 missing")
        elif _sha256(path) != sha:
            problems.append(f"document_files {file_id}: {rel} 校验不符 SHA-256 mismatch")
    return len(rows), problems


# -- a canonical export, to compare two databases ------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, memoryview)):
        return hashlib.sha256(bytes(value)).hexdigest()
    if isinstance(value, str) and value[:1] in "[{":
        try:  # JSON stored as text (SQLite) and as json (PostgreSQL) compare as the same object
            return json.loads(value)
        except ValueError:
            return value
    return value


def canonical_export(db_url: str) -> dict[str, list[str]]:
    """Every row of every table, each row as sorted-key JSON, rows sorted: equal exports mean equal data."""
    engine = create_engine(db_url, poolclass=NullPool)
    try:
        meta = MetaData()
        meta.reflect(engine)
        out: dict[str, list[str]] = {}
        with engine.connect() as conn:
            for name, table in sorted(meta.tables.items()):
                rows = conn.execute(select(table)).mappings()
                out[name] = sorted(json.dumps({k: _plain(v) for k, v in r.items()}, sort_keys=True, ensure_ascii=False,
                                              default=str) for r in rows)
        return out
    finally:
        engine.dispose()
