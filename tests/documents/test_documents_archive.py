"""The archive on SQLite and PostgreSQL: issue once, same bytes again, gap-free numbers, the queue."""
from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

import documents
from documents import archive, numbering
from documents.archive import Plan, issue, render_for_case, render_queued, render_report, verify_file
from documents.catalog import get
from documents.context import case_context
from documents.render import RenderError
from documents.samples import sample_facts
from store.models.documents import Document, DocumentCounter, DocumentFile
from store.models import DocumentRequest
from store.policy_files import SHIPPED_POLICIES, read_policy_file

from tests.factories_documents import climb

NOW = datetime(2026, 11, 23, 10, 0)


@pytest.fixture(autouse=True)
def archive_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "archive"
    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(folder))
    return folder


@pytest.fixture
def photos(tmp_path) -> list[Path]:
    from PIL import Image

    out = []
    for i, colour in enumerate(["#7a9", "#c96"]):
        path = tmp_path / f"visit{i}.jpg"
        Image.new("RGB", (320, 240), colour).save(path, "JPEG")
        out.append(path)
    return out


def test_a_document_is_issued_once_and_returned_with_identical_bytes(session):
    case_id = climb(session, policy="default")
    first = render_for_case(session, case_id, "return_notice", actor="test", now=NOW)
    again = render_for_case(session, case_id, "return_notice", actor="someone else", now=NOW.replace(day=24))
    assert again.id == first.id
    assert archive.file_path(again).read_bytes() == archive.file_path(first).read_bytes()
    doc = first.document
    assert doc.doc_number.endswith("政发〔2026〕1号") and doc.number == 1
    assert doc.data["doc"]["doc_number"] == doc.doc_number and doc.policy_name == "default" and doc.actor == "test"
    assert archive.file_path(first).stat().st_mode & 0o222 == 0, "archived files are read-only"
    # The preview is the same document: same number, rendered from the archived data.
    html = render_for_case(session, case_id, "return_notice", actor="test", fmt="html", now=NOW)
    assert html.document_id == doc.id and doc.doc_number in archive.file_path(html).read_text(encoding="utf-8")
    assert session.scalar(select(func.count()).select_from(Document)) == 1
    assert session.scalar(select(DocumentCounter.last_number)) == 1


def test_verify_file_knows_archived_bytes_and_nothing_else(session, tmp_path):
    case_id = climb(session, policy="jingbian")
    record = render_for_case(session, case_id, "absence_register", actor="test", now=NOW)
    copy = tmp_path / "copy.pdf"
    copy.write_bytes(archive.file_path(record).read_bytes())
    assert verify_file(session, copy).id == record.id
    copy.write_bytes(copy.read_bytes() + b"\n")
    assert verify_file(session, copy) is None


def test_a_correction_is_a_new_version_that_points_to_the_old(session):
    case_id = climb(session, policy="default")
    old = render_for_case(session, case_id, "home_visit_record", actor="test", now=NOW)
    new = archive.correct(session, old.document_id, actor="教务处", reason="家访地点写错",
                          changes={"record": {"place": "城关镇河湾村3组"}}, now=NOW)
    assert new.document.version == 2 and new.document.supersedes_id == old.document_id
    assert new.document.data["record"]["place"] == "城关镇河湾村3组"
    assert new.sha256 != old.sha256 and archive.file_path(old).exists()
    assert render_for_case(session, case_id, "home_visit_record", actor="test", now=NOW).id == new.id
    with pytest.raises(ValueError, match="already corrected"):
        archive.correct(session, old.document_id, actor="x", reason="again")


def test_the_queue_renders_every_request_once_and_a_retry_changes_nothing(factory, photos):
    with factory() as s, s.begin():
        case_id = climb(s, policy="default", photos=photos)
    counts = render_queued(factory, limit=100, actor="system", now=NOW)
    with factory() as s:
        requests = s.scalars(select(DocumentRequest).order_by(DocumentRequest.id)).all()
        assert counts == {"rendered": len(requests), "failed": 0, "skipped": 0, "retry": 0}
        assert all(r.status == "rendered" and r.document_id for r in requests)
        docs = {d.kind: d for d in s.scalars(select(Document))}
        numbers = sorted((d.issuer.split(":")[0], d.number) for d in docs.values() if d.number)
        assert numbers == [("school", 1), ("school", 2), ("township", 1), ("township", 2)]
        # The proof of service names the notice it served; the legal notice cites the return notice.
        receipts = s.scalars(select(Document).where(Document.kind == "proof_of_service").order_by(Document.event_seq)).all()
        assert [r.data["record"]["served"]["doc_number"] for r in receipts[:2]] == [
            docs["return_notice"].doc_number, docs["legal_notice"].doc_number]
        # the 书面通报's two receipts (the parent's signature, the bureau's copy) cite the notice the school filled in
        assert {r.data["record"]["served"]["document_id"] for r in receipts[2:]} == {docs["parent_notice"].id}
        assert docs["legal_notice"].data["record"]["return_notice"]["doc_number"] == docs["return_notice"].doc_number
        # Photos were copied into the archive and are referenced by hash.
        srcs = [p["src"] for p in docs["collective_visit_record"].data["record"]["photos"]]
        assert len(srcs) == 2 and all(src.startswith("archive:attachments/") for src in srcs)
        n_docs, n_files = (s.scalar(select(func.count()).select_from(t)) for t in (Document, DocumentFile))
    # A retry (the request is queued again, e.g. the worker died before seeing the commit): no new
    # document, no new number.
    with factory() as s, s.begin():
        s.execute(update(DocumentRequest).where(DocumentRequest.kind == "return_notice").values(status="queued", document_id=None))
    assert render_queued(factory, limit=100, actor="system", now=NOW) == {"rendered": 1, "failed": 0, "skipped": 0, "retry": 0}
    with factory() as s:
        assert (s.scalar(select(func.count()).select_from(Document)), s.scalar(select(func.count()).select_from(DocumentFile))) == (n_docs, n_files)
        assert s.scalar(select(func.max(DocumentCounter.last_number))) == 2
    assert render_queued(factory, limit=100, actor="system", now=NOW) == {"rendered": 0, "failed": 0, "skipped": 0, "retry": 0}
    assert case_id


def test_a_failed_render_does_not_burn_a_number(factory, monkeypatch):
    with factory() as s, s.begin():
        climb(s, policy="default")
    real_render = archive.render

    def broken(context, fmt="pdf", **kw):
        if context["doc"]["kind"] == "return_notice":
            raise RenderError("return_notice: the printer caught fire")
        return real_render(context, fmt, **kw)

    monkeypatch.setattr(archive, "render", broken)
    counts = render_queued(factory, limit=100, actor="system", now=NOW)
    assert counts["failed"] >= 1
    with factory() as s:
        failed = s.scalars(select(DocumentRequest).where(DocumentRequest.status == "failed")).all()
        assert {r.kind for r in failed} <= {"return_notice", "proof_of_service", "legal_notice"}
        assert all("printer caught fire" in r.error for r in failed)
        township = s.scalar(select(DocumentCounter.last_number).where(DocumentCounter.issuer.like("township:%")))
        assert township in (None, 1), "only the legal notice, if it rendered, holds a township number"
    monkeypatch.setattr(archive, "render", real_render)
    with factory() as s, s.begin():
        s.execute(update(DocumentRequest).where(DocumentRequest.status == "failed").values(status="queued", error=None))
    render_queued(factory, limit=100, actor="system", now=NOW)
    with factory() as s:
        numbers = sorted(s.scalars(select(Document.number).where(Document.issuer.like("township:%"))))
        assert numbers == [1, 2]


def _plans(n: int, *, issuer: str = "township:CONC") -> list[Plan]:
    policy = read_policy_file(SHIPPED_POLICIES / "default.toml")[0]
    facts = sample_facts(policy, seed=3, photos=False)
    ctx = case_context("return_notice", facts, event_seq=facts["events"][-1]["seq"], issued_on="2026-11-23", actor="t")
    return [Plan(get("return_notice"), f"test:concurrency:{i}", ctx, issuer=issuer, year=2026) for i in range(n)]


def test_numbers_never_repeat_or_skip_under_concurrent_issuance_and_retries(fresh_db):
    """4 threads × 10 documents of one issuer, every third first attempt failing after its number was
    taken: the issued numbers are exactly 1..40."""
    plans = _plans(40)
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker(mine: list[Plan]) -> None:
        try:
            barrier.wait()
            for i, plan in enumerate(mine):
                for attempt in (1, 2):
                    try:
                        with fresh_db() as s, s.begin():
                            issue(s, plan, "html", actor="t", now=NOW)
                            if i % 3 == 0 and attempt == 1:
                                raise RuntimeError("worker crashed before commit")
                        break
                    except RuntimeError:
                        continue
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(plans[k::4],)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with fresh_db() as s:
        numbers = sorted(s.scalars(select(Document.number).where(Document.issuer == "township:CONC")))
        assert numbers == list(range(1, 41))
        assert s.scalar(select(DocumentCounter.last_number).where(DocumentCounter.issuer == "township:CONC")) == 40
        texts = {d.doc_number for d in s.scalars(select(Document))}
        assert len(texts) == 40


def test_parallel_queue_workers_split_the_queue(fresh_db):
    """Two workers on one queue: every request rendered exactly once, one document per request."""
    with fresh_db() as s, s.begin():
        climb(s, policy="wutaishan")
    results: list[dict] = []
    threads = [threading.Thread(target=lambda: results.append(render_queued(fresh_db, limit=100, actor="w", now=NOW)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with fresh_db() as s:
        n_requests = s.scalar(select(func.count()).select_from(DocumentRequest))
        assert sum(r["rendered"] for r in results) == n_requests
        assert sum(r["failed"] for r in results) == 0
        assert s.scalar(select(func.count()).select_from(Document)) == n_requests
        numbers = s.execute(select(Document.issuer, Document.number).where(Document.number.is_not(None))).all()
        assert len(numbers) == len(set(numbers))


def test_reports_are_built_from_the_store(session):
    climb(session, policy="default")
    school = session.scalar(select(Document.id))  # nothing issued yet
    assert school is None
    from store.models import School

    code = session.scalar(select(School.code))
    record = render_report(session, "monthly_report", scope=f"school:{code}", period="2026-11", actor="test", now=NOW)
    data = record.document.data["report"]
    assert data["totals"]["new_cases"] == 1 and data["totals"]["dropouts"] == 1
    assert data["totals"]["open_by_step"]["judicial_notice"] == 1
    xlsx = render_report(session, "monthly_report", scope=f"school:{code}", period="2026-11", actor="test", fmt="xlsx", now=NOW)
    assert xlsx.document_id == record.document_id
    acc = render_report(session, "accountability_sheet", scope=f"school:{code}", period="2026-11", actor="test", fmt="html", now=NOW)
    assert acc.document.data["report"]["rows"] == []  # every duty was done on time


def test_unknown_case_or_kind_says_so(session):
    with pytest.raises(LookupError, match="案件不存在"):
        render_for_case(session, 999999, "return_notice", actor="t")
    with pytest.raises(KeyError, match="文书种类不存在"):
        render_for_case(session, 1, "no_such_kind", actor="t")


def test_package_exports_the_cli_contract():
    assert documents.render_queued is render_queued and documents.verify_file is verify_file
    assert numbering.allocate and documents.render_for_case is render_for_case


def test_a_returned_case_closes_with_its_return_register(session):
    from openpyxl import load_workbook

    case_id = climb(session, policy="jingbian", returned=True)
    kinds = set(session.scalars(select(DocumentRequest.kind).where(DocumentRequest.case_id == case_id)))
    assert "return_register" in kinds
    pdf = render_for_case(session, case_id, "return_register", actor="test", now=NOW)
    record = pdf.document.data["record"]
    assert record["returned_on"] and record["ledger_closed_on"] == record["returned_on"]
    xlsx = render_for_case(session, case_id, "return_register", actor="test", fmt="xlsx", now=NOW)
    ws = load_workbook(archive.file_path(xlsx)).active
    assert ws.cell(row=5, column=2).value == pdf.document.data["pupil"]["name"]


def test_a_document_rendered_ahead_with_a_number_someone_else_took_is_rendered_again(factory):
    plan_a, plan_b = _plans(2, issuer="township:AHEAD")
    with factory() as s:
        rendition, guess = archive._render_ahead(s, plan_a, "html")
    assert guess == 1 and "〔2026〕1号" in rendition.content.decode()
    with factory() as s, s.begin():
        assert issue(s, plan_b, "html", actor="t", now=NOW).document.number == 1
    with factory() as s, s.begin():
        record = issue(s, plan_a, "html", actor="t", now=NOW, rendition=rendition, guess=guess)
        assert record.document.number == 2
        assert "〔2026〕2号" in archive.file_path(record).read_text(encoding="utf-8")
