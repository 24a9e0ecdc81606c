"""Measured per-process savings WeasyPrint does not offer as options (see bench/documents.py).

1. **Font blobs.** For every document, WeasyPrint copies each font it uses into Python bytes
   (``Font.file_content``), the whole file: 20–27 MB for a CJK collection, ~15 ms per font, and
   then subsets from the HarfBuzz face, not from that copy. We keep one copy per font face for
   the life of the process. Only faces that come from Pango's font map are cached (they live as
   long as the process's single FontConfiguration anyway); the per-document subset faces never are.
2. **Stream compression.** pydyf deflates every stream at level 9. On subset CJK fonts level 6
   is 2–3× faster for 0.2 % more bytes. We lower the level to ``LEVEL``.
3. **Repeated subsets.** Documents of one kind share most of their title and label glyphs (the
   title font of every 返校通知书 of a township draws the same characters; the 黑体 of a form
   its field labels). A subset depends only on the face and the glyph ids, so the last
   ``SUBSETS`` results are kept, and so are the deflated bytes of the last ``STREAMS`` large
   streams (a font program that came out of the subset cache deflates to the same bytes).
4. **C array types.** WeasyPrint's HarfBuzz subsetting allocates its glyph arrays as
   ``ffi.new(f"hb_codepoint_t[{n}]", …)``: a new C type string for every length, which cffi parses
   with pycparser each time (~20 ms a document). The fonts module gets an ``ffi`` whose ``new``
   asks for the open array type ``T[]`` with the same items (the same allocation, one parse).

All are applied when the document engine starts (``documents.render.engine``); ``plain()``
switches them off for a block (the benchmark's baseline). If WeasyPrint or pydyf change their
internals, the tuning does nothing instead of failing (``applied()`` tells which parts took).
"""
from __future__ import annotations

import threading
import zlib
import hashlib
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Iterator

LEVEL = 6
SUBSETS = 48        # subset font programs kept (a few hundred kB each)
STREAMS = 48        # deflated large streams kept
BIG_STREAM = 32 * 1024

_lock = threading.RLock()
_state: dict[str, Any] = {"applied": set(), "originals": {}}
_faces: dict[int, Any] = {}        # address → the cdata that keeps the Pango face alive
_blobs: dict[int, bytes] = {}      # address → the face's whole font file
_subsets: "OrderedDict[tuple, bytes]" = OrderedDict()
_streams: "OrderedDict[bytes, bytes]" = OrderedDict()


def _remember(cache: OrderedDict, key: Any, value: bytes, size: int) -> None:
    with _lock:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > size:
            cache.popitem(last=False)


def _recall(cache: OrderedDict, key: Any) -> bytes | None:
    with _lock:
        value = cache.get(key)
        if value is not None:
            cache.move_to_end(key)
        return value


class _Deflate:
    """A compressobj that deflates at LEVEL and remembers large results (whole input at flush)."""

    def __init__(self, level: int, args: tuple, kwargs: dict):
        self._level, self._args, self._kwargs = level, args, kwargs
        self._parts: list[bytes] = []

    def compress(self, data: bytes) -> bytes:
        self._parts.append(bytes(data))
        return b""

    def flush(self, *mode: int) -> bytes:
        data = b"".join(self._parts)
        self._parts = []
        key = hashlib.sha1(data).digest() + len(data).to_bytes(8, "big") if len(data) >= BIG_STREAM else None
        if key is not None and (hit := _recall(_streams, key)) is not None:
            return hit
        c = zlib.compressobj(self._level, *self._args, **self._kwargs)
        out = c.compress(data) + c.flush(*mode)
        if key is not None:
            _remember(_streams, key, out, STREAMS)
        return out


class _OpenArrays:
    """cffi's FFI, with ``new("T[n]", items)`` made as ``new("T[]", items)`` (parsed once)."""

    def __init__(self, ffi: Any):
        self._ffi = ffi

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ffi, name)

    def new(self, cdecl: Any, init: Any = None):
        if init is not None and isinstance(cdecl, str) and cdecl.endswith("]") and "[" in cdecl:
            head, _, size = cdecl[:-1].rpartition("[")
            if size.isdigit() and int(size) == len(init):
                return self._ffi.new(head + "[]", init)
        return self._ffi.new(cdecl, init)


class _Zlib:
    """pydyf's view of zlib: the same module, with compressobj capped at LEVEL (and remembered)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(zlib, name)

    @staticmethod
    def compressobj(level: int = -1, *args: Any, **kwargs: Any):
        return _Deflate(min(level, LEVEL) if level >= 0 else level, args, kwargs)


def apply() -> set[str]:
    """Install the tuning (idempotent); returns the parts that took."""
    with _lock:
        if _state["applied"]:
            return set(_state["applied"])
        done: set[str] = set()
        try:
            import pydyf

            if getattr(pydyf, "zlib", None) is zlib:
                _state["originals"]["pydyf.zlib"] = pydyf.zlib
                pydyf.zlib = _Zlib()
                done.add("compression")
        except ImportError:  # pragma: no cover
            pass
        try:
            from weasyprint.pdf import fonts as pdf_fonts
            from weasyprint.text.ffi import ffi

            get_face = pdf_fonts.get_pango_font_hb_face
            get_data = pdf_fonts.get_hb_object_data

            def pango_face(pango_font):
                face = get_face(pango_font)
                address = int(ffi.cast("uintptr_t", face))
                with _lock:
                    _faces.setdefault(address, face)
                return face

            def object_data(hb_object, ot_color=None, glyph=None):
                if ot_color is None and glyph is None:
                    address = int(ffi.cast("uintptr_t", hb_object))
                    if address in _faces:
                        blob = _blobs.get(address)
                        if blob is None:
                            blob = get_data(hb_object)
                            with _lock:
                                _blobs[address] = blob
                        return blob
                return get_data(hb_object, ot_color, glyph)

            font_subset = pdf_fonts.Font.subset

            def subset(font, to_unicode, hinting):
                address = int(ffi.cast("uintptr_t", font.hb_face))
                if not to_unicode or address not in _faces:
                    return font_subset(font, to_unicode, hinting)
                key = (address, font.index, frozenset(to_unicode), bool(hinting), bool(font.missing))
                hit = _recall(_subsets, key)
                if hit is not None:
                    font.file_content = hit
                    return None
                font_subset(font, to_unicode, hinting)
                _remember(_subsets, key, font.file_content, SUBSETS)
                return None

            _state["originals"]["fonts"] = (get_face, get_data, font_subset)
            if getattr(pdf_fonts, "ffi", None) is ffi:
                _state["originals"]["fonts.ffi"] = ffi
                pdf_fonts.ffi = _OpenArrays(ffi)
                done.add("array_types")
            pdf_fonts.get_pango_font_hb_face = pango_face
            pdf_fonts.get_hb_object_data = object_data
            pdf_fonts.Font.subset = subset
            done.add("font_blobs")
            done.add("subsets")
        except (ImportError, AttributeError):  # pragma: no cover - a WeasyPrint without these internals
            pass
        _state["applied"] = done
        return set(done)


def restore() -> None:
    """Put WeasyPrint and pydyf back as they were."""
    with _lock:
        originals = _state["originals"]
        if "pydyf.zlib" in originals:
            import pydyf

            pydyf.zlib = originals.pop("pydyf.zlib")
        if "fonts" in originals:
            from weasyprint.pdf import fonts as pdf_fonts

            pdf_fonts.get_pango_font_hb_face, pdf_fonts.get_hb_object_data, pdf_fonts.Font.subset = originals.pop("fonts")
            if "fonts.ffi" in originals:
                pdf_fonts.ffi = originals.pop("fonts.ffi")
        _state["applied"] = set()


def applied() -> set[str]:
    return set(_state["applied"])


@contextmanager
def plain() -> Iterator[None]:
    """WeasyPrint as shipped, for the duration of the block (not thread-safe: benchmarks only)."""
    was = applied()
    restore()
    try:
        yield
    finally:
        if was:
            apply()
