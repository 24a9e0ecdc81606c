"""Record builders of the follow-up documents (registered in ``documents.records.BUILDERS``)."""
from __future__ import annotations

from typing import Any

from documents.catalog import Kind
from documents.records import _addressee, _day, _guardian, _name, _p, history, latest


def _judicial_referral(facts: dict, seq: int | None, kind: Kind, issued_on: str) -> dict[str, Any]:
    """提请依法处理函: refusal after the legal notice, to the 司法所 (and, through it, the 人民法院)."""
    served = latest(facts, "serve_legal_notice", upto=seq)
    t, c = facts["township"], facts["county"]
    return {
        "addressees": [f"{t['short']}司法所", f"{c['name']}人民法院"],
        "guardians": _addressee(facts),
        "guardian": _guardian(facts),
        "legal_measure": facts["case"]["policy"].get("legal_measure") or "依法处理",
        "legal_notice_served_on": _day(served["at"]) if served else None,
        "refused_service": bool(_p(served, "refused", False)),
        "history": history(facts, upto=seq),
        "contact": facts["people"]["principal"],
        "township_contact": _name(facts["people"]["township"] or facts["people"]["township_head"]),
    }


FOLLOWUP_BUILDERS = {"judicial_referral": _judicial_referral}
