"""Issue 14 rows 1, 2, 9 and 12: typed action payloads, attachments as their own store, security
headers, a history that cannot break a case, and one masking rule for history and documents.

Each test fails on the code before the issue: payloads were unchecked JSON, a photo ``src`` was
any path the render worker could read, photos were served with the media type the payload named,
and the county read guardians' names and phones in the case history and full documents.
"""
from __future__ import annotations

import base64
import json
import re
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from store.models import Case, CaseEvent, Guardian, Pupil
from tests.web_support import MONDAY, build_county, in_process_app, pupils_of_class
from web.deps import SESSION_COOKIE

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x01" * 64
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
HTML = b"<html><script>fetch('/api/cases').then(r=>r.text()).then(alert)</script></html>"
SECRET = "BAOXUE-CANARY-postgresql://baoxue:hunter2@db/baoxue"


@pytest.fixture
def web(factory, tmp_path, monkeypatch):
    archive = tmp_path / "archive"
    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(archive))  # the render worker's archive is the app's
    with factory() as s:
        county = build_county(s)
        s.commit()
        pupils = [p.student_no for p in pupils_of_class(s, county.class_ids[0])]
    app = in_process_app(factory, archive)
    with TestClient(app) as client:
        yield {"client": client, "county": county, "pupils": pupils, "factory": factory, "archive": archive,
               "tmp": tmp_path}


def api(web, username: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {web['county'].tokens[username]}"}


def page(web, username: str) -> TestClient:
    client = web["client"]
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, web["county"].cookies[username])
    return client


def open_case(web, n: int = 0) -> int:
    r = web["client"].post("/api/morning-checks", headers=api(web, "teacher"),
                           json={"marks": [{"student_no": web["pupils"][n], "status": "缺勤"}]})
    assert r.status_code == 200, r.text
    return r.json()["opened_case_ids"][0]


def version(web, case_id: int) -> int:
    with web["factory"]() as s:
        return s.get(Case, case_id).version


def act(web, username: str, case_id: int, event: str, payload, **extra):
    return web["client"].post(f"/api/cases/{case_id}/actions", headers=api(web, username),
                              json={"event": event, "payload": payload, **extra})


def upload(web, username: str, case_id: int, name: str, data: bytes, content_type: str):
    return web["client"].post(f"/api/cases/{case_id}/attachments", headers=api(web, username),
                              files=[("file", (name, data, content_type))])


def legacy_event(web, case_id: int, event: str, payload) -> None:
    """An event as an older version wrote it (unchecked payload): history is append-only, it stays."""
    with web["factory"]() as s:
        case = s.get(Case, case_id)
        case.version += 1
        s.add(CaseEvent(case_id=case_id, seq=case.version, event=event, from_state=case.state, to_state=case.state,
                        actor="user:teacher", at=MONDAY, recorded_at=MONDAY, reason="旧记录", payload=payload))
        s.commit()


def issue(web, case_id: int, kind: str, fmt: str = "html"):
    from documents.archive import render_for_case

    with web["factory"]() as s:
        record = render_for_case(s, case_id, kind, actor="test", fmt=fmt, now=datetime(2026, 11, 16, 18, 0))
        s.commit()
        return record.document_id, (web["archive"] / record.path).read_bytes()


# -- row 1: no file read through payloads ---------------------------------------------------------------
def test_a_photo_naming_a_server_file_is_refused_at_the_api_and_the_page(web):
    case_id = open_case(web)
    before = version(web, case_id)
    for photos in ([{"src": "/proc/self/environ"}], [{"src": "/proc/self/environ", "caption": "x"}],
                   ["/proc/self/environ"], [{"attachment_id": 1, "caption": "x", "src": "archive:reports/x.md"}]):
        r = act(web, "teacher", case_id, "record_home_visit", {"photos": photos})
        assert r.status_code == 422, (photos, r.text[:200])
        assert r.json()["message"].startswith("办理详情有误") and r.json()["errors"]
    r = web["client"].post(f"/api/cases/{case_id}/visits", headers=api(web, "teacher"),
                           data={"event": "record_home_visit", "payload": json.dumps({"photos": [{"src": "/etc/passwd",
                                                                                               "caption": "x"}]})})
    assert r.status_code == 422
    client = page(web, "teacher")
    r = client.post(f"/cases/{case_id}/act", data={"csrf": web["county"].csrf["teacher"], "event": "record_home_visit",
                                                   "photos": "/proc/self/environ", "photo_caption": "x"})
    assert r.status_code == 422 and "照片只能作为文件上传" in r.text
    assert version(web, case_id) == before  # nothing recorded


def test_no_document_ever_contains_a_file_an_old_payload_names(web):
    """An old event whose photo names a server file (written before payloads were checked) prints as
    a missing photo: the file is never opened, its bytes never reach a document."""
    secret = web["tmp"] / "environ"
    secret.write_text(SECRET)
    case_id = open_case(web)
    legacy_event(web, case_id, "record_collective_visit", {
        "result": "见到家长", "photos": [{"src": str(secret), "caption": "现场"}, {"src": "/proc/self/environ"},
                                      {"src": "archive:../environ", "caption": "越界"}, str(secret)]})
    for kind in ("collective_visit_record", "report_to_bureau"):
        _, html = issue(web, case_id, kind, "html")
        text = html.decode()
        assert SECRET not in text and base64.b64encode(SECRET.encode()).decode()[:24] not in text
        assert text.count("照片缺失") == 4, kind
        _, pdf = issue(web, case_id, kind, "pdf")
        assert pdf.startswith(b"%PDF") and SECRET.encode() not in pdf
    stored = [p for p in web["archive"].rglob("*") if p.is_file()]
    assert all(SECRET.encode() not in p.read_bytes() for p in stored)


# -- row 2: attachments, sniffed, scoped, with headers ----------------------------------------------------
def test_an_upload_is_kept_only_if_its_bytes_are_an_image_or_pdf(web):
    case_id = open_case(web)
    for name, data, claimed in (("photo.jpg", HTML, "image/jpeg"), ("x.html", HTML, "text/html"),
                                ("x.svg", b"<svg onload=alert(1)>", "image/svg+xml"), ("a.png", b"", "image/png")):
        r = upload(web, "teacher", case_id, name, data, claimed)
        assert r.status_code in (415, 422), (name, r.status_code)
        assert "不能上传" in r.json()["message"] or "空文件" in r.json()["message"]
    r = upload(web, "teacher", case_id, "big.png", PNG + b"\x00" * (8 * 1024 * 1024), "image/png")
    assert r.status_code == 413 and "超过 8MB" in r.json()["message"]
    kept = {}
    for name, data, media in (("a.png", PNG, "image/png"), ("b.bin", JPEG, "image/jpeg"), ("回执.pdf", PDF, "application/pdf")):
        r = upload(web, "teacher", case_id, name, data, "text/html")  # the client's type is ignored
        assert r.status_code == 201, r.text
        assert r.json()["media_type"] == media and r.json()["case_id"] == case_id
        kept[media] = r.json()["id"]
    from store.models.attachments import Attachment

    with web["factory"]() as s:
        rows = s.scalars(select(Attachment).where(Attachment.case_id == case_id)).all()
        assert {a.uploaded_by for a in rows} == {"user:teacher"} and all(a.path.startswith("attachments/") for a in rows)
    # a PDF is an attachment, not a photo
    r = act(web, "teacher", case_id, "record_home_visit",
            {"photos": [{"attachment_id": kept["application/pdf"], "caption": "回执"}]})
    assert r.status_code == 422 and "不是照片" in r.json()["message"]
    r = act(web, "teacher", case_id, "record_home_visit", {"photos": [{"attachment_id": kept["image/png"], "caption": "门口"}]})
    assert r.status_code == 200, r.text


def test_an_attachment_is_served_only_within_scope_with_its_sniffed_type(web):
    case_id = open_case(web)  # a class of school 1, township 1
    photo = upload(web, "teacher", case_id, "x.html", PNG, "text/html").json()["id"]
    pdf = upload(web, "teacher", case_id, "r.pdf", PDF, "application/pdf").json()["id"]
    for username in ("teacher", "school", "township", "county"):
        r = web["client"].get(f"/api/attachments/{photo}", headers=api(web, username))
        assert r.status_code == 200 and r.content == PNG, username
        assert r.headers["content-type"] == "image/png" and r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["content-disposition"].startswith("inline") and "sandbox" in r.headers["content-security-policy"]
    r = page(web, "school").get(f"/attachments/{pdf}")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"].startswith("attachment")
    for username in ("township_other", "school_far", "school_other", "teacher_next_class", "teacher_other_school"):
        for attachment_id in (photo, pdf):
            r = web["client"].get(f"/api/attachments/{attachment_id}", headers=api(web, username))
            assert r.status_code == 404 and PNG not in r.content, username
            r = page(web, username).get(f"/attachments/{attachment_id}")
            assert r.status_code == 404, username
    # nor may they upload to it
    assert upload(web, "township_other", case_id, "a.png", PNG, "image/png").status_code == 404


def test_security_headers_are_on_every_response(web):
    case_id = open_case(web)
    photo = upload(web, "teacher", case_id, "a.png", PNG, "image/png").json()["id"]
    doc_id, _ = issue(web, case_id, "phone_record", "pdf")
    client = page(web, "teacher")
    responses = {
        "login page": web["client"].get("/login"), "case page": client.get(f"/cases/{case_id}"),
        "page 404": client.get("/cases/987654"), "document pdf": client.get(f"/documents/{doc_id}.pdf"),
        "document preview": client.get(f"/documents/{doc_id}.html"), "static": client.get("/static/site.css"),
        "attachment": client.get(f"/attachments/{photo}"),
        "api": web["client"].get("/api/cases", headers=api(web, "teacher")),
        "api 401": web["client"].get("/api/cases"), "api 422": web["client"].get("/api/cases?limit=x", headers=api(web, "teacher")),
        "api document": web["client"].get(f"/api/documents/{doc_id}", headers=api(web, "teacher")),
    }
    for what, r in responses.items():
        h = r.headers
        assert h.get("x-content-type-options") == "nosniff", what
        assert h.get("x-frame-options") == "DENY", what
        assert h.get("referrer-policy") == "same-origin", what
        csp = h.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp or "sandbox" in csp, (what, csp)
        assert "unsafe-inline" not in re.search(r"script-src[^;]*|$", csp).group() or what == "docs", (what, csp)
    assert responses["case page"].status_code == 200 and "<script" not in responses["case page"].text
    assert responses["document preview"].status_code == 200


# -- row 1 / 9: typed payloads -------------------------------------------------------------------------
def test_an_action_payload_is_checked_against_its_model_with_a_chinese_message(web):
    case_id = open_case(web)
    photo = upload(web, "teacher", case_id, "a.png", PNG, "image/png").json()["id"]
    before = version(web, case_id)
    cases = [
        ("record_phone_call", {"result": "联系上", "evil": "x"}, "不认识的字段"),
        ("record_home_visit", {"photos": [{"attachment_id": photo}]}, "照片说明"),
        ("record_home_visit", {"photos": [{"attachment_id": photo, "caption": ""}]}, "照片说明"),
        ("record_phone_call", {"result": "很长" * 1500}, "过长"),
        ("record_phone_call", {"reached": "maybe"}, "是/否"),
        ("assign_helpers", {}, "帮扶责任人"),
        ("assign_helpers", {"helpers": [{"role": "校长"}]}, "姓名"),
        ("mark_returned", {"measures": ["x"]}, "措施"),
    ]
    for event, payload, words in cases:
        r = act(web, "teacher" if event != "assign_helpers" else "school", case_id, event, payload)
        assert r.status_code == 422, (event, payload, r.status_code)
        assert words in r.json()["message"] and "办理详情有误" in r.json()["message"], r.json()["message"]
    big = json.dumps({"event": "record_phone_call", "payload": {"result": "x" * (20 * 1024 * 1024)}})
    r = web["client"].post(f"/api/cases/{case_id}/actions", headers=api(web, "teacher") | {"content-type": "application/json"},
                           content=big)
    assert r.status_code in (413, 422) and len(r.content) < 10_000
    client = page(web, "teacher")
    r = client.post(f"/cases/{case_id}/act", data={"csrf": web["county"].csrf["teacher"], "event": "record_phone_call",
                                                   "result": "长" * 2001})
    assert r.status_code == 422 and "过长" in r.text
    assert version(web, case_id) == before  # nothing recorded
    r = act(web, "teacher", case_id, "record_phone_call", {"contact": "祖母", "reached": True, "result": "明天返校"})
    assert r.status_code == 200
    with web["factory"]() as s:
        ev = s.scalar(select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.seq.desc()))
        assert ev.payload == {"contact": "祖母", "reached": True, "result": "明天返校"}


def test_a_case_whose_history_holds_a_bad_old_payload_still_renders(web):
    case_id = open_case(web)
    for payload in ({"photos": [{"sha256": "ab" * 32, "src": "archive:photos/x.jpg"}]},  # no caption
                    {"photos": "x"}, ["not", "a", "dict"], {"result": "x" * 200_000},
                    {"visitors": [{"no": "name"}, 3, None], "helpers": "x", "refused": {"a": 1}}, None):
        legacy_event(web, case_id, "record_home_visit", payload)
    legacy_event(web, case_id, "record_collective_visit", {"photos": [{"attachment_id": 987654, "caption": "丢失的照片"}]})
    for username in ("teacher", "school", "township", "county"):
        r = page(web, username).get(f"/cases/{case_id}")
        assert r.status_code == 200, (username, r.text[:300])
        assert len(r.content) < 100_000 and "旧记录中的照片" in r.text
        r = web["client"].get(f"/api/cases/{case_id}", headers=api(web, username))
        assert r.status_code == 200
    for kind in ("home_visit_record", "collective_visit_record", "report_to_bureau", "absence_register"):
        _, html = issue(web, case_id, kind)
        assert b"<html" in html[:500].lower() or b"<!doctype" in html[:500].lower()
    assert "照片缺失" in issue(web, case_id, "collective_visit_record")[1].decode()


def test_a_missing_attachment_file_does_not_stop_later_documents(factory, tmp_path, monkeypatch):
    from PIL import Image

    from documents.archive import render_queued
    from store.models.documents import Document
    from store.models import DocumentRequest
    from tests.factories_documents import climb

    NOW = datetime(2026, 11, 23, 10, 0)

    archive = tmp_path / "archive"
    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(archive))
    photo = tmp_path / "visit.jpg"
    Image.new("RGB", (64, 48), "#7a9").save(photo, "JPEG")
    with factory() as s, s.begin():
        climb(s, policy="default", photos=[photo])
    for f in (archive / "attachments").rglob("*.jpg"):
        f.chmod(0o644)
        f.unlink()  # lost (a restore without the archive folder)
    counts = render_queued(factory, limit=100, actor="system", now=NOW)
    assert counts["failed"] == 0 and counts["rendered"] > 5
    with factory() as s:
        assert {r.status for r in s.scalars(select(DocumentRequest))} == {"rendered"}
        visit = s.scalar(select(Document).where(Document.kind == "collective_visit_record"))
        assert visit.data["record"]["photos"] == [{"src": None, "caption": "集体家访照片1", "missing": True}]


# -- row 12: one masking rule ------------------------------------------------------------------------------
def private_values(web, case_id: int) -> dict[str, str]:
    with web["factory"]() as s:
        pupil = s.get(Pupil, s.get(Case, case_id).pupil_id)
        out = {pupil.name: "pupil name", pupil.id_number: "ID number"}
        for g in s.scalars(select(Guardian).where(Guardian.pupil_id == pupil.id)):
            out[g.name] = "guardian name"
            if g.phone:
                out[g.phone] = "guardian phone"
        return out


def test_the_county_reads_the_case_history_masked(web):
    case_id = open_case(web)
    secrets = private_values(web, case_id)
    guardian = next(k for k, v in secrets.items() if v == "guardian name")
    pupil = next(k for k, v in secrets.items() if v == "pupil name")
    phone = next((k for k, v in secrets.items() if v == "guardian phone"), "18312345678")
    r = act(web, "teacher", case_id, "record_phone_call",
            {"contact": f"{guardian}（母亲）", "phone": phone, "result": f"{pupil}在家，母亲{guardian}说明天送来，另一号码 13900001111"},
            note=f"与{guardian}通话")
    assert r.status_code == 200, r.text
    county_views = {
        "api case": web["client"].get(f"/api/cases/{case_id}", headers=api(web, "county")).text,
        "api history": web["client"].get(f"/api/cases/{case_id}/history", headers=api(web, "county")).text,
        "case page": page(web, "county").get(f"/cases/{case_id}").text,
    }
    for where, text in county_views.items():
        text = json.loads(text) if where.startswith("api") else text
        text = json.dumps(text, ensure_ascii=False) if not isinstance(text, str) else text
        leaked = [what for value, what in secrets.items() if value and value in text]
        assert leaked == [] and "13900001111" not in text, (where, leaked)
        assert guardian[0] + "*" in text, where  # masked, not dropped
    own = web["client"].get(f"/api/cases/{case_id}/history", headers=api(web, "teacher")).json()
    assert own[-1]["payload"]["contact"] == f"{guardian}（母亲）" and own[-1]["payload"]["phone"] == phone


def test_document_previews_follow_the_masking_rule_for_every_account(web):
    """store.access.masking: the school and the township read every case document in full; the county reads
    the papers addressed or copied to it in full and gets a masked HTML preview of the others."""
    case_id = open_case(web)
    secrets = private_values(web, case_id)
    pupil = next(k for k, v in secrets.items() if v == "pupil name")
    id_number = next(k for k, v in secrets.items() if v == "ID number")
    internal, _ = issue(web, case_id, "absence_register", "pdf")
    sent, _ = issue(web, case_id, "return_notice", "pdf")
    full = {"teacher", "school", "township"}
    for username in ("teacher", "school", "township", "county", "teacher_next_class", "teacher_other_school",
                     "school_other", "school_far", "township_other"):
        client = page(web, username)
        pdf, html = client.get(f"/documents/{internal}.pdf"), client.get(f"/documents/{internal}.html")
        api_pdf = web["client"].get(f"/api/documents/{internal}", headers=api(web, username))
        sent_pdf = web["client"].get(f"/api/documents/{sent}", headers=api(web, username))
        if username in full:
            assert (pdf.status_code, html.status_code, api_pdf.status_code, sent_pdf.status_code) == (200,) * 4, username
            assert pupil in html.text and id_number in html.text
        elif username == "county":
            assert pdf.status_code == 403 and api_pdf.status_code == 403 and "脱敏预览" in api_pdf.json()["message"]
            assert html.status_code == 200 and pupil not in html.text and id_number not in html.text
            assert pupil[0] + "*" in html.text and id_number[:6] in html.text
            assert sent_pdf.status_code == 200 and sent_pdf.content.startswith(b"%PDF")
        else:
            assert {pdf.status_code, html.status_code, api_pdf.status_code, sent_pdf.status_code} == {404}, username


def test_the_masker_masks_private_values_anywhere_and_leaves_photos_alone():
    from store.access.masking import Masker, masked_for

    m = Masker(names=["江天佑", "江小禾"], phones=["18312345678"], ids=["11010520140312123X"])
    payload = {"contact": "江天佑（母亲）", "phone": "18312345678", "result": "江小禾（11010520140312123X）另有 13900001111",
               "visitors": ["王老师", {"name": "江天佑"}], "photos": [{"attachment_id": 3, "caption": "江小禾在家"}],
               "src": "data:image/png;base64,13912345678AAA", "path": "archive:attachments/13/13912345678.jpg"}
    out = m(payload)
    assert out["contact"] == "江*佑（母亲）" and out["phone"] == "183****5678"
    assert out["result"] == "江*禾（110105********123X）另有 139****1111"
    assert out["visitors"] == ["王老师", {"name": "江*佑"}] and out["photos"] == [{"attachment_id": 3, "caption": "江*禾在家"}]
    assert out["src"] == payload["src"] and out["path"] == payload["path"]
    assert [masked_for(type("U", (), {"role": r})()) for r in ("head_teacher", "school_staff", "township", "county", "operator")] \
        == [False, False, False, True, True]
