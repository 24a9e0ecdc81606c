"""The smallest building blocks of the document templates, as Python functions (Jinja2 globals).

They were macros in ``templates/macros.html.j2``; a Jinja2 macro call costs ~15 µs (argument
binding, a new frame, the output joined into Markup), and a document calls these ten to forty times
(one ``blank`` per fillable cell). Each returns exactly the Markup its macro returned — the
golden check (tests/documents/test_render_golden.py) holds every kind's HTML byte-identical.
"""
from __future__ import annotations

from typing import Any

from markupsafe import Markup, _escape_inner, escape  # _escape_inner: markupsafe's C escaping of a str

_safe = str.__new__  # _safe(Markup, text): the Markup of a text already escaped (Markup(text) less its __html__ probe)


def _text(value: Any) -> str:
    """``escape(value)`` as the plain text that goes into a join."""
    if type(value) is str:
        return _escape_inner(value)
    return str(escape(value))


_BOX_CHECKED = Markup('<span class="box">√</span>')
_BOX_EMPTY = Markup('<span class="box">□</span>')
_SIX_COLS = Markup('<colgroup><col style="width:14%"><col style="width:20%"><col style="width:11%">'
                   '<col style="width:20%"><col style="width:14%"><col style="width:21%"></colgroup>')


_BLANKS: dict[str, Markup] = {}  # one per size: "", "short", "long"…


def blank(value: Any, cls: Any = "") -> Markup:
    """The value, or an empty underlined space to fill in by hand (``cls`` sizes it)."""
    if value is None or value == "":
        if type(cls) is str:
            try:
                return _BLANKS[cls]
            except KeyError:
                if len(_BLANKS) > 64:
                    _BLANKS.clear()
                made = _BLANKS[cls] = _safe(Markup, '<span class="blank ' + _escape_inner(cls) + '"></span>')
                return made
        return Markup('<span class="blank ') + escape(cls) + Markup('"></span>')
    if type(value) is str:
        return _safe(Markup, _escape_inner(value))
    return escape(value)


def box(checked: Any) -> Markup:
    """A tick box: √ or □."""
    return _BOX_CHECKED if checked else _BOX_EMPTY


_YES_NO = {(a, b): box(a) + "是　" + box(b) + "否" for a in (False, True) for b in (False, True)}


def yes_no(value: Any) -> Markup:
    """□是　□否 with the answer ticked."""
    return _YES_NO[bool(value == "是"), bool(value == "否")]


def six_cols() -> Markup:
    """The column widths of the six-column form grid."""
    return _SIX_COLS


def form_meta(left: Any, right: Any) -> Markup:
    """The line above a form: who fills it in, and its reference."""
    return _safe(Markup, "".join(('<div class="form-meta"><span>', _text(left), "</span><span>", _text(right), "</span></div>")))


GLOBALS = {"blank": blank, "box": box, "yes_no": yes_no, "six_cols": six_cols, "form_meta": form_meta}
