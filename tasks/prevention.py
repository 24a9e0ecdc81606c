"""Prevention rules of the daily advance: boarders' gate alerts, truancy tiers, overdue duties without a case.

One task run per sweep, set-based over the whole county (never one run per pupil). Idempotent:
the alerts are UNIQUE(source, kind, ref_id), the tiers UNIQUE(pupil, school_year, occurrence), so a
retried or repeated run at the same instant writes nothing new.
"""
from __future__ import annotations

from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from documents.truancy_warning import issue_warnings, pending
from store.duties import ledger as duty_ledger
from store.prevention import gate
from store.prevention import truancy
from store.cases.context import CaseContext
from store.db import transaction
from store.accountability.chain import route_to_chain

from tasks.runtime import store


@task(name="apply_prevention_rules", retries=3, retry_delay_seconds=[1, 5, 15], cache_policy=NO_CACHE)
def apply_prevention_rules(as_of: datetime) -> dict:
    """Gate alerts (unapproved exits, late returns), truancy tier duties, overdue prevention, census (失学) and
    watch-list duties; then the tiers' written warnings (a retried run issues what an earlier one left)."""
    with transaction(store()) as s:
        ctx = CaseContext(s)
        alerts = gate.check_gate(s, ctx, as_of)
        tiers = truancy.apply_tiers(s, ctx, as_of)
        overdue = duty_ledger.mark_overdue(s, as_of)
        route_to_chain(s)  # 包保: the pupils' new duties go to their chain (store/accountability/chain.py)
        overdue.update(duty_ledger.mark_overdue(s, as_of, kinds=("talk", "pledge")))  # 约谈 follow-up, 责任书 signature
    with transaction(store()) as s:  # the written warnings the new tiers ask for (rendered outside the rules' commit)
        documents = issue_warnings(s, pending(s), actor="system", now=as_of)
    return {"gate_alerts": alerts, "truancy_tiers": {"new": tiers["new"], **tiers["by_tier"]},
            "prevention_overdue": overdue["prevention"],
            "census_overdue": overdue["census"], "watch_overdue": overdue["watch"], "truancy_warnings": len(documents),
            "talk_overdue": overdue["talk"], "pledge_overdue": overdue["pledge"]}
