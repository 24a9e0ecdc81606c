"""One error path for the whole `baoxue` command line.

Every command (and every sub-app mounted under ``baoxue``) runs inside :class:`BaoxueGroup.invoke`:
an expected error — a bad date or month, a year without a holiday list, an unknown pupil, school,
case or user, an action the case's state refuses, a conflict, a bad or unreadable file, a policy or
validation error, a database that cannot be reached — becomes ONE bilingual line on stderr and exit
code 2 (:data:`USER_ERROR`); anything else is an internal error: one line, exit 1, and the traceback
only with ``baoxue --debug …`` (or BAOXUE_DEBUG=1). Commands raise; they do not catch and print.
:func:`fail` is how a command says "the user got something wrong" in its own words.
"""
from __future__ import annotations

import os
import sys
from typing import NoReturn

from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup
from typer.exceptions import Abort, Exit
from typer._click.exceptions import ClickException, NoArgsIsHelpError

USER_ERROR = 2
INTERNAL_ERROR = 1
err = Console(stderr=True, soft_wrap=True, highlight=False)


class CliError(Exception):
    """A command's own message for a user mistake (already bilingual), with its exit code."""

    def __init__(self, message: str, code: int = USER_ERROR):
        super().__init__(message)
        self.message, self.code = message, code


def fail(message: str, code: int = USER_ERROR) -> NoReturn:
    raise CliError(message, code)


def calendar_line(year: int, calendar: str = "", schools=()) -> str:
    """错误：2027 年的节假日表尚未提供 (…/holidays-2027.toml) — error: no holiday list for 2027 …"""
    from store.calendars import calendar_dir

    where = f"（校历 {calendar}" + (f"，{len(schools)} 所学校未推进 schools skipped: {', '.join(schools)}" if schools else "")
    path = calendar_dir() / f"holidays-{year}.toml"
    return (f"错误：{year} 年的节假日表尚未提供{where + '）' if calendar else ''} ({path}) — error: no holiday list for "
            f"{year}: supply {path.name} with the State Council's holidays and 调休 days, then run `baoxue init`")


# Expected errors, first match wins: (module, class, 中文, English). Only classes whose module is already
# imported are looked at (an exception cannot be of a class nobody loaded), so nothing is imported here.
# ``None`` for the words: not a user error (a KeyError is a bug, though it is a LookupError).
EXPECTED: list[tuple[str, str, str | None, str | None]] = [
    ("machines.calendar", "CalendarYearUnknown", "", ""),  # calendar_line
    ("store.calendars", "CalendarNotLoaded", "校历已更新，请先运行 baoxue init", "calendar changed: run `baoxue init`"),
    ("machines.case_machine", "ForbiddenEvent", "当前状态不允许此操作", "action refused in this state"),
    ("machines.census", "CensusForbidden", "当前状态不允许此操作", "action refused in this state"),
    ("store.cases.actions", "CaseConflict", "案件已被他人修改，请重新查看后再操作", "case changed meanwhile (conflict)"),
    ("store.cases.actions", "CaseNotFound", "案件不存在", "case not found"),
    ("store.prevention.census", "CensusCaseNotFound", "排查案件不存在", "census case not found"),
    ("documents.catalog", "UnknownKind", "没有这种文书", "unknown document kind"),
    ("store.ingest.tabular", "TableError", "文件内容有误", "bad file"),
    ("store.policy_files", "PolicyFileError", "策略文件有误", "policy error"),
    ("store.calendars", "HolidayFileError", "节假日表有误", "bad holiday list"),
    ("store.access.accounts", "AccountError", "账号信息有误", "account error"),
    ("store.backup", "BackupError", "备份或恢复未完成", "backup error"),
    ("documents.render", "RenderError", "文书未能生成", "document not rendered"),
    ("tasks.render", "DocumentsUnavailable", "文书服务不可用", "documents unavailable"),
    ("pydantic", "ValidationError", "输入未通过校验", "validation error"),
    ("sqlalchemy.exc", "ArgumentError", "数据库地址有误", "bad database URL"),
    ("sqlalchemy.exc", "OperationalError", "无法连接或使用数据库", "database unreachable or unusable"),
    ("sqlalchemy.exc", "InterfaceError", "无法连接数据库", "database unreachable"),
    ("tomllib", "TOMLDecodeError", "文件格式有误", "bad TOML file"),
    ("builtins", "UnicodeDecodeError", "文件编码无法识别", "unreadable file encoding"),
    ("builtins", "FileNotFoundError", "文件或目录不存在", "no such file"),
    ("builtins", "IsADirectoryError", "需要文件，给的是目录", "a folder, not a file"),
    ("builtins", "NotADirectoryError", "需要目录，给的是文件", "a file, not a folder"),
    ("builtins", "PermissionError", "没有读写权限", "permission denied"),
    ("builtins", "KeyError", None, None),
    ("builtins", "IndexError", None, None),
    ("builtins", "LookupError", "找不到", "not found"),
    ("builtins", "ValueError", "输入有误", "invalid input"),
]


def _detail(exc: BaseException) -> str:
    """The exception's message on one line (a driver error: its first line; pydantic: field: reason)."""
    if hasattr(exc, "errors") and callable(exc.errors) and type(exc).__name__ == "ValidationError":
        text = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in exc.errors())
    else:
        orig = getattr(exc, "orig", None)  # sqlalchemy.exc.DBAPIError: the driver's own message, not the SQL
        lines = str(orig if orig is not None else exc).strip().splitlines()
        text = lines[0] if orig is not None and lines else " / ".join(lines)
        if isinstance(exc, OSError) and exc.filename:
            text = f"{exc.filename}: {exc.strerror or text}"
    return " ".join(text.split())[:500]


def describe(exc: BaseException) -> tuple[str, int] | None:
    """(the one line, exit code) for an expected error; None for an internal one."""
    if isinstance(exc, CliError):
        return (exc.message if exc.message.startswith("错误") else f"错误 error: {exc.message}"), exc.code
    if isinstance(exc, ClickException):  # a sub-command's bad option, date or choice
        where = getattr(getattr(exc, "ctx", None), "command_path", "baoxue")
        return (f"错误：命令参数有误（{where} --help 查看用法） — error: {exc.format_message()}",
                getattr(exc, "exit_code", USER_ERROR) or USER_ERROR)
    for module, name, zh, en in EXPECTED:
        cls = getattr(sys.modules.get(module), name, None)
        if cls is None or not isinstance(exc, cls):
            continue
        if zh is None:
            return None
        if name == "CalendarYearUnknown":
            return calendar_line(exc.year, getattr(exc, "calendar", "")), USER_ERROR
        detail = _detail(exc)
        return f"错误：{zh}{'：' + detail if detail else ''} — error: {en}", USER_ERROR
    return None


def debugging(ctx) -> bool:
    return bool(ctx.params.get("debug")) or os.environ.get("BAOXUE_DEBUG", "").lower() in ("1", "true", "yes")


def report(exc: BaseException) -> int:
    """Print the one line for ``exc``; returns the exit code."""
    known = describe(exc)
    if known is None:
        line = (f"内部错误 internal error: {type(exc).__name__}: {_detail(exc)} — "
                f"请加 --debug 重新运行查看详情 (rerun with `baoxue --debug …` for the traceback)")
        known = line, INTERNAL_ERROR
    err.print(escape(known[0]), style="red")
    return known[1]


class BaoxueGroup(TyperGroup):
    """The `baoxue` group: runs the chosen command and turns what it raises into one line."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Abort:  # a prompt met the end of its input (no terminal, nothing on stdin) or was cancelled
            if debugging(ctx):
                raise
            err.print("错误：已中止，没有读到输入（密码可用 --password-stdin 传入）— error: aborted, no input "
                      "(give a password with --password-stdin)", style="red")
            raise Exit(USER_ERROR) from None
        except (Exit, NoArgsIsHelpError, KeyboardInterrupt):
            raise
        except Exception as exc:
            if debugging(ctx):
                raise
            raise Exit(report(exc)) from None
