"""The document Environment's Jinja2 code generator: the same templates, compiled to cheaper Python.

Jinja2 compiles ``{{ x }}`` to ``yield escape(x)``: one generator resumption per piece of output,
passed up through every ``extends``/``block`` level (``yield from``), and a ``Markup`` object built
for every escaped value only to be joined into a string. Two changes, nothing a reader sees:

- every output statement outside a buffer (a run of text and ``{{ }}`` between tags) is collected
  into a list and yielded once, joined — what Jinja2 already does inside macros and ``set`` blocks;
- an autoescaped ``str`` is escaped straight to a ``str`` (markupsafe's own escaping, without the
  ``Markup`` wrapper: the value only goes into that join); anything else (Markup, numbers,
  Undefined, which raises) goes through ``markupsafe.escape`` as before.

Output stays byte-identical: tests/documents/test_render_golden.py holds every kind's HTML to the
hashes written before this module existed. Written against Jinja2 3.1 (``requirements.lock``); it
overrides three methods of ``jinja2.compiler.CodeGenerator`` and falls back to them in every case it
does not handle (volatile autoescape, output checks before an ``extends``, a single piece).
"""
from __future__ import annotations

from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from markupsafe import Markup, _escape_inner, escape  # _escape_inner: markupsafe's C escaping of a str


def escape_text(value: Any) -> Any:
    """``markupsafe.escape`` for output that is joined at once: a plain ``str`` comes back as ``str``."""
    if type(value) is str:
        return _escape_inner(value)
    if type(value) is Markup:  # a macro's or documents.markup's output: safe as it is
        return value
    if type(value) is int:
        return str(value)
    return escape(value)


_DICT_ATTRIBUTES = frozenset(dir(dict))


class DocumentCodeGenerator(CodeGenerator):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._escape_temps: list[str | None] = []

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        self._extends = node.find(nodes.Extends) is not None
        self.writeline("from documents.codegen import escape_text as _escape_text")
        self.writeline("from markupsafe import _escape_inner")
        super().visit_Template(node, frame)

    def blockvisit(self, body: Any, frame: Frame) -> None:
        """A block's function, and the root function of a template that extends nothing, collect all
        their output (their blocks' and includes' too) in one list and yield it once, joined."""
        whole_block = frame.block_frame and not frame.soft_frame
        whole_root = frame.rootlevel and frame.toplevel and not self._extends and not frame.require_output_check
        if frame.buffer is not None or self.environment.is_async or not (whole_block or whole_root):
            return super().blockvisit(body, frame)
        buffer = self.temporary_identifier()
        self.writeline(f"{buffer} = []")
        frame.buffer = buffer
        try:
            super().blockvisit(body, frame)
        finally:
            frame.buffer = None
        self.writeline(f"yield ''.join({buffer})")

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        if frame.eval_ctx.volatile or not frame.eval_ctx.autoescape:
            self._escape_temps.append(None)
            return super()._output_child_pre(node, frame, finalize)
        # (_escape_inner(t) if type(t := value) is str else _escape_text(t)): no call for a str but the C one
        temp = self.temporary_identifier()
        self._escape_temps.append(temp)
        self.write(f"(_escape_inner({temp}) if type({temp} := ")
        if finalize.src is not None:
            self.write(finalize.src)

    def _output_child_post(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        temp = self._escape_temps.pop()
        if temp is None:
            return super()._output_child_post(node, frame, finalize)
        if finalize.src is not None:
            self.write(")")
        self.write(f") is str else _escape_text({temp}))")

    @optimizeconst
    def visit_Getattr(self, node: nodes.Getattr, frame: Frame) -> None:
        """``a.b`` on a plain dict read inline as ``a["b"]`` when ``b`` is a key (what the
        Environment's ``getattr`` returns for it, see ``documents.render._Environment``); anything
        else — a missing key, a name a dict has as a method, another object — goes through
        ``environment.getattr`` as before."""
        if self.environment.is_async or node.attr in _DICT_ATTRIBUTES:
            return super().visit_Getattr(node, frame)
        temp, attr = self.temporary_identifier(), repr(node.attr)
        self.write(f"({temp}[{attr}] if type({temp} := ")
        self.visit(node.node, frame)
        self.write(f") is dict and {attr} in {temp} else environment.getattr({temp}, {attr}))")

    def visit_Output(self, node: nodes.Output, frame: Frame) -> None:
        if frame.buffer is not None or frame.require_output_check or len(node.nodes) < 2:
            return super().visit_Output(node, frame)
        buffer = self.temporary_identifier()
        self.writeline(f"{buffer} = []")
        frame.buffer = buffer
        try:
            super().visit_Output(node, frame)
        finally:
            frame.buffer = None
        self.writeline(f"yield ''.join({buffer})")
