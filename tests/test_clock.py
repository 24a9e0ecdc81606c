"""One clock: the store, the documents and the pure domain never read the wall clock for domain
time (they are given ``now``); the zone is named once (machines.clock) and read once (store.clock)."""
from __future__ import annotations

import ast
from datetime import datetime
from pathlib import Path

from machines.clock import TIMEZONE, FixedClock, SimulatedClock

ROOT = Path(__file__).resolve().parents[1]
WALL_CLOCK = {("datetime", "now"), ("datetime", "today"), ("datetime", "utcnow"), ("date", "today"), ("time", "time")}
SYSTEM_CLOCK = ROOT / "store" / "clock.py"  # the one implementation that reads it


def _calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", None)
            if (name, node.func.attr) in WALL_CLOCK:
                yield node.lineno, f"{name}.{node.func.attr}()"


def test_no_store_documents_or_machines_module_reads_the_wall_clock():
    found = [(str(p.relative_to(ROOT)), line, call)
             for folder in ("store", "documents", "machines") for p in sorted((ROOT / folder).rglob("*.py"))
             if p != SYSTEM_CLOCK for line, call in _calls(p)]
    assert found == []
    assert list(_calls(SYSTEM_CLOCK))  # the scan sees a call where there is one


def test_the_zone_is_named_once_and_read_once():
    named, read = [], []
    for folder in ("store", "documents", "machines", "tasks", "flows", "web", "deploy"):
        for p in sorted((ROOT / folder).rglob("*.py")):
            text = p.read_text(encoding="utf-8")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.Constant) and node.value == TIMEZONE:
                    named.append(str(p.relative_to(ROOT)))
                if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "ZoneInfo":
                    read.append(str(p.relative_to(ROOT)))
    assert named == ["machines/clock.py"] and read == ["store/clock.py"]


def test_the_clocks_move_only_when_told():
    at = datetime(2026, 11, 16, 9, 30)
    assert FixedClock(at).now() == at
    sim = SimulatedClock(at)
    sim.set(datetime(2026, 11, 17, 9, 30))
    assert sim.now() == datetime(2026, 11, 17, 9, 30)
    try:
        sim.set(at)
    except ValueError:
        pass
    else:
        raise AssertionError("a simulated clock went back")
