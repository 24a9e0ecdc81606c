"""`baoxue doc …`: issue, find and verify documents (mounted by cli/main.py as the ``doc`` group).

    baoxue doc 12 return_notice              # issue (or fetch) case 12's 返校通知书, print where it is
    baoxue doc 12 return_notice --fmt html --out notice.html
    baoxue doc verify ~/Downloads/notice.pdf # was this file issued by the archive, unchanged?
    baoxue doc queue --limit 200             # render queued document requests
    baoxue doc failed                        # requests that failed to render (or wait for a retry)
    baoxue doc requeue 17 18 | --failed      # put them back in the queue
    baoxue doc report monthly_report township:C7T1 2026-11 --fmt xlsx
    baoxue doc kinds | fonts | preview KIND
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Optional

import click
import typer
from typer.core import TyperGroup


class _DefaultRender(TyperGroup):
    """``doc CASE KIND`` is short for ``doc render CASE KIND`` (a first argument that is not a sub-command)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["render", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_DefaultRender, help="文书 documents: issue, archive, verify", no_args_is_help=True,
                  pretty_exceptions_enable=False)


def _factory():
    from store.db import make_engine, session_factory

    return session_factory(make_engine())


def _fail(message: str, code: int = 1):
    from cli.errors import fail  # one line on stderr, printed by the `baoxue` group

    fail(message, code)


def _describe(record, *, as_json: bool) -> None:
    from documents.archive import file_path

    doc = record.document
    out = {
        "document_id": doc.id, "kind": doc.kind, "title": doc.title, "version": doc.version,
        "doc_number": doc.doc_number, "case_id": doc.case_id, "event_seq": doc.event_seq,
        "scope": doc.scope, "period": doc.period, "policy": f"{doc.policy_name}@{doc.policy_version}" if doc.policy_name else None,
        "issued_by": doc.actor, "issued_at": doc.created_at.isoformat(sep=" "), "supersedes": doc.supersedes_id,
        "fmt": record.fmt, "sha256": record.sha256, "size": record.size, "path": str(file_path(record)),
    }
    if as_json:
        sys.stdout.write(json.dumps(out, ensure_ascii=False, indent=2) + "\n")
        return
    for k, v in out.items():
        if v is not None:
            typer.echo(f"{k:<12} {v}")


def _copy_out(record, out: Optional[Path]) -> None:
    if out is None:
        return
    from documents.archive import file_path

    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(file_path(record), out)
    os.chmod(out, 0o644)
    typer.echo(f"wrote {out}")


@app.command("render")
def render_cmd(
    case_id: int = typer.Argument(..., help="case id (案件号)"),
    kind: str = typer.Argument(..., help="document kind, see `baoxue doc kinds`"),
    fmt: str = typer.Option("pdf", "--fmt", help="pdf | html | xlsx"),
    event_seq: Optional[int] = typer.Option(None, "--event", help="the case event the document belongs to"),
    actor: str = typer.Option(None, "--actor", help="who issues it (default: cli:$USER)"),
    out: Optional[Path] = typer.Option(None, "--out", help="also copy the file here"),
    as_json: bool = typer.Option(False, "--json"),
):
    """Issue (or fetch the archived) document KIND of case CASE_ID."""
    from documents.archive import render_for_case
    from documents.catalog import UnknownKind
    from documents.render import RenderError

    actor = actor or f"cli:{os.environ.get('USER', 'unknown')}"
    factory = _factory()
    try:
        with factory() as session, session.begin():
            record = render_for_case(session, case_id, kind, actor=actor, fmt=fmt, event_seq=event_seq)
            _describe(record, as_json=as_json)
            _copy_out(record, out)
    except (UnknownKind, LookupError, RenderError, ValueError) as exc:
        _fail(str(exc))


@app.command("verify")
def verify_cmd(path: Path = typer.Argument(..., exists=True, dir_okay=False), as_json: bool = typer.Option(False, "--json")):
    """Is FILE a document the archive issued, unchanged? Exit 0 and describe it, or exit 2."""
    from documents.archive import verify_file

    factory = _factory()
    with factory() as session:
        record = verify_file(session, path)
        if record is None:
            _fail(f"{path}: not issued by this archive, or changed since (文件未归档或已被修改)", code=2)
        _describe(record, as_json=as_json)


@app.command("queue")
def queue_cmd(limit: int = typer.Option(100, help="at most this many requests"),
              actor: str = typer.Option("system:cli", "--actor")):
    """Render queued document requests (what the ladder's steps and staff actions asked for)."""
    from documents.archive import render_queued

    counts = render_queued(_factory(), limit=limit, actor=actor)
    typer.echo(json.dumps(counts, ensure_ascii=False))
    if counts.get("failed"):
        raise typer.Exit(1)


@app.command("requeue")
def requeue_cmd(ids: Optional[list[int]] = typer.Argument(None, help="document request ids"),
                failed: bool = typer.Option(False, "--failed", help="every failed request"),
                as_json: bool = typer.Option(False, "--json")):
    """Put failed document requests (or the named ones) back in the queue, due now; the next render run renders them."""
    from store.db import transaction

    from documents.retry import requeue

    if not ids and not failed:
        _fail("请给出文书请求编号或 --failed (give request ids or --failed)", 2)
    with transaction(_factory()) as s:
        done = requeue(s, list(ids) if ids else None, failed=failed)
    missing = sorted(set(ids or []) - set(done))
    if as_json:
        typer.echo(json.dumps({"requeued": done, "not_found": missing}, ensure_ascii=False))
    else:
        typer.echo(f"已重新排队 requeued {len(done)}: {', '.join(map(str, done)) or '—'}")
    if missing:
        _fail(f"文书请求不存在或已制作完成 (no such failed or queued request): {', '.join(map(str, missing))}")


@app.command("failed")
def failed_cmd(as_json: bool = typer.Option(False, "--json")):
    """Document requests that failed to render, and those waiting for a retry, with the reason."""
    from store.db import transaction

    from documents.retry import failed_requests

    with transaction(_factory()) as s:
        rows = failed_requests(s)
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, default=str))
        return
    if not rows:
        typer.echo("没有制作失败的文书 (no failed renders)")
    for r in rows:
        wait = f"，{r['next_attempt_at']:%Y-%m-%d %H:%M} 重试" if r["next_attempt_at"] else ""
        typer.echo(f"#{r['id']} 案件 case {r['case_id']} {r['kind']} 第 {r['event_seq']} 步 {r['status']} "
                   f"尝试 {r['attempts']} 次{wait}: {r['error']}")


@app.command("report")
def report_cmd(
    kind: str = typer.Argument(..., help="monthly_report | spot_check_sheet | accountability_sheet"),
    scope: str = typer.Argument(..., help="school:<code> | township:<code> | county:<code>"),
    period: str = typer.Argument(..., help="2026-11 (month) or 2026Q4 (quarter)"),
    fmt: str = typer.Option("pdf", "--fmt"),
    actor: str = typer.Option(None, "--actor"),
    out: Optional[Path] = typer.Option(None, "--out"),
    as_json: bool = typer.Option(False, "--json"),
):
    """Issue (or fetch) a periodic report."""
    from documents.archive import render_report
    from documents.catalog import UnknownKind
    from documents.render import RenderError

    actor = actor or f"cli:{os.environ.get('USER', 'unknown')}"
    try:
        with _factory()() as session, session.begin():
            record = render_report(session, kind, scope=scope, period=period, actor=actor, fmt=fmt)
            _describe(record, as_json=as_json)
            _copy_out(record, out)
    except (UnknownKind, LookupError, RenderError, ValueError) as exc:
        _fail(str(exc))


@app.command("kinds")
def kinds_cmd(as_json: bool = typer.Option(False, "--json")):
    """The document catalog: kind ids, names, issuers, numbering, formats."""
    from documents.catalog import CATALOG

    rows = [{"kind": k.id, "name": k.name, "layout": k.layout, "issuer": k.issuer, "role": k.role,
             "steps": [s.value for s in k.steps], "actions": [a.value for a in k.actions],
             "numbering": k.numbering.series if k.numbering else None, "formats": list(k.formats)} for k in CATALOG.values()]
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
        return
    for r in rows:
        trigger = ",".join(r["steps"] + r["actions"]) or "report"
        typer.echo(f"{r['kind']:<24} {r['name']:<22} {r['issuer']:<8} {r['numbering'] or '-':<4} {'/'.join(r['formats']):<13} {trigger}")


@app.command("fonts")
def fonts_cmd():
    """Which fonts the documents use here, and what is missing (exit 1 on warnings)."""
    from documents import fonts

    typer.echo(f"FONTCONFIG_FILE {fonts.configure()}")
    typer.echo(f"font folder     {fonts.font_dir() or '(none: Debian substitutes only)'}")
    for line in fonts.describe():
        typer.echo(line)
    warnings = fonts.check()
    for w in warnings:
        typer.echo(f"warning: {w}", err=True)
    if warnings:
        raise typer.Exit(1)


@app.command("preview")
def preview_cmd(
    kind: str = typer.Argument(...),
    policy: str = typer.Option("default", help="shipped policy name"),
    fmt: str = typer.Option("pdf", "--fmt"),
    out: Path = typer.Option(..., "--out"),
    seed: int = typer.Option(1),
):
    """Render KIND from generated sample data (no database): to check a layout or a font change."""
    import tomllib

    from machines.policy import Policy

    from documents.catalog import get
    from documents.context import case_context, report_context, with_number
    from documents.render import render
    from documents.samples import sample_facts, sample_report

    path = Path(__file__).resolve().parent.parent / "deploy" / "policies" / f"{policy}.toml"
    pol = Policy.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    k = get(kind)
    if k.subject == "case":
        facts = sample_facts(pol, seed=seed, returned=kind == "return_register")
        ctx = case_context(kind, facts, event_seq=facts["events"][-1]["seq"], issued_on="2026-11-23", actor="preview")
    else:
        ctx = report_context(kind, sample_report(kind, seed=seed), issued_on="2026-11-23", actor="preview")
    out.write_bytes(render(with_number(ctx, number=12, year=2026), fmt).content)
    typer.echo(f"wrote {out}")
