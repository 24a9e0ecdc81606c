"""`baoxue parent-notice …`: the 辍学书面通报 (seed 002) — fill it in, the parent's signature, the bureau's copy.

Each command records one staff action on the case (``record_class_record``, ``serve_parent_notice``,
``report_parent_notice``) through the same service as the web page and the API, so the details are
checked by the same models (machines/payloads.py) and kept in the case's history.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

import typer

from cli.common import console, emit as _emit, factory as _factory, fail_with as _fail, now_local

app = typer.Typer(help="辍学书面通报 parent notice (seed 002): 填写、家长签字、上报", no_args_is_help=True)


def _record(case_id: int, action: str, payload: dict[str, Any], *, by: str, at: Optional[datetime],
            key: Optional[str], json_out: bool) -> None:
    from machines.case_machine import ForbiddenEvent
    from machines.vocabulary import event_label
    from store.cases.actions import CaseConflict, CaseNotFound, PayloadInvalid, act
    from store.cases.context import CaseContext
    from store.db import transaction

    when = at or now_local()
    try:
        with transaction(_factory()) as s:
            applied = act(s, CaseContext(s), case_id, action, actor=by, at=when, now=when,
                          note=event_label(action), payload={k: v for k, v in payload.items() if v not in (None, "")},
                          idempotency_key=key)
            ev = applied.event
            data = {"case_id": case_id, "event": ev.event, "seq": ev.seq, "at": ev.at.isoformat(sep=" "),
                    "payload": ev.payload, "duplicate": applied.duplicate}
    except (ForbiddenEvent, CaseNotFound, PayloadInvalid, CaseConflict) as exc:
        _fail(str(exc))
    _emit(data, json_out, lambda d: console.print(
        f"案件 case {case_id}: {event_label(d['event'])} (seq {d['seq']})"
        + (" — 重复提交 duplicate, nothing changed" if d["duplicate"] else "")))


@app.command("fill")
def fill(case_id: int, conduct: str = typer.Option(..., help="在校行为表现"), study: str = typer.Option(..., help="学习情况"),
         by: str = typer.Option("cli", help="操作人"), at: Optional[datetime] = typer.Option(None),
         key: Optional[str] = typer.Option(None, help="idempotency key"), json_out: bool = typer.Option(False, "--json")):
    """Fill in the notice from the class record (行为表现、学习情况); issues the 书面通报."""
    _record(case_id, "record_class_record", {"conduct": conduct, "study": study}, by=by, at=at, key=key, json_out=json_out)


@app.command("signed")
def signed(case_id: int, recipient: Optional[str] = typer.Option(None, help="签字家长"),
           refused: bool = typer.Option(False, "--refused", help="家长拒绝签字"),
           opinion: Optional[str] = typer.Option(None, help="家长意见"), witness: Optional[str] = typer.Option(None, help="见证人"),
           served_at: Optional[str] = typer.Option(None, help="签字时间 2026-12-01 15:00"),
           by: str = typer.Option("cli"), at: Optional[datetime] = typer.Option(None),
           key: Optional[str] = typer.Option(None), json_out: bool = typer.Option(False, "--json")):
    """The parent signed the notice (or --refused); issues its 送达回证."""
    _record(case_id, "serve_parent_notice", {"recipient": recipient, "refused": refused or None, "opinion": opinion,
                                              "witness": witness, "served_at": served_at},
            by=by, at=at, key=key, json_out=json_out)


@app.command("reported")
def reported(case_id: int, received_by: Optional[str] = typer.Option(None, help="教育局接收人"),
             received_at: Optional[str] = typer.Option(None, help="接收时间"), method: Optional[str] = typer.Option(None, help="报送方式"),
             by: str = typer.Option("cli"), at: Optional[datetime] = typer.Option(None),
             key: Optional[str] = typer.Option(None), json_out: bool = typer.Option(False, "--json")):
    """A copy was reported to the education bureau; issues the bureau's receipt."""
    _record(case_id, "report_parent_notice", {"received_by": received_by, "received_at": received_at, "method": method},
            by=by, at=at, key=key, json_out=json_out)
