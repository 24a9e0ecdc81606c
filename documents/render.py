"""Render a document context to HTML (preview), PDF (print) or XLSX (tables).

One Jinja2 ``Environment`` (autoescape, StrictUndefined: a missing field fails the render), one
WeasyPrint ``FontConfiguration`` and one parsed stylesheet per process. ``fonts.configure()`` runs
on import, before WeasyPrint is imported (lazily, on the first PDF), so the font aliases apply.
"""
from __future__ import annotations

import base64
import hashlib
import mimetypes
import os
import threading
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from types import FunctionType
from typing import Any, Callable, MutableMapping

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template
from jinja2.runtime import Context, Macro
from jinja2.utils import internalcode

from documents import catalog, fonts, markup
from documents.codegen import DocumentCodeGenerator, FastMacro
from documents.formats import RenderError, cn_date, cn_datetime, cn_month, cn_short, pct  # noqa: F401 - the filters

fonts.configure()

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATE_DIR = PACKAGE_DIR / "templates"
STYLESHEET = PACKAGE_DIR / "style.css"


@dataclass(frozen=True)
class Rendition:
    fmt: str
    content: bytes

    @property
    def media_type(self) -> str:
        return catalog.MEDIA_TYPES[self.fmt]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


# -- Jinja ---------------------------------------------------------------------------------------
def banner_size(chars: int) -> float:
    """发文机关标志: as large as fits the 156 mm text block (at most 42 pt, letter-spaced 0.06 em)."""
    return round(min(42.0, 150 / 0.3528 / max(chars, 1) / 1.06), 1)


FILTERS: dict[str, Callable[..., Any]] = {"cn_date": cn_date, "cn_datetime": cn_datetime, "cn_short": cn_short,
                                          "cn_month": cn_month, "pct": pct}
GLOBALS: dict[str, Callable[..., Any]] = {"banner_size": banner_size, **markup.GLOBALS}

_DICT_ATTRIBUTES = frozenset(dir(dict))


class _Context(Context):
    """Jinja2's render context, with the call of a plain function or a macro made directly.

    ``Context.call`` asks every callee whether it wants the context, eval context or environment
    (three attribute probes) before calling it; the kinds call ``blank``, ``box``… and the macros a
    few dozen times a document. A plain function without ``jinja_pass_arg`` and a ``Macro`` (which
    takes the eval context) are called as ``Context.call`` would call them; everything else goes
    the usual way.
    """

    @internalcode
    def call(__self, __obj: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - as Context.call
        if type(__obj) is FunctionType and not hasattr(__obj, "jinja_pass_arg"):
            pass
        elif type(__obj) is FastMacro or type(__obj) is Macro:
            args = (__self.eval_ctx, *args)
        else:
            return super().call(__obj, *args, **kwargs)
        kwargs.pop("_block_vars", None)
        kwargs.pop("_loop_vars", None)
        try:
            return __obj(*args, **kwargs)
        except StopIteration:
            return __self.environment.undefined("value was undefined because a callable raised a StopIteration exception")


class _Environment(Environment):
    """Jinja2's Environment made cheaper per render, for the same output:

    - ``a.b`` on a plain dict is looked up as the item first. Jinja2 tries ``getattr(a, "b")``
      and, when that raises AttributeError (every field of a document context: they are dicts),
      ``a["b"]``; the raise and catch cost about a sixth of a render. For a ``dict`` whose class
      has no attribute ``b`` the answer is the same; a name dict itself has (``items``, ``get``…)
      and every other object go the usual way.
    - templates are compiled by ``documents.codegen`` (output joined per statement, no Markup per
      value) and rendered in ``_Context`` (direct calls);
    - a template's globals are one flat dict, not a ChainMap over the environment's (copied into
      every render's context and compared on every import); the globals are all set before the
      first template loads (``environment()``) and never change;
    - a loaded template is found by name in a plain dict (``auto_reload`` is off, and every
      template fits the cache: the LRU bookkeeping and its lock are pure cost).
    """

    code_generator_class = DocumentCodeGenerator
    context_class = _Context

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        try:  # Environment.getattr, in this frame (a macro module's macros, a loop's fields)
            return getattr(obj, attribute)
        except AttributeError:
            pass
        try:
            return obj[attribute]
        except (TypeError, LookupError, AttributeError):
            return self.undefined(obj=obj, name=attribute)

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        return {**self.globals, **(d or {})}

    @internalcode
    def get_template(self, name: Any, parent: str | None = None, globals: MutableMapping[str, Any] | None = None) -> Template:
        if globals is None and type(name) is str:
            try:
                return self._by_name[name]
            except KeyError:
                template = self._by_name[name] = super().get_template(name, parent)
                return template
        return super().get_template(name, parent, globals)


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = _Environment(
        loader=FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
        cache_size=400,
    )
    env._by_name = {}
    env.filters.update(FILTERS)
    env.globals.update(GLOBALS)
    return env


@lru_cache(maxsize=1)
def stylesheet_text() -> str:
    """The stylesheet with the title weight chosen for the fonts actually installed."""
    return STYLESHEET.read_text(encoding="utf-8") + f"\n:root {{ --title-weight: {fonts.title_weight()}; }}\n"


@lru_cache(maxsize=1)
def templates_digest() -> str:
    """SHA-256 over every template and the stylesheet: which layout version drew a document."""
    h = hashlib.sha256()
    for path in sorted([*TEMPLATE_DIR.rglob("*.j2"), STYLESHEET]):
        h.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


PHOTO_FOLDERS = ("archive:attachments/", "archive:photos/")  # photos/: visit photos stored before attachments


def _img_src(archive_dir: Path | None) -> Callable[[str], str]:
    """Photos are given as data: URIs or ``archive:<relative path>``; both render as data: URIs."""

    def resolve(src: str) -> str:
        if src.startswith("data:"):
            return src
        if src.startswith("archive:"):
            if archive_dir is None:
                raise RenderError(f"photo {src} needs the archive directory")
            root = archive_dir.resolve()
            path = (root / src.removeprefix("archive:")).resolve()
            if root not in path.parents or not src.startswith(PHOTO_FOLDERS):  # photos only, not reports
                raise RenderError(f"photo {src} is outside the archive")
            mime = mimetypes.guess_type(path.name)[0] or "image/jpeg"
            return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()
        raise RenderError(f"photo source must be data: or archive:, got {src[:40]!r}")

    return resolve


def _extras(kind: catalog.Kind, context: dict) -> dict[str, Any]:
    """Things drawn from the data at render time and not archived separately (the month's chart)."""
    if kind.id == "monthly_report":
        from documents.charts import month_chart_png

        png = month_chart_png(context["report"])
        return {"chart": "data:image/png;base64," + base64.b64encode(png).decode()}
    return {}


def render_html(context: dict, *, standalone: bool = True, archive_dir: Path | None = None) -> str:
    """HTML of a document; ``standalone`` inlines the stylesheet (the preview file)."""
    kind = catalog.get(context["doc"]["kind"])
    env = environment()
    try:
        template = env.get_template(kind.template)
        return template.render(
            **context, **_extras(kind, context), layout=kind.layout, standalone=standalone,
            stylesheet=stylesheet_text() if standalone else "", img_src=_img_src(archive_dir),
        )
    except RenderError:
        raise
    except Exception as exc:  # StrictUndefined, template syntax, bad data
        raise RenderError(f"{kind.id}: {type(exc).__name__}: {exc}") from exc


# -- WeasyPrint ----------------------------------------------------------------------------------
_lock = threading.Lock()


class _Engine:
    """WeasyPrint with one FontConfiguration and one parsed stylesheet (per process)."""

    def __init__(self) -> None:
        import weasyprint
        from weasyprint.text.fonts import FontConfiguration

        self.weasyprint = weasyprint
        if os.environ.get("BAOXUE_PLAIN_WEASYPRINT") != "1":
            from documents import weasy_tuning

            weasy_tuning.apply()
        self.font_config = FontConfiguration()
        self.css = weasyprint.CSS(string=stylesheet_text(), font_config=self.font_config)
        self.fetcher = weasyprint.urls.URLFetcher(allowed_protocols={"data"})

    def document(self, html: str):
        doc = self.weasyprint.HTML(string=html, base_url=str(TEMPLATE_DIR), url_fetcher=self.fetcher)
        return doc.render(stylesheets=[self.css], font_config=self.font_config)

    def pdf(self, html: str) -> bytes:
        return self.document(html).write_pdf(pdf_identifier=_pdf_id(html))


def _pdf_id(html: str) -> bytes:
    return hashlib.md5(html.encode(), usedforsecurity=False).hexdigest().encode()


@lru_cache(maxsize=1)
def engine() -> _Engine:
    return _Engine()


def render_pdf(context: dict, *, archive_dir: Path | None = None) -> bytes:
    html = render_html(context, standalone=False, archive_dir=archive_dir)
    # Pango's font map is not thread-safe: one render at a time per process.
    with _lock:
        return engine().pdf(html)


# -- the one entry point -------------------------------------------------------------------------
def render(context: dict, fmt: str = "pdf", *, archive_dir: Path | None = None) -> Rendition:
    kind = catalog.get(context["doc"]["kind"])
    if fmt not in kind.formats:
        raise RenderError(f"{kind.id} has no {fmt} format (formats: {', '.join(kind.formats)})")
    if fmt == "pdf":
        return Rendition("pdf", render_pdf(context, archive_dir=archive_dir))
    if fmt == "html":
        return Rendition("html", render_html(context, archive_dir=archive_dir).encode("utf-8"))
    if fmt == "xlsx":
        from documents.xlsx import render_xlsx

        return Rendition("xlsx", render_xlsx(context))
    raise RenderError(f"unknown format {fmt}")
