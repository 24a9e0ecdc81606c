"""Generate the case-machine diagram from the class (never drawn by hand)."""
from __future__ import annotations

from pathlib import Path

from statemachine.contrib.diagram import formatter

from machines.case_machine import CaseMachine


def mermaid() -> str:
    return formatter.render(CaseMachine, "mermaid")


def write_diagrams(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    mmd, svg, actions = out / "case_machine.mmd", out / "case_machine.svg", out / "case_actions.md"
    mmd.write_text(mermaid(), encoding="utf-8")
    svg.write_text(formatter.render(CaseMachine, "svg"), encoding="utf-8")
    actions.write_text(actions_table(), encoding="utf-8")
    return [mmd, svg, actions]


def actions_table() -> str:
    """Markdown table: which staff actions the machine allows in which state (read off the class)."""
    from machines.case_machine import allowed_events
    from machines.states import ACTION_LABELS, LADDER, REFERRED_STATES, Action

    live = (*LADDER, *sorted(REFERRED_STATES))  # the ladder, then the referred (tracked) phase
    head = "| action | " + " | ".join(f"`{s.value}`" for s in live) + " |"
    rule = "|---" * (len(live) + 1) + "|"
    rows = [
        f"| `{a.value}` {ACTION_LABELS[a]} | " + " | ".join("✔" if a.value in allowed_events(s) else "" for s in live) + " |"
        for a in Action
    ]
    return "\n".join([head, rule, *rows]) + "\n"
