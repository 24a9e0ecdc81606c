"""Reporting tasks: file a level's reports for a period, render them, draw the quarterly sample.

Idempotency keys: (kind, level, scope, period) for a filing and the quarter for a spot check,
unique in the store: filing again returns the first filing, unchanged.
"""
from __future__ import annotations

from datetime import date, datetime

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import select

from store.reporting import reports as rp
from store.reporting.reports import ReportPeriod, month_period, quarter_of  # noqa: F401 - the flows' vocabulary
from store.cases.context import CaseContext
from store.db import settings, transaction
from store.models import Jurisdiction
from store.models.reports import ReportFiling, SpotCheck

from tasks.render import documents_available
from tasks.runtime import DB_RETRIES, store


@task(name="file_reports", **DB_RETRIES, cache_policy=NO_CACHE)
def file_reports(level: str, period: rp.ReportPeriod, as_of: datetime, actor: str = "system:monthly_report",
                 policy_name: str = "default") -> list[dict]:
    """File the report of every scope of ``level`` for ``period``; returns one line per filing."""
    out = []
    with transaction(store()) as s:
        policy = CaseContext(s).policies.get(policy_name)
        for filing, created in rp.file_level(s, policy=policy, level=level, period=period, as_of=as_of, actor=actor):
            out.append({"id": filing.id, "scope": filing.scope_name, "code": filing.scope_code, "late": filing.late,
                        "created": created, "due_on": filing.due_on.isoformat(),
                        "dropouts": filing.figures["dropouts"], "dropout_rate": filing.figures["dropout_rate"]})
    return out


@task(name="render_reports", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def render_reports(filing_ids: list[int], actor: str = "system:monthly_report") -> dict[str, str]:
    """Each filing's files: the official 月报表 (documents' ``monthly_report``, PDF, archived and keyed
    by scope and period, so a retry finds it) and the figures as Markdown and XLSX; returns id → Markdown."""
    archive = settings().archive_dir
    out = {}
    for fid in filing_ids:
        with transaction(store()) as s:
            filing = s.get(ReportFiling, fid)
            if not filing.files:
                filing.files = rp.write_report_files(filing, archive)
            if filing.document_id is None and documents_available():
                import documents

                from documents.reports import term_doc_period

                # a term report is the same official sheet over its term (period "ts:20260901")
                period = filing.period if filing.kind == "monthly" else term_doc_period(filing.kind, filing.period)
                doc_file = documents.render_report(s, "monthly_report", scope=f"{filing.level}:{filing.scope_code}",
                                                   period=period, actor=actor, now=filing.filed_at)
                filing.document_id = doc_file.document_id
                # the XLSX of the same document (same archived figures, the PDF's 月报表 layout), not the bare list
                sheet_file = documents.render_report(s, "monthly_report", scope=f"{filing.level}:{filing.scope_code}",
                                                     period=period, actor=actor, now=filing.filed_at, fmt="xlsx")
                filing.files = {**filing.files, "pdf": doc_file.path, "xlsx": sheet_file.path}
                if filing.level == "county" and filing.kind == "monthly":  # with the county's month: the 责任追究 evidence sheet
                    sheet = documents.render_report(s, "accountability_sheet", scope=f"county:{filing.scope_code}",
                                                    period=filing.period, actor=actor, now=filing.filed_at)
                    filing.files = {**filing.files, "accountability_pdf": sheet.path}
            out[str(filing.id)] = rp.figures_markdown(filing)
    return out


@task(name="draw_spot_check", **DB_RETRIES, cache_policy=NO_CACHE)
def draw_spot_check(quarter: str, seed: int | None, fraction: float, as_of: datetime,
                    actor: str = "system:quarterly_spot_check") -> dict:
    """Draw once per quarter (a rerun returns the sealed draw) and write the check sheet."""
    with transaction(store()) as s:
        county = s.scalar(select(Jurisdiction.code).where(Jurisdiction.level == "county").order_by(Jurisdiction.id).limit(1))
        check, created = rp.spot_check(s, quarter=quarter, seed=seed, fraction=fraction, as_of=as_of, actor=actor,
                                       county_code=county or "")
        if not check.files:
            check.files = rp.write_spot_check_files(check, settings().archive_dir)
        return {"id": check.id, "quarter": check.quarter, "seed": check.seed, "seal": check.sample_sha256,
                "created": created, "sample": check.sample, "markdown": rp.spot_check_markdown(check)}


@task(name="term_reports_filed", cache_policy=NO_CACHE)
def term_reports_filed(policy_name: str = "default") -> bool:
    """Does the policy file 学期初、学期末报告 (seed 002; ``[reports] term_reports``)?"""
    with transaction(store()) as s:
        return CaseContext(s).policies.get(policy_name).reports.term_reports


@task(name="spot_check_fraction", cache_policy=NO_CACHE)
def spot_check_fraction(policy_name: str = "default") -> float:
    with transaction(store()) as s:
        return CaseContext(s).policies.get(policy_name).reports.spot_check_sample


def term_period(day: date, which: str) -> rp.ReportPeriod | None:
    """The term whose first (``term_start``) or last (``term_end``) day is ``day``, if any."""
    from store.calendars import calendars

    for cal in calendars().values():
        for term in getattr(cal, "terms", []):
            if (which == "term_start" and term.start == day) or (which == "term_end" and term.end == day):
                return rp.ReportPeriod(which, f"{term.start:%Y%m%d}", term.start, term.end)
    return None
