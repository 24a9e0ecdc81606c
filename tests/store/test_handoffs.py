"""送达回证: a paper the ladder sends to an outside body waits for its receipt; past the policy's time the case is stuck."""
from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import select

from documents.archive import render_for_case
from store.reporting import dashboards
from store.models.census import Handoff
from store.duties.handoffs import HandoffError, acknowledge, handoff_rows, stuck_handoffs, sync_handoffs
from store.access.scope import EVERYTHING, Scope
from store.reporting.queries import list_cases
from tests.engine_helpers import case_of, morning, setup_store, sweep

MON, TUE, WED = date(2026, 11, 16), date(2026, 11, 17), date(2026, 11, 18)
ISSUED = datetime(2026, 11, 18, 10, 0)


@pytest.fixture
def reported(session, factory, tmp_path, monkeypatch):
    """A case on day 3 (collective_visit) whose 书面报告 to the township and village was issued Wednesday 10:00."""
    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(tmp_path / "archive"))
    school, pupils = setup_store(session, pupils_per_class=2, grades=(5,))
    session.commit()
    for day in (MON, TUE, WED):
        morning(factory, school, day, [pupils[0]])
        sweep(factory, day)
    case = case_of(session, pupils[0])
    assert case.state == "collective_visit"
    doc = render_for_case(session, case.id, "report_to_township", actor="校长", now=ISSUED).document
    return case, doc


def test_an_issued_report_is_handed_to_the_township_and_the_village_once(session, reported):
    case, doc = reported
    made = sync_handoffs(session, now=ISSUED)
    rows = session.scalars(select(Handoff).where(Handoff.id.in_(made)).order_by(Handoff.recipient)).all()
    assert [(h.recipient, h.case_id, h.document_id) for h in rows] == [("township", case.id, doc.id),
                                                                       ("village_committee", case.id, doc.id)]
    assert rows[0].recipient_name.endswith("人民政府") and rows[1].recipient_name.endswith("村民委员会")
    # sent when the act it records happened (the step reached at Wednesday's 晨检), not when it was rendered
    assert doc.created_at == ISSUED
    assert all(h.sent_at == datetime(2026, 11, 18, 9, 0) and h.due_at == datetime(2026, 11, 20, 17, 0) for h in rows), \
        "two school days after sending (policy handoffs.ack_school_days)"
    assert sync_handoffs(session, now=ISSUED) == [], "idempotent"


def test_a_paper_rendered_late_is_handed_off_as_of_its_act(session, factory, tmp_path, monkeypatch):
    """A queue that ran a week late (or a retry) does not move the sending time nor the receipt's deadline."""
    monkeypatch.setenv("BAOXUE_ARCHIVE_DIR", str(tmp_path / "archive"))
    school, pupils = setup_store(session, pupils_per_class=2, grades=(5,))
    session.commit()
    for day in (MON, TUE, WED):
        morning(factory, school, day, [pupils[0]])
        sweep(factory, day)
    case = case_of(session, pupils[0])
    late = datetime(2026, 11, 25, 16, 0)
    doc = render_for_case(session, case.id, "report_to_township", actor="校长", now=late).document
    assert doc.data["doc"]["issued_on"] == "2026-11-18"
    rows = session.scalars(select(Handoff).where(Handoff.id.in_(sync_handoffs(session, now=late)))).all()
    assert rows and all(h.sent_at == datetime(2026, 11, 18, 9, 0) and h.due_at == datetime(2026, 11, 20, 17, 0)
                        for h in rows)


def test_an_unacknowledged_handoff_past_its_time_makes_the_case_stuck_until_received(session, reported):
    case, _ = reported
    sync_handoffs(session, now=ISSUED)
    friday, monday = datetime(2026, 11, 20, 16, 0), datetime(2026, 11, 23, 9, 0)
    assert stuck_handoffs(session, EVERYTHING, friday) == []
    late = stuck_handoffs(session, EVERYTHING, monday)
    assert {h["recipient"] for h in late} == {"township", "village_committee"} and all(h["stuck"] for h in late)
    row = next(r for r in dashboards.stuck_cases(session, EVERYTHING, monday) if r["case_id"] == case.id)
    assert {o["role"] for o in row["owed"] if o["action"] == "handoff_ack"} == {"township", "village_committee"}
    assert case.id in [c["id"] for c in list_cases(session, stuck_at=monday)]

    township = next(h for h in late if h["recipient"] == "township")
    acknowledge(session, township["id"], received_by="镇政府办公室 李文书", received_at=datetime(2026, 11, 23, 8, 30),
                actor="user:clerk", now=monday)
    row = next(r for r in dashboards.stuck_cases(session, EVERYTHING, monday) if r["case_id"] == case.id)
    assert {o["role"] for o in row["owed"] if o["action"] == "handoff_ack"} == {"village_committee"}
    done = next(r for r in handoff_rows(session, as_of=monday, pending_only=False) if r["id"] == township["id"])
    assert (done["received_by"], done["received_at"], done["acked_by"]) == (
        "镇政府办公室 李文书", "2026-11-23 08:30:00", "user:clerk")
    with pytest.raises(HandoffError, match="已于"):
        acknowledge(session, township["id"], received_by="别人", received_at=monday, actor="x", now=monday)


def test_a_receipt_needs_a_name_and_a_plausible_time_and_stays_in_scope(session, reported):
    case, _ = reported
    sync_handoffs(session, now=ISSUED)
    h = session.scalars(select(Handoff).order_by(Handoff.id)).first()
    monday = datetime(2026, 11, 23, 9, 0)
    with pytest.raises(HandoffError, match="签收人"):
        acknowledge(session, h.id, received_by=" ", received_at=monday, actor="x", now=monday)
    with pytest.raises(HandoffError, match="早于"):
        acknowledge(session, h.id, received_by="张三", received_at=datetime(2026, 11, 17, 9, 0), actor="x", now=monday)
    with pytest.raises(HandoffError, match="不存在"):
        acknowledge(session, h.id, received_by="张三", received_at=monday, actor="x", now=monday,
                    scope=Scope(school_ids=frozenset({case.school_id + 1000})))
    assert handoff_rows(session, Scope(school_ids=frozenset({case.school_id + 1000})), as_of=monday) == []
    assert len(handoff_rows(session, Scope(school_ids=frozenset({case.school_id})), as_of=monday)) == 2


# -- for tests/web/test_scoping.py: a hand-off and a 失学 child beside each of the cases A–D ----------------------
def seed_census_world(session, cases: dict[str, int], docs: dict[str, int], markers: dict[str, str], at: datetime):
    """Per key: a hand-off of the case's document to the township, and a census child named ``<marker>童``
    at the case's school (so the scoping probes see a leak by the same markers). Returns their ids."""
    from store.models.census import CensusCase, CensusImport
    from store.models import Case, School

    imp = CensusImport(filename="scoping.csv", content_sha256="5c" * 32, census_year=at.year,
                       reference_date=date(at.year, 8, 31), imported_by="test", imported_at=at, summary={})
    session.add(imp)
    session.flush()
    out: dict[str, dict[str, int]] = {"handoffs": {}, "census": {}}
    for n, (key, case_id) in enumerate(sorted(cases.items())):
        case = session.get(Case, case_id)
        school = session.get(School, case.school_id)
        h = Handoff(document_id=docs[key], kind="phone_record", case_id=case_id, school_id=case.school_id,
                    recipient="township", recipient_name="测试镇人民政府", sent_at=at, due_at=at)
        c = CensusCase(id_number=f"1101012018010100{n}", name=markers[key] + "童", birth_date=date(2018, 1, 1),
                       township_id=school.township_id, school_id=school.id, state="not_enrolled", version=1,
                       policy_name="default", policy_version=1, calendar_key=school.calendar_key, import_id=imp.id,
                       opened_on=at.date(), created_at=at, updated_at=at)
        session.add_all([h, c])
        session.flush()
        out["handoffs"][key], out["census"][key] = h.id, c.id
    return out


def test_a_paper_issued_when_a_pupil_is_missing_also_goes_to_the_police():
    from store.duties.handoffs import recipients_for
    from store.policy_files import policy_files, read_policy_file

    default = next(read_policy_file(p)[0] for p in policy_files() if p.stem == "default")
    assert recipients_for(default, "report_to_township") == ["township", "village_committee"]
    assert recipients_for(default, "report_to_township", outside_reason="whereabouts_unknown") == [
        "township", "village_committee", "police"]
    assert recipients_for(default, "phone_record") == []
