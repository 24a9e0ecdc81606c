"""Census documents (入学通知书): the facts of a census case, its template context, issuing it.

A census child has no pupil row, so the context is built from the census case as stored
(:func:`notice_facts`) instead of ``documents.facts.case_facts``; the ``doc`` block is
the same as a case document's (issuer, trace line, 发文字号 via ``context.with_number``).
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from machines.census import age_on
from machines.identity import mask_id
from store.models.census import CensusCase, CensusImport
from store.cases.context import OwnerResolver
from store.models import Jurisdiction, School, Staff
from store.policy_files import PolicyRegistry

from documents import archive, catalog
from documents.context import issuer_info, trace_line
from documents.facts import short_school, short_township

GRADES = "一二三四五六七八九"


def grade_hint(age: int) -> str:
    """The grade a child of ``age`` (on the reference date) would be in: 6 → 一年级, 14+ → 九年级."""
    return f"{GRADES[min(9, max(1, age - 5)) - 1]}年级"


def census_doc_key(census_case_id: int, kind: str) -> str:
    return f"census:{census_case_id}:{kind}"


def census_context(kind_id: str, facts: dict[str, Any], *, issued_on: str, actor: str) -> dict[str, Any]:
    """``facts``: child, school, township, village, county, people {school_contact, village_contact},
    census {id, ref, reference_date, policy}."""
    kind = catalog.get(kind_id)
    if kind.subject != "census":
        raise ValueError(f"{kind_id} is not a census document")
    village = facts["village"]
    village_label = f"{village['name']}村民委员会".replace("村村", "村") if village else f"{facts['township']['name']}有关村（社区）"
    doc = {
        "kind": kind.id, "title": kind.name, "short": kind.short, "layout": kind.layout,
        "ref": f"{facts['census']['ref']}-1", "case_id": None, "census_case_id": facts["census"]["id"], "event_seq": 1,
        "step": None, "policy": facts["census"]["policy"], "issuer": issuer_info(kind, facts), "issued_on": issued_on,
        "actor": actor, "version": 1, "correction_reason": None, "internal": kind.internal,
        "cc": [f"{facts['county']['name']}教育局", facts["school"]["name"]] + ([village_label] if village else []),
        "number": None, "year": None, "doc_number": None,
    }
    doc["trace"] = trace_line(doc)
    guardian = facts["child"].get("guardian")
    record = {
        "addressee": guardian or f"{facts['child']['name']}的监护人",
        "deadline": (date.fromisoformat(issued_on) + timedelta(days=kind.deadline_days or 10)).isoformat(),
        "reference_date": facts["census"]["reference_date"],
        "village_label": village_label,
        "school_contact": facts["people"]["school_contact"],
        "village_contact": facts["people"]["village_contact"],
        "grade_hint": grade_hint(facts["child"]["age"]),
    }
    return {"doc": doc, **facts, "record": record}


# -- the 入学通知书 ----------------------------------------------------------------------------------
def notice_facts(session: Session, case: CensusCase) -> dict[str, Any]:
    school = session.get(School, case.school_id)
    township = session.get(Jurisdiction, case.township_id)
    county = session.get(Jurisdiction, township.parent_id) if township.parent_id else township
    village = session.get(Jurisdiction, case.village_id) if case.village_id else None
    imp = session.get(CensusImport, case.import_id)
    policy = PolicyRegistry(session).get(case.policy_name, case.policy_version)
    ref = policy.census.reference_on(imp.census_year)
    owners = OwnerResolver(session)

    def person(role: str) -> dict | None:
        sid = owners.resolve(school.id, 0, role)
        st = session.get(Staff, sid) if sid else None
        return {"name": st.name, "phone": st.phone} if st else None

    return {
        "child": {"name": case.name, "gender": case.gender, "birth_date": case.birth_date.isoformat(),
                  "id_number_masked": mask_id(case.id_number), "age": age_on(case.birth_date, ref),
                  "guardian": case.guardian},
        "school": {"name": school.name, "code": school.code, "short": short_school(school.name, township.name),
                   "enrolled": school.enrolled},
        "township": {"name": township.name, "code": township.code, "short": short_township(township.name)},
        "county": {"name": county.name, "code": county.code},
        "village": {"name": village.name} if village else None,
        "people": {"school_contact": person("principal"), "village_contact": person("village_committee")},
        "census": {"id": case.id, "ref": f"失学-{case.id}", "reference_date": ref.isoformat(), "policy": policy.key},
    }


def issue_notices(session: Session, census_case_ids: list[int], *, actor: str, now: datetime) -> list[int]:
    """Issue (archive, numbered) the documents the census policy asks for; returns document ids.
    Asking again returns the archived document (its key: census case + kind)."""
    out = []
    for cid in census_case_ids:
        case = session.get(CensusCase, cid)
        policy = PolicyRegistry(session).get(case.policy_name, case.policy_version)
        for kind_id in policy.census.documents:
            kind = catalog.get(kind_id)
            key = census_doc_key(cid, kind_id)
            issued = case.created_at  # the act: the 失学 case opened by the census, never the render time
            ctx = census_context(kind_id, notice_facts(session, case), issued_on=issued.date().isoformat(), actor=actor)
            plan = archive.Plan(kind, key, ctx, scope=f"census:{cid}", policy_name=case.policy_name,
                                policy_version=case.policy_version,
                                issuer=ctx["doc"]["issuer"]["key"] if kind.numbered else None, year=issued.year)
            out.append(archive.issue(session, plan, "pdf", actor=actor, now=now).document_id)
    return out


def census_step(session: Session, import_id: int, *, actor: str, now: datetime) -> dict[str, Any]:
    """What follows an import, in one unit of work: close the cases of children now enrolled, open
    the new 失学 cases, issue their notices, record the notices' hand-offs."""
    from store.prevention import census
    from store.duties import handoffs

    closed = census.close_enrolled(session, actor=actor, now=now)
    opened = census.open_cases(session, import_id, actor=actor, now=now)
    documents = issue_notices(session, opened, actor=actor, now=now)
    made = handoffs.sync_handoffs(session, now=now)
    return {"import_id": import_id, "opened": opened, "closed": closed, "documents": documents, "handoffs": made}
