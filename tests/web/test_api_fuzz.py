"""Schemathesis against the REST API's OpenAPI spec (issue 7, part 5): no request, however hostile, gets a 5xx.

Every operation of ``app.openapi()`` is called with schema-conforming data (positive) and with data
that breaks the schema (negative), as a random role of the test county, and with the ids of real cases
in scope mixed in so the case routes do real work. A 5xx (or an exception escaping the app) fails the
test with the request that caused it. The counts of requests per operation are printed.

Runs on both databases: PostgreSQL rejects what SQLite lets through (NUL characters, integers over
32 bits, over-long strings), so both are needed.

The second test covers every route of ``web.app.routers()`` (pages included, GET and POST, every role
and nobody): every path and query parameter swept with values out of range or that do not exist
(2026-13, ids past int64, negative ids, 2026-02-30 …), then random combinations with form fields.
"""
from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from tests.web_support import build_county, pupils_of_class, in_process_app

ROLES = ["teacher", "school", "township", "county", "operator", "school_far"]
EXAMPLES = {schemathesis.GenerationMode.POSITIVE: 15, schemathesis.GenerationMode.NEGATIVE: 8}
FUZZ = dict(deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))


@pytest.fixture
def fuzz_app(factory, tmp_path):
    with factory() as s:
        county = build_county(s, sessions=False)
        s.commit()
        pupils = [p.student_no for p in pupils_of_class(s, county.class_ids[0])]
    app = in_process_app(factory, tmp_path / "archive")
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {county.tokens['teacher']}"}
        r = client.post("/api/morning-checks", headers=headers,
                        json={"marks": [{"student_no": no, "status": "缺勤"} for no in pupils[:2]]})
        assert r.status_code == 200, r.text
        case_ids = r.json()["opened_case_ids"]
    assert len(case_ids) == 2
    return app, county, case_ids


def _operations(schema):
    ops = [result.ok() for result in schema.get_all_operations()]
    # revoking the token in use last, so the other operations keep a valid one
    return sorted(ops, key=lambda op: (op.method.upper() == "DELETE" and op.path == "/api/auth/token", op.path, op.method))


def test_every_api_operation_survives_schemathesis(fuzz_app, capsys):
    app, county, case_ids = fuzz_app
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    tried: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    server_errors: list[str] = []
    ops = _operations(schema)
    assert len(ops) >= 20, [op.label for op in ops]
    for op in ops:
        id_params = [p.name for p in op.path_parameters if p.name.endswith("_id")] if op.path_parameters else []
        for mode, n in EXAMPLES.items():
            strategy = op.as_strategy(generation_mode=mode)
            real_ids = st.fixed_dictionaries({name: st.sampled_from(case_ids) for name in id_params})

            @settings(max_examples=n, **FUZZ)
            @given(case=strategy, user=st.sampled_from(ROLES), use_real=st.booleans(), ids=real_ids)
            def call(case, user, use_real, ids):
                if use_real and ids and mode.is_positive:
                    case.path_parameters = {**(case.path_parameters or {}), **ids}
                tried[op.label] += 1
                try:
                    response = case.call(headers={"Authorization": f"Bearer {county.tokens[user]}"})
                except Exception as exc:  # the app raised: what a client sees as a 500
                    status, text = 500, f"{type(exc).__name__}: {exc}"
                else:
                    status, text = response.status_code, response.content[:300].decode("utf-8", "replace")
                statuses[status] += 1
                if status >= 500:
                    server_errors.append(f"{op.label} [{mode.value}] {status}: {case.as_curl_command()}\n  -> {text[:300]}")

            try:
                call()
            except Unsatisfiable:  # nothing to break in an operation without parameters (negative mode)
                assert not mode.is_positive, op.label
    with capsys.disabled():
        print(f"\n[api fuzz] {sum(tried.values())} requests over {len(tried)} operations; "
              f"status codes {dict(sorted(statuses.items()))}")
        for label, n in sorted(tried.items()):
            print(f"[api fuzz]   {n:4d}  {label}")
    assert not server_errors, "\n".join(server_errors[:20])
    assert sum(tried.values()) >= 20 * sum(EXAMPLES.values()) // 2
    assert statuses[200] > 0 and statuses[422] > 0  # both real work and refusals were reached


# -- every route of the app, pages included: path, query and form parameters (issue 14, row 14) --------
# Each int parameter gets ids out of every range (negative, 0, past int32 and int64, not a number) and
# real ids of rows that exist; each text one months, dates and times that do not exist, injection and
# NUL. GET and POST, as every role of the test county (and nobody). A 5xx fails with the request.
ALL_USERS = ["teacher", "school", "township", "county", "operator", "teacher_next_class", "teacher_other_school",
             "school_other", "school_far", "township_other", None]
BAD_INTS = ["0", "-1", "-9223372036854775809", str(2**31), str(2**63), str(10**30), "1.5", "١٢", ""]
BAD_TEXT = ["2026-13", "0000-01", "10000-01", "-2026-11", "2026-02-30", "0001-01-01", "9999-12-31",
            "2026-11-30T25:61", "' OR '1'='1", "../../etc/passwd", "\x00", "{{7*7}}", "a" * 300, ""]
# the sweep tries each parameter with these (the random combinations below draw from the lists above)
SWEEP_INTS = ["-1", str(2**31), str(2**63), "1.5", ""]
SWEEP_TEXT = ["2026-13", "0000-01", "2026-02-30", "9999-12-31", "' OR '1'='1", "\x00", "a" * 300, ""]
FORM_FIELDS = ["month", "submission_id", "received_at", "received_by", "event", "reason", "note", "student_no", "out_at",
               "due_back_at", "approved_at", "approved_by", "in_at", "day", "at", "explanation", "action", "contact",
               "complete", "source", "school_code", "fetched_by", "relation", "returned_with"]
REAL_ROWS = {"case_id": "cases", "census_case_id": "census_cases", "handoff_id": "handoffs", "document_id": "documents",
             "filing_id": "report_filings", "duty_id": "prevention_duties", "pupil": "pupils", "submission_id": "submitted_reports"}


def _params(dependant) -> tuple[list, list]:
    """The path and query parameters of a route and of its dependencies."""
    query, path = list(dependant.query_params), list(dependant.path_params)
    for sub in dependant.dependencies:
        q, p = _params(sub)
        query += q
        path += p
    return path, query


def _all_routes() -> list[tuple[str, str, list[tuple[str, bool]], list[tuple[str, bool]]]]:
    """(method, path template, [(path param, is int)], [(query param, is int)]) of every route, GET and POST."""
    from fastapi.routing import APIRoute

    from web.app import routers

    def is_int(p) -> bool:
        return "int" in str(p.field_info.annotation) and "Literal" not in str(p.field_info.annotation)

    out = []
    for router in routers():
        for route in router.routes:
            if isinstance(route, APIRoute):
                path, query = _params(route.dependant)
                for method in sorted(route.methods & {"GET", "POST"}):
                    if (method, route.path) == ("POST", "/logout"):  # would end the session the others use
                        continue
                    out.append((method, route.path, [(p.name, is_int(p)) for p in path],
                                [(p.alias, is_int(p)) for p in query]))
    return out


@pytest.fixture
def every_route_app(factory, tmp_path, monkeypatch):
    """The county with rows behind every kind of id: cases, a census register with its 失学 cases and
    hand-offs, documents, and the app on it."""
    from documents.census import census_step
    from sqlalchemy import text

    from store.prevention import census
    from demo.census_register import village_register

    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(tmp_path / "archive"))
    with factory() as s:
        county = build_county(s, sessions=True)
        reg = village_register(s, enrolled=3, unenrolled=2, exempted=0, out_of_age=0, bad_rows=False)
        s.commit()
        from tests.web_support import MONDAY

        imported = census.import_census(s, reg.content, reg.filename, actor="镇政府", now=MONDAY)
        census_step(s, imported.import_id, actor="镇政府", now=MONDAY)
        s.commit()
        pupils = [p.student_no for p in pupils_of_class(s, county.class_ids[0])]
    app = in_process_app(factory, tmp_path / "archive")
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.post("/api/morning-checks", headers={"Authorization": f"Bearer {county.tokens['teacher']}"},
                        json={"marks": [{"student_no": no, "status": "缺勤"} for no in pupils[:2]]})
        assert r.status_code == 200, r.text
    with factory() as s:
        real = {name: [str(i) for i in s.scalars(text(f"SELECT id FROM {table} ORDER BY id LIMIT 3"))]
                for name, table in REAL_ROWS.items()}
    assert real["case_id"] and real["census_case_id"] and real["handoff_id"] and real["document_id"]
    return app, county, real


def test_every_route_answers_bad_path_query_and_form_values_without_a_5xx(every_route_app, capsys):
    from urllib.parse import quote

    app, county, real = every_route_app
    routes = _all_routes()
    assert len(routes) >= 60, len(routes)  # every GET and POST but /logout (it would end the sessions in use)
    statuses: Counter[int] = Counter()
    server_errors: list[str] = []

    def values(name: str, is_int: bool, sweep: bool = False) -> list[str]:
        bad = (SWEEP_INTS if is_int else SWEEP_TEXT) if sweep else (BAD_INTS if is_int else BAD_TEXT)
        return bad + real.get(name, [])[:1 if sweep else 3]

    def call(client, method, template, path_values, query, form, user) -> None:
        url = template
        for name, value in path_values.items():
            url = url.replace("{" + name + "}", quote(value, safe="") or "%20")
        client.cookies.clear()
        headers = {}
        if user is not None:
            client.cookies.set("baoxue_session", county.cookies[user])
            headers["Authorization"] = f"Bearer {county.tokens[user]}"
        query = {k: v for k, v in query.items() if "\x00" not in v}  # httpx refuses NUL in a URL itself
        if method == "GET":
            r = client.get(url, params=query, headers=headers, follow_redirects=False)
        else:
            data = {"csrf": county.csrf[user] if user else "", **form} if not template.startswith("/api") else None
            r = client.request(method, url, params=query, data=data, headers=headers, follow_redirects=False)
        statuses[r.status_code] += 1
        if r.status_code in (401, 403):
            refused.add((method, template, user))
        if r.status_code >= 500 or "Traceback" in r.text:
            server_errors.append(f"{method} {url} {query} form={ {k: v[:40] for k, v in form.items()} } as {user}: "
                                 f"{r.status_code} {r.text[:200]!r}")

    main_users = ALL_USERS[:5]
    refused: set[tuple] = set()  # (method, route, user) answered 401/403: the sweep gives that route to the others

    def turn(method: str, template: str, n: int) -> str:
        allowed = [u for u in main_users if (method, template, u) not in refused] or main_users
        return allowed[n % len(allowed)]

    with TestClient(app, raise_server_exceptions=False) as client:
        # 1. every parameter of every route with every bad value, the roles taking turns
        n = 0
        for method, template, path, query in routes:
            benign_path = {name: (real.get(name) or ["1"])[0] for name, _ in path}
            params = [("path", name, is_int) for name, is_int in path] + [("query", name, is_int) for name, is_int in query]
            if not params:  # nothing to break but who asks
                for user in ALL_USERS[n % 2::2]:
                    call(client, method, template, benign_path, {}, {}, user)
                n += 1
                continue
            for where, name, is_int in params:
                for value in values(name, is_int, sweep=True):
                    user = turn(method, template, n)
                    n += 1
                    if where == "path":
                        call(client, method, template, {**benign_path, name: value}, {}, {}, user)
                    else:
                        call(client, method, template, benign_path, {name: value}, {}, user)
        swept = sum(statuses.values())

        # 2. random combinations: several parameters and form fields at once, any user, real ids mixed in
        form_value = st.one_of(st.sampled_from(BAD_TEXT + BAD_INTS), st.sampled_from(["2026-11-16", "2026-11-16T09:30",
                                                                                        "record_persuasion", "exempt",
                                                                                        "到校", "缺勤", "true"]))

        @settings(max_examples=150, **FUZZ)
        @given(route=st.sampled_from(routes), user=st.sampled_from(ALL_USERS), data=st.data())
        def combos(route, user, data):
            method, template, path, query = route
            path_values = {name: data.draw(st.sampled_from(values(name, is_int)), label=name) for name, is_int in path}
            query_values = {name: data.draw(st.sampled_from(values(name, is_int)), label=name) for name, is_int in query
                            if data.draw(st.booleans(), label=f"with {name}")}
            form = {}
            if method == "POST":
                for name in data.draw(st.lists(st.sampled_from(FORM_FIELDS), max_size=6, unique=True), label="form"):
                    form[name] = data.draw(st.one_of(form_value, st.sampled_from(real.get(name) or ["1"])), label=name)
            call(client, method, template, path_values, query_values, form, user)

        combos()
    with capsys.disabled():
        print(f"\n[route fuzz] {sum(statuses.values())} requests over {len(routes)} routes ({swept} in the sweep); "
              f"status codes {dict(sorted(statuses.items()))}")
    assert not server_errors, "\n".join(server_errors[:25])
    assert statuses[422] > 0 and statuses[200] > 0 and (statuses[303] + statuses[302]) > 0
