"""季查 (seed 003): each quarter an unannounced random sample of schools and classes is checked
against the ledger.

The draw is unpredictable, reproducible and sealed: the store draws the seed with ``secrets`` (or
takes the one given), draws the sample from it, and only then records the seed with a hash of the
sample. A rerun in the same quarter returns the sealed draw; anyone can redraw it from the seed and
the roster; the printed 季查 sheet lists exactly the sealed classes.
"""
from __future__ import annotations

from datetime import datetime

from prefect import flow

from tasks.publish import publish_event, publish_markdown
from tasks.reports import draw_spot_check, quarter_of, spot_check_fraction
from tasks.runtime import resolve_as_of, run_name


@flow(name="quarterly_spot_check", log_prints=False, flow_run_name=run_name("spot-check"))
def quarterly_spot_check(as_of: datetime | None = None, seed: int | None = None, fraction: float | None = None) -> dict:
    as_of = resolve_as_of(as_of)
    fraction = fraction if fraction is not None else spot_check_fraction()
    check = draw_spot_check(quarter_of(as_of.date()), seed, fraction, as_of)
    publish_markdown(f"spot-check-{check['quarter']}", check["markdown"],
                     description=f"季查 {check['quarter']} seed {check['seed']} (sealed)")
    if check["created"]:
        publish_event("baoxue.spot_check.drawn", "baoxue.spot_check", {"quarter": check["quarter"], "seed": check["seed"],
                                                                       "seal": check["seal"], "sample": check["sample"]})
    return {k: check[k] for k in ("quarter", "seed", "seal", "created", "sample")}
