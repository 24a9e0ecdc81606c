"""Preloaded by the reliability tests' forkserver (tests.reliability_support.forkserver): the
store, the documents package and one warm WeasyPrint, so each forked worker starts at once.
No database is touched here; a worker makes its own engine after the fork."""
from __future__ import annotations

import store.cases.advance  # noqa: F401
import store.schema  # noqa: F401
import tests.reliability_support  # noqa: F401
from documents import archive  # noqa: F401
from documents.catalog import get
from documents.context import case_context
from documents.render import render
from documents.samples import sample_facts
from store.policy_files import SHIPPED_POLICIES, read_policy_file


def _warm_up() -> None:
    policy = read_policy_file(SHIPPED_POLICIES / "default.toml")[0]
    facts = sample_facts(policy, seed=3, photos=False)
    get("return_notice")
    render(case_context("return_notice", facts, event_seq=facts["events"][-1]["seq"], issued_on="2026-11-23",
                        actor="warm-up"), "pdf")


_warm_up()
