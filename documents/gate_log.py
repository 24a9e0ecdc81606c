"""学生进出校门登记表: a school's gate log of one term, for the term-end archive (seed 000 §二.3).

Drawn with the same sheet helpers as the other registers (documents/xlsx.py): title row, unit
and period line, header, thin borders, A4 landscape, the trace line in the footer.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta

from openpyxl import Workbook
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from store.cases.context import CaseContext
from store.prevention.gate import movements, term_of
from store.models import School
from store.prevention.common import PreventionError
from store.models.prevention import GateArchive, GateMovement, PreventionDuty
from store.access.scope import Scope
from store.ingest.tabular import xlsx_safe

from documents.archive import store_bytes
from documents.formats import cn_date, cn_datetime
from documents.xlsx import _finish, _header, _line, _rows, _sheet, _title

SPEC = [("序号", 6, None), ("姓名", 9, None), ("学籍号", 16, None), ("班级", 13, None), ("离校时间", 19, None),
        ("事由", 14, None), ("班主任签字", 10, None), ("批准时间", 19, None), ("接送人", 9, None), ("关系", 7, None),
        ("应返校时间", 19, None), ("返校时间", 19, None), ("提醒", 22, None)]


def gate_log_xlsx(*, school: str, term: str, first: date, last: date, rows: list[dict], actor: str,
                  issued_at: datetime, partial: bool = False) -> bytes:
    ncols = len(SPEC)
    title = f"{school}住校学生进出校门登记表"
    wb = Workbook()
    ws = _sheet(wb, "进出校门登记", ncols, landscape=True)
    _title(ws, title, ncols)
    period = f"{term}（{cn_date(first)}至{cn_date(last)}{'，阶段存档' if partial else ''}）"
    _line(ws, 2, ncols, f"学校：{school}", f"学期：{period}")
    top = _header(ws, 3, SPEC)
    values = [[i, r["pupil"], r["student_no"], r["class"], cn_datetime(r["out_at"]), r["reason"] or "",
               r["approved_by"] or "未经批准", cn_datetime(r["approved_at"]) if r["approved_at"] else "",
               r["fetched_by"] or "无", r["relation"] or "", cn_datetime(r["due_back_at"]) if r["due_back_at"] else "",
               cn_datetime(r["in_at"]) if r["in_at"] else "未返校", r.get("alerts", "")]
              for i, r in enumerate(rows, start=1)]
    end = _rows(ws, top, values)
    _line(ws, end + 1, ncols, f"共 {len(rows)} 人次；存档人：{actor}", f"存档时间：{cn_datetime(issued_at)}")
    doc = {"trace": f"gate-log · {school} · {term} · {issued_at:%Y-%m-%d %H:%M}", "issued_on": issued_at.isoformat(),
           "title": title}
    xlsx_safe(wb)
    return _finish(wb, ws, {"doc": doc}, end + 1)


def archive_term(session: Session, ctx: CaseContext, school_code: str, *, day: date, actor: str, now: datetime,
                 partial: bool = False) -> GateArchive:
    """Archive a school's gate log of the term containing ``day`` (学期末存档备查) as XLSX."""
    school = session.scalar(select(School).where(School.code == school_code))
    if school is None:
        raise PreventionError(f"学校代码 {school_code} 不存在 (unknown school)")
    term = term_of(ctx, school, day)
    ended = now.date() > term.end
    if not ended and not partial:
        raise PreventionError(f"{term.label or term.start} 尚未结束（{term.end}），学期末存档；如需阶段存档请加 --partial "
                              "(term not over)")
    last = term.end if ended else now.date()
    start, end = datetime.combine(term.start, datetime.min.time()), datetime.combine(last + timedelta(days=1), datetime.min.time())
    scope = Scope(school_ids=frozenset({school.id}))
    rows = movements(session, scope=scope, start=start, end=end, as_of=now)
    alerts = session.execute(select(PreventionDuty.kind, PreventionDuty.ref_id, PreventionDuty.status, PreventionDuty.note)
                             .where(PreventionDuty.source == "gate", PreventionDuty.school_id == school.id)).all()
    by_move: dict[int, list[str]] = defaultdict(list)
    for kind, ref, status, note in alerts:
        by_move[ref].append(("未批准离校" if kind == "unapproved_exit" else "逾期未返") + ("（已处理）" if status == "done" else ""))
    for r in rows:
        r["alerts"] = "；".join(by_move.get(r["id"], []))
    label = term.label or f"{term.start}—{term.end}"
    content = gate_log_xlsx(school=school.name, term=label, first=term.start, last=last, rows=rows, actor=actor,
                            issued_at=now, partial=not ended)
    rel, sha = store_bytes(content, "xlsx", folder="gate")
    existing = session.scalar(select(GateArchive).where(GateArchive.school_id == school.id, GateArchive.term == label,
                                                        GateArchive.last_day == last))
    if existing is not None:
        return existing
    arch = GateArchive(school_id=school.id, term=label, first_day=term.start, last_day=last, movements=len(rows),
                       alerts=sum(1 for r in rows if r["alerts"]), path=rel, sha256=sha, actor=actor, archived_at=now,
                       partial=not ended)
    session.add(arch)
    session.flush()
    ids = [r["id"] for r in rows]
    for i in range(0, len(ids), 1000):
        session.execute(update(GateMovement).where(GateMovement.id.in_(ids[i:i + 1000])).values(archive_id=arch.id))
    session.flush()
    return arch
