"""台账 (seed 000 §三.3): the list of referred / dropout cases sent to the 教育中心 and the bureau, a report
document (PDF, HTML, XLSX) of a school, township or county for a month (data as of the month's end)."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from store.reporting.referral_ledger import referral_rows


def referral_ledger(session: Session, sc, name: str, schools: list, start: date, end: date, *,
                    now: datetime) -> dict[str, Any]:
    """``sc``: the scope (level, code); ``name``/``schools``: its unit; ``start``–``end``: the month."""
    period = f"{start:%Y-%m}"
    as_of = min(end, now.date())
    rows = referral_rows(session, [s.id for s in schools], start, as_of)
    if sc.level == "county":  # the bureau reads names masked (store.access.masking: county is not unmasked)
        from machines.identity import mask_name
        rows = [{**r, "pupil": mask_name(r["pupil"]), "student_no": ""} for r in rows]
    tracking = sum(1 for r in rows if r["closed_on"] is None)
    return {"level": sc.level, "unit": {"name": name, "code": sc.code}, "period": period,
            "period_label": f"{start.year}年{start.month}月", "as_of": as_of.isoformat(), "rows": rows,
            "tracking": tracking, "closed": len(rows) - tracking}
