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

from types import FunctionType

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.nodes import EvalContext
from jinja2.runtime import LoopContext, Macro, missing
from markupsafe import Markup, _escape_inner, escape  # _escape_inner: markupsafe's C escaping of a str

from documents import markup

# Template globals called straight from the compiled code, past ``Context.call``: plain functions
# that take no context and never raise StopIteration (documents.markup's blank, box…).
DIRECT_CALLS = frozenset(f for f in markup.GLOBALS.values() if type(f) is FunctionType and not hasattr(f, "jinja_pass_arg"))


def escape_text(value: Any) -> Any:
    """``markupsafe.escape`` for output that is joined at once: a plain ``str`` comes back as ``str``."""
    if type(value) is str:
        return _escape_inner(value)
    if type(value) is Markup:  # a macro's or documents.markup's output: safe as it is
        return value
    if type(value) is int:
        return str(value)
    return escape(value)


class FastMacro(Macro):
    """A macro called with positional arguments only (the documents' way) binds them itself: the
    missing ones are ``missing`` (the macro's code fills in its defaults) and the output is the
    same Markup; any other call (keyword arguments, ``caller``, ``varargs``…) goes as before."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        count = self._argument_count
        if kwargs or self.caller or self.catch_kwargs or self.catch_varargs or not args \
                or type(args[0]) is not EvalContext or len(args) > count + 1 or self._environment.is_async:
            return super().__call__(*args, **kwargs)
        rv = self._func(*args[1:], *((missing,) * (count + 1 - len(args))))
        return _safe(Markup, rv) if args[0].autoescape else rv


_safe = str.__new__
_DICT_ATTRIBUTES = frozenset(dir(dict))
_LOOP_FIELDS = frozenset(k for k, v in vars(LoopContext).items() if isinstance(v, property) and k.isidentifier())


class DocumentCodeGenerator(CodeGenerator):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._escape_temps: list[str | None] = []

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        self._extends = node.find(nodes.Extends) is not None
        self.writeline("from documents.codegen import escape_text as _escape_text")
        self.writeline("from markupsafe import _escape_inner")
        self.writeline("from documents.codegen import DIRECT_CALLS as _direct_calls, FastMacro as _FastMacro")
        self.writeline("from types import FunctionType as _FunctionType")
        super().visit_Template(node, frame)

    def macro_def(self, macro_ref: Any, frame: Frame) -> None:
        self.write("_Fast")  # Jinja2 writes "Macro(environment, macro, …)": _FastMacro(…)
        super().macro_def(macro_ref, frame)

    @optimizeconst
    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:
        """``f(a, b)`` where ``f`` is one of ``DIRECT_CALLS``: called straight; anything else
        through ``context.call`` as before (the same expression, in the other branch)."""
        if forward_caller or node.kwargs or node.dyn_args or node.dyn_kwargs or self.environment.is_async \
                or self.environment.sandboxed:
            return super().visit_Call(node, frame, forward_caller=forward_caller)
        temp = self.temporary_identifier()
        self.write(f"({temp}(")
        for i, arg in enumerate(node.args):
            if i:
                self.write(", ")
            self.visit(arg, frame)
        self.write(f") if type({temp} := ")
        self.visit(node.node, frame)
        self.write(f") is _FunctionType and {temp} in _direct_calls else ")
        # Jinja2's own call, with the callee already evaluated
        self.write(f"context.call({temp}")
        loop_kwargs = {"_loop_vars": "_loop_vars"} if frame.loop_frame else {}
        block_kwargs = {"_block_vars": "_block_vars"} if frame.block_frame else {}
        self.signature(node, frame, {**loop_kwargs, **block_kwargs} or None)
        self.write("))")

    def blockvisit(self, body: Any, frame: Frame) -> None:
        """A block's function, and the root function of a template that extends nothing, collect all
        their output (their blocks' and includes' too) in one list and yield it once, joined."""
        whole_block = frame.block_frame and not frame.soft_frame
        whole_root = frame.rootlevel and frame.toplevel and not self._extends and not frame.require_output_check
        if frame.buffer is not None or self.environment.is_async or not (whole_block or whole_root):
            return super().blockvisit(body, frame)
        self._collected(frame, lambda: CodeGenerator.blockvisit(self, body, frame))

    def _collected(self, frame: Frame, visit: Any) -> None:
        """Run ``visit`` writing into a fresh list, then yield that list joined, once."""
        buffer = self.temporary_identifier()
        self.writeline(f"{buffer} = []")
        frame.buffer = buffer
        try:
            visit()
        finally:
            frame.buffer = None
        self.writeline(f"yield ''.join({buffer})")

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        if frame.eval_ctx.volatile or not frame.eval_ctx.autoescape:
            self._escape_temps.append(None)
            return super()._output_child_pre(node, frame, finalize)
        # (_escape_inner(t) if type(t := value) is str else t if type(t) is Markup else _escape_text(t)):
        # a str costs only the C escaping, a Markup (a macro's or a markup global's output) nothing
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
        self.write(f") is str else {temp} if type({temp}) is Markup else _escape_text({temp}))")

    @optimizeconst
    def visit_Getattr(self, node: nodes.Getattr, frame: Frame) -> None:
        """``a.b`` on a plain dict read inline as ``a["b"]`` when ``b`` is a key (what the
        Environment's ``getattr`` returns for it, see ``documents.render._Environment``); anything
        else — a missing key, a name a dict has as a method, another object — goes through
        ``environment.getattr`` as before."""
        if self.environment.is_async or node.attr in _DICT_ATTRIBUTES:
            return super().visit_Getattr(node, frame)
        if isinstance(node.node, nodes.Name) and node.node.name == "loop" and node.attr in _LOOP_FIELDS:
            # loop.last, loop.index…: the LoopContext's property read directly when it is one
            temp = self.temporary_identifier()
            self.write(f"({temp}.{node.attr} if type({temp} := ")
            self.visit(node.node, frame)
            self.write(f") is LoopContext else environment.getattr({temp}, {node.attr!r}))")
            return
        temp, attr = self.temporary_identifier(), repr(node.attr)
        self.write(f"({temp}[{attr}] if type({temp} := ")
        self.visit(node.node, frame)
        self.write(f") is dict and {attr} in {temp} else environment.getattr({temp}, {attr}))")

    def visit_Output(self, node: nodes.Output, frame: Frame) -> None:
        if frame.buffer is not None or frame.require_output_check or len(node.nodes) < 2:
            return super().visit_Output(node, frame)
        self._collected(frame, lambda: CodeGenerator.visit_Output(self, node, frame))
