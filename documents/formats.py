"""How documents write dates, times and rates (GB/T 9704: Arabic numerals, no leading zeros), and the
error a render raises. Shared by the HTML/PDF renderer and the XLSX writer without either importing
the other."""
from __future__ import annotations

from datetime import date
from typing import Any


class RenderError(RuntimeError):
    """A document could not be rendered (missing field, unknown kind or format)."""


def _as_date(value: Any) -> date:
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


_CN_DATES: dict[Any, str] = {}  # a day's documents print a few hundred distinct dates, each many times


def cn_date(value: Any) -> str:
    """2026-11-23 → 2026年11月23日 (GB/T 9704: Arabic numerals, no leading zeros)."""
    try:
        return _CN_DATES[value]
    except (KeyError, TypeError):  # TypeError: an unhashable value, formatted (or refused) below
        pass
    if value is None or value == "":
        return ""
    d = _as_date(value)
    text = f"{d.year}年{d.month}月{d.day}日"
    if type(value) in (str, date):
        if len(_CN_DATES) >= 4096:
            _CN_DATES.clear()
        _CN_DATES[value] = text
    return text


def cn_datetime(value: Any) -> str:
    """2026-11-23 09:05 → 2026年11月23日9时05分."""
    if value is None or value == "":
        return ""
    text = str(value)
    out = cn_date(text)
    if len(text) >= 16:
        out += f"{int(text[11:13])}时{text[14:16]}分"
    return out


def cn_short(value: Any) -> str:
    """2026-11-23 09:05 → 11月23日 09:05 (dense tables)."""
    if value is None or value == "":
        return ""
    text = str(value)
    d = _as_date(text)
    return f"{d.month}月{d.day}日" + (f" {text[11:16]}" if len(text) >= 16 else "")


def cn_month(value: Any) -> str:
    y, m = str(value)[:7].split("-")
    return f"{int(y)}年{int(m)}月"


def pct(value: Any) -> str:
    if value is None:
        return "—"
    return f"{float(value) * 100:.2f}%"
