"""`baoxue backup create|check|restore|verify`: the database and the document archive as one set.

The database is the one ``--db`` / BAOXUE_DATABASE_URL names, the archive BAOXUE_ARCHIVE_DIR (or
out/archive). Procedure and schedule: docs/operations.md.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(help="备份与恢复 backup and restore (database + document archive)", no_args_is_help=True)
console = Console()
err = Console(stderr=True, soft_wrap=True)


def _db_url(to_db: str | None = None) -> str:
    from store.db import settings

    if to_db:
        return to_db if "://" in to_db else f"sqlite:///{Path(to_db).resolve()}"
    return settings().database_url


def _archive(given: Path | None) -> Path:
    from documents.archive import archive_root

    return given.resolve() if given else archive_root()


def _fail(message: str) -> None:
    from cli.errors import fail

    fail(message, 1)


@app.command("create")
def create(dest: Path = typer.Argument(..., help="新的备份目录 (a new, empty folder)"),
           archive: Optional[Path] = typer.Option(None, help="文书归档目录 (default BAOXUE_ARCHIVE_DIR)")):
    """Back up the database (pg_dump / SQLite online backup), then the document archive."""
    from store.backup import BackupError, create_backup
    from store.clock import local_now

    try:
        r = create_backup(_db_url(), _archive(archive), dest, now=local_now())
    except BackupError as exc:
        _fail(str(exc))
    console.print(f"备份完成 backup written: {r.folder} ({r.backend}) — {sum(r.tables.values())} 行 rows in "
                  f"{len(r.tables)} tables, {r.archive_files} 个归档文件 archive files "
                  f"({r.archive_bytes / 1e6:.1f} MB), {r.seconds:.1f} s")


@app.command("check")
def check(folder: Path = typer.Argument(..., exists=True, file_okay=False)):
    """Check every SHA-256 in a backup's manifest against its files."""
    from store.backup import BackupError, check_backup

    try:
        m = check_backup(folder)
    except BackupError as exc:
        _fail(str(exc))
    console.print(f"备份完好 backup intact: {m['backend']}, {m['created_at']}, {len(m['archive'])} archive files")


@app.command("restore")
def restore(folder: Path = typer.Argument(..., exists=True, file_okay=False),
            to_db: str = typer.Option(..., "--to-db", help="空的目标数据库 URL 或新 SQLite 文件 (an empty database)"),
            to_archive: Path = typer.Option(..., "--to-archive", help="目标归档目录 (empty, or holding the same files)")):
    """Restore a backup into an empty database and an archive folder, then verify every document file."""
    from store.backup import BackupError, restore_backup, verify_archive

    url = _db_url(to_db)
    try:
        r = restore_backup(folder, url, to_archive)
    except BackupError as exc:
        _fail(str(exc))
    checked, problems = verify_archive(url, to_archive)
    for p in problems:
        err.print(f"[red]{p}[/red]")
    console.print(f"恢复完成 restored: {sum(r.tables.values())} 行 rows in {len(r.tables)} tables, "
                  f"{r.archive_files} archive files, {checked} 份文书文件校验 document files verified, {r.seconds:.1f} s")
    if problems:
        raise typer.Exit(2)


@app.command("verify")
def verify(archive: Optional[Path] = typer.Option(None, help="文书归档目录 (default BAOXUE_ARCHIVE_DIR)")):
    """Check every issued document file in the archive against the SHA-256 the database recorded."""
    from store.backup import verify_archive

    checked, problems = verify_archive(_db_url(), _archive(archive))
    for p in problems:
        err.print(f"[red]{p}[/red]")
    console.print(f"{checked} 份文书文件校验 document files checked, {len(problems)} 个问题 problems")
    if problems:
        raise typer.Exit(2)
