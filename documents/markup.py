"""The smallest building blocks of the document templates, as Python functions (Jinja2 globals).

They were macros in ``templates/macros.html.j2``; a Jinja2 macro call costs ~15 µs (argument
binding, a new frame, the output joined into Markup), and a document calls these ten to forty times
(one ``blank`` per fillable cell). Each returns exactly the Markup its macro returned — the
golden check (tests/documents/test_render_golden.py) holds every kind's HTML byte-identical.
"""
from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape

_BOX_CHECKED = Markup('<span class="box">√</span>')
_BOX_EMPTY = Markup('<span class="box">□</span>')
_SIX_COLS = Markup('<colgroup><col style="width:14%"><col style="width:20%"><col style="width:11%">'
                   '<col style="width:20%"><col style="width:14%"><col style="width:21%"></colgroup>')


def blank(value: Any, cls: Any = "") -> Markup:
    """The value, or an empty underlined space to fill in by hand (``cls`` sizes it)."""
    if value is None or value == "":
        return Markup('<span class="blank ') + escape(cls) + Markup('"></span>')
    return escape(value)


def box(checked: Any) -> Markup:
    """A tick box: √ or □."""
    return _BOX_CHECKED if checked else _BOX_EMPTY


def yes_no(value: Any) -> Markup:
    """□是　□否 with the answer ticked."""
    return box(value == "是") + "是　" + box(value == "否") + "否"


def six_cols() -> Markup:
    """The column widths of the six-column form grid."""
    return _SIX_COLS


def form_meta(left: Any, right: Any) -> Markup:
    """The line above a form: who fills it in, and its reference."""
    return Markup('<div class="form-meta"><span>') + escape(left) + Markup("</span><span>") + escape(right) + Markup("</span></div>")


GLOBALS = {"blank": blank, "box": box, "yes_no": yes_no, "six_cols": six_cols, "form_meta": form_meta}
