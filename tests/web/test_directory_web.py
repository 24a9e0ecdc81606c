"""The directory (名册) on pages and in the API, per scope and paged, and the county's onboarding
page: upload → preview (nothing written) → 确认导入 (both databases)."""
from __future__ import annotations

import re
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from demo.county_files import county_files
from store.models import Pupil, School, Staff
from tests.web_support import Clock, build_county, in_process_app
from web.deps import SESSION_COOKIE

NOW = datetime(2026, 11, 23, 10, 0)


@pytest.fixture
def site(factory, tmp_path):
    with factory() as s:
        county = build_county(s)
        s.commit()
    app = in_process_app(factory, tmp_path / "archive", Clock(NOW))
    with TestClient(app) as client:
        yield {"client": client, "county": county, "factory": factory}


def _as(site, user):
    client = site["client"]
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, site["county"].cookies[user])
    return client


def _api(site, user, path, **params):
    site["client"].cookies.clear()
    return site["client"].get(path, params=params, headers={"Authorization": f"Bearer {site['county'].tokens[user]}"})


def test_each_reader_lists_only_the_pupils_in_scope_and_pages_them(site):
    with site["factory"]() as s:
        home = s.scalar(select(School).where(School.code == site["county"].school_codes[0]))
        in_home = s.scalar(select(func.count()).select_from(Pupil).where(Pupil.school_id == home.id))
        in_class = s.scalar(select(func.count()).select_from(Pupil).where(Pupil.class_id == site["county"].class_ids[0]))
        everyone = s.scalar(select(func.count()).select_from(Pupil))
    school = _api(site, "school", "/api/pupils", limit=5).json()
    assert school["total"] == in_home and len(school["rows"]) == 5 and {r["school"] for r in school["rows"]} == {home.name}
    assert _api(site, "teacher", "/api/pupils").json()["total"] == in_class
    county = _api(site, "county", "/api/pupils", limit=500).json()
    assert county["total"] == everyone and all("*" in r["name"] and "*" in r["id_number"] for r in county["rows"])
    second = _api(site, "county", "/api/pupils", limit=5, offset=5).json()["rows"]
    assert {r["id"] for r in second}.isdisjoint({r["id"] for r in _api(site, "county", "/api/pupils", limit=5).json()["rows"]})
    assert _api(site, "operator", "/api/pupils").status_code == 403
    assert _api(site, "county", "/api/pupils", limit=100000).status_code == 422
    page = _as(site, "school").get("/directory?tab=pupils&page=1").text
    assert f"共 {in_home} 条" in page and "名册" in page
    assert _as(site, "school_far").get("/directory?tab=schools").text.count("<td>") > 0
    assert home.name not in _as(site, "school_far").get("/directory?tab=schools").text


def test_the_county_onboards_files_on_a_page_preview_first(site):
    assert _as(site, "school").get("/admin/onboarding", follow_redirects=False).status_code == 403
    client = _as(site, "county")
    csrf = site["county"].csrf["county"]
    files = [("files", (name, data, "text/csv")) for name, data in county_files().items()]
    preview = client.post("/admin/onboarding", data={"csrf": csrf}, files=files)
    assert preview.status_code == 200 and "预览（尚未写入）" in preview.text and "确认导入" in preview.text
    assert "停用" in preview.text  # the staff of the generated county are not in the file
    with site["factory"]() as s:
        assert s.scalar(select(func.count()).select_from(School).where(School.code == "2114099101")) == 0
    held = re.findall(r'name="held" value="([^"]+)"', preview.text)
    assert len(held) == 5
    done = client.post("/admin/onboarding", data={"csrf": csrf, "apply": "1", "held": held})
    assert done.status_code == 200 and "已导入" in done.text
    with site["factory"]() as s:
        assert s.scalar(select(func.count()).select_from(Pupil).join(School).where(School.code.like("21140991%"))) == 216
        assert s.scalar(select(func.count()).select_from(Staff).where(Staff.phone.is_not(None))) > 52
    # the county's staff file names everyone: the generated county's staff were retired, their accounts switched off
    with site["factory"]() as s:
        assert s.scalar(select(func.count()).select_from(Staff).where(Staff.retired_on.is_(None))) == 52


def test_the_county_opens_an_account_for_a_person_on_the_staff_list_and_reassigns_it(site):
    from demo.county_files import county_rows
    from store.ingest.onboarding import onboard
    from store.models.accounts import User

    with site["factory"]() as s:
        onboard(s, list(county_files().items()), now=NOW, apply=True)
        s.commit()
    rows = county_rows()
    teacher, principal = rows["班级"][1], next(r for r in rows["教职工"] if r[2] == "校长")
    client, csrf = _as(site, "county"), site["county"].csrf["county"]
    page = client.post("/admin/users/from-staff", data={"csrf": csrf, "phone": teacher[4], "username": "wanxi"})
    assert page.status_code == 200 and "账号 wanxi 的新密码" in page.text
    again = client.post("/admin/users/from-staff", data={"csrf": csrf, "phone": teacher[4], "username": "wanxi2"})
    assert again.status_code == 422 and "已有账号" in again.text
    with site["factory"]() as s:
        user = s.scalar(select(User).where(User.username == "wanxi"))
        assert (user.role, user.display_name) == ("head_teacher", teacher[3]) and len(user.classes) == 1
    moved = client.post(f"/admin/users/{user.id}/reassign", data={"csrf": csrf, "phone": principal[1]},
                        follow_redirects=False)
    assert moved.status_code == 303
    with site["factory"]() as s:
        assert s.get(User, user.id).role == "school_staff"
    refused = _as(site, "school_far").post("/admin/users/from-staff", data={"csrf": site["county"].csrf["school_far"],
                                                                         "phone": principal[1], "username": "x"},
                                       follow_redirects=False)
    assert refused.status_code == 403
