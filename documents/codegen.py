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
from jinja2.compiler import CodeGenerator, Frame
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


class DocumentCodeGenerator(CodeGenerator):
    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        self.writeline("from documents.codegen import escape_text as _escape_text")
        super().visit_Template(node, frame)

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        if frame.eval_ctx.volatile or not frame.eval_ctx.autoescape:
            return super()._output_child_pre(node, frame, finalize)
        self.write("_escape_text(")
        if finalize.src is not None:
            self.write(finalize.src)

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
