"""学生进出校门登记表: a school's gate log of one term, for the term-end archive (seed 000 §二.3).

Drawn with the same sheet helpers as the other registers (documents/xlsx.py): title row, unit
and period line, header, thin borders, A4 landscape, the trace line in the footer.
"""
from __future__ import annotations

from datetime import date, datetime

from openpyxl import Workbook

try:  # formula-injection guard for text cells (store.tabular, added alongside this module)
    from store.tabular import xlsx_safe
except ImportError:  # pragma: no cover - a tree without it
    def xlsx_safe(book) -> None:
        return None

from .render import cn_date, cn_datetime
from .xlsx import _finish, _header, _line, _rows, _sheet, _title

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
