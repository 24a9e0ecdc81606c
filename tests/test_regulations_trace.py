"""docs/regulations.md (the clause trace) stays honest: every test it names exists, every row has a
status, and the counts at the top are the rows' counts. Fragments in docs/regulations/*.md (other
helpers' rows, same columns), if any are waiting to be folded in, are checked the same way."""
from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT / "docs" / "regulations.md"
FRAGMENTS = sorted((ROOT / "docs" / "regulations").glob("*.md")) if (ROOT / "docs" / "regulations").is_dir() else []
STATUSES = ("implemented", "partial", "missing")
NODE = re.compile(r"(tests/[\w/]+\.py)::(\w+)")
COUNTS = re.compile(r"\*\*Counts[^:]*: (\d+) clauses — (\d+) implemented, (\d+) partial, (\d+) missing\.\*\*")


def rows(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, cells) of every table row that is a clause (header and rule excluded)."""
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.startswith("|") or line.startswith("|---") or line.startswith("| seed |"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        out.append((n, cells))
    return out


def _test_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.name.startswith("test_")}


@pytest.mark.parametrize("path", [TRACE, *FRAGMENTS], ids=lambda p: p.name)
def test_every_named_test_exists_and_every_row_is_well_formed(path):
    problems, cache = [], {}
    found = rows(path)
    assert found, f"{path}: no clause rows"
    for n, cells in found:
        if len(cells) != 6:
            problems.append(f"{path.name}:{n}: {len(cells)} columns, want 6 (seed|section|quote|implemented by|test|status)")
            continue
        seed, section, quote, by, tests, status = cells
        if status not in STATUSES:
            problems.append(f"{path.name}:{n}: status '{status}' not one of {STATUSES}")
        if not re.fullmatch(r"00[0-3]", seed):
            problems.append(f"{path.name}:{n}: seed '{seed}' is not 000–003")
        if not (section and quote and by):
            problems.append(f"{path.name}:{n}: empty section, quote or implemented-by")
        nodes = NODE.findall(tests)
        if status == "missing":
            if not by.startswith("not implemented"):
                problems.append(f"{path.name}:{n}: a missing clause says 'not implemented: why'")
        elif not nodes:
            problems.append(f"{path.name}:{n}: an {status} clause names the test that proves it")
        for file, name in nodes:
            target = ROOT / file
            if not target.is_file():
                problems.append(f"{path.name}:{n}: {file} does not exist")
                continue
            if name not in cache.setdefault(file, _test_functions(target)):
                problems.append(f"{path.name}:{n}: {file}::{name} does not exist")
    assert not problems, "\n".join(problems)


def test_the_counts_at_the_top_are_the_rows_counts():
    text = TRACE.read_text(encoding="utf-8")
    m = COUNTS.search(text)
    assert m, "docs/regulations.md states its counts: **Counts …: N clauses — a implemented, b partial, c missing.**"
    stated = tuple(int(x) for x in m.groups())
    tally = Counter(cells[5] for _, cells in rows(TRACE) if len(cells) == 6)
    actual = (sum(tally.values()), tally["implemented"], tally["partial"], tally["missing"])
    assert stated == actual, f"the header says {stated}, the table has {actual} (total, implemented, partial, missing)"
