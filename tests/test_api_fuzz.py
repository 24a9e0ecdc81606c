"""Schemathesis against the REST API's OpenAPI spec (issue 7, part 5): no request, however hostile, gets a 5xx.

Every operation of ``app.openapi()`` is called with schema-conforming data (positive) and with data
that breaks the schema (negative), as a random role of the test county, and with the ids of real cases
in scope mixed in so the case routes do real work. A 5xx (or an exception escaping the app) fails the
test with the request that caused it. The counts of requests per operation are printed.

Runs on both databases: PostgreSQL rejects what SQLite lets through (NUL characters, integers over
32 bits, over-long strings), so both are needed.
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
