"""The document Environment's compiled shortcuts (documents/codegen.py, documents/render.py) give what
plain Jinja2 gives, also off the documents' beaten path: macros called with keywords, defaults and a
caller, ``loop`` that is not a loop, dict keys named like dict methods, callables that want the
context, missing fields (StrictUndefined must still fail the render)."""
from __future__ import annotations

import pytest
from jinja2 import Environment, StrictUndefined, pass_context
from markupsafe import Markup

from documents.render import FILTERS, GLOBALS, environment

TEMPLATES = [
    # macros: positional, defaults, keywords, caller, varargs, kwargs, nested
    "{% macro m(a, b='x<', c=3) %}[{{ a }}|{{ b }}|{{ c }}]{% endmacro %}{{ m(1) }}{{ m('<a>', 2) }}{{ m(1, c='&') }}{{ m(a=5) }}",
    "{% macro box2(x) %}<{{ x }}>{{ caller() }}{% endmacro %}{% call box2('&') %}in{{ 1 + 1 }}{% endcall %}",
    "{% macro v() %}{{ varargs | join(',') }}{{ kwargs | dictsort | join(';') }}{% endmacro %}{{ v(1, 2, k='<') }}",
    "{% macro outer(x) %}{% macro inner(y) %}({{ y }}){% endmacro %}{{ inner(x) }}{{ inner(x ~ '&') }}{% endmacro %}{{ outer('<') }}",
    # loop fields, and a ``loop`` that is a plain value
    "{% for x in xs %}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{% endfor %}",
    "{% for x in xs %}{% for y in xs %}{{ loop.depth }}{{ loop.index0 }}{% endfor %}{% endfor %}",
    "{{ loop.last }}{{ loop.index }}",
    # dict attributes: keys, dict method names, nested, Markup values, numbers, None
    "{{ d.a }}{{ d.b.c }}{{ d.items }}{{ d.get('a') }}{{ d.m }}{{ d.n }}{{ d.none }}{{ d.f }}",
    "{{ obj.real }}{{ obj.imag }}",
    # calls: the markup globals, a context function, a bound method, keyword calls of the globals
    "{{ blank(none) }}{{ blank('', 'short') }}{{ blank('<b>') }}{{ blank(7) }}{{ box(1) }}{{ yes_no('否') }}"
    "{{ form_meta('<l>', m_) }}{{ blank(value='x', cls='y') }}{{ ctxf() }}{{ d.keys() | list | length }}",
    # escaping of every kind of value, autoescape switched off and on
    "{{ '<' }}{{ m_ }}{{ 1 }}{{ 1.5 }}{{ none }}{{ [1, '<'] }}{% autoescape false %}{{ '<' }}{% endautoescape %}",
    # blocks, set blocks, filters over blocks, includes are covered by the golden documents
    "{% set s %}<{{ d.a }}>{% endset %}{{ s }}{% filter upper %}a{{ '<b>' }}{% endfilter %}",
]


@pass_context
def _ctxf(context):
    return "ctx:" + str(context["d"]["a"])


VARS = {"xs": ["a", "b", "<c>"], "loop": {"last": "L", "index": "I"}, "m_": Markup("<i>m</i>"), "obj": 3 + 4j,
        "d": {"a": "<a&>", "b": {"c": 1}, "items": "<items>", "m": Markup("<b>"), "n": 2, "none": None, "f": 1.25},
        "ctxf": _ctxf}


def _plain() -> Environment:
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(FILTERS)
    env.globals.update(GLOBALS)
    return env


@pytest.mark.parametrize("source", TEMPLATES)
def test_the_compiled_shortcuts_render_what_plain_jinja2_renders(source):
    ours = environment().from_string(source).render(**VARS)
    assert ours == _plain().from_string(source).render(**VARS)
    assert ours  # every template writes something


@pytest.mark.parametrize("source", ["{{ d.missing }}", "{{ d.b.missing }}", "{{ nothing.a }}",
                                    "{% macro m(a) %}{{ a }}{% endmacro %}{{ m() }}", "{{ blank(d.missing) }}"])
def test_a_missing_field_still_fails_the_render(source):
    from jinja2 import UndefinedError

    for env in (environment(), _plain()):
        with pytest.raises(UndefinedError):
            env.from_string(source).render(**VARS)
