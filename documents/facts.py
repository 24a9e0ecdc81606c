"""The facts of a case, read from the store as one plain, JSON-ready dict.

Templates never see ORM rows: they get this dict (and the kind's ``record`` built from it in
``documents.records``), so every template can be rendered from plain data in tests, and the
archive can keep exactly what a document was rendered from.

Shape (every key always present; unknown values are ``None`` or empty lists)::

    case      id, ref, state, state_label, opened_on, closed_on, reason, reason_label,
              outcome_reason, outcome_label, relapse_of, days_absent, policy{name, version, key, label, jurisdiction}
    pupil     name, gender, student_no, id_number, birth_date, age, address, grade, grade_label,
              class_name, special_groups[labels]
    guardians [{name, relation, phone}]
    school    name, code, short, enrolled
    township  name, code, short      village  name | None      county  name, code
    people    {role: {name, phone} | None} for every role the documents sign with
    helpers   [{name, role}]         roles  {role id: Chinese label} of the case's policy
    events    [{seq, event, label, from_state, to_state, at, actor, reason, payload}]
"""
from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from machines.policy import Policy
from machines.states import REASON_LABELS, STATE_LABELS, CaseState
from machines.vocabulary import EVENT_LABELS, event_label, special_group_label  # noqa: F401 - re-exported
from machines.names import short_school, short_township
from store.models import Case, CaseEvent, Guardian, Helper, Jurisdiction, Pupil, School, SchoolClass, Staff

GRADE_LABELS = {g: f"{'一二三四五六七八九'[g - 1]}年级" for g in range(1, 10)}

# Roles whose named person a document may print (signatures, contacts, addressees).
PEOPLE_ROLES = (
    "head_teacher", "academic_office", "grade_director", "mentor_teacher", "principal", "vice_principal",
    "leadership_group", "area_leader", "duty_teacher", "village_committee", "township", "township_head",
    "judicial_office", "education_center", "education_bureau", "police",
)

def iso(d: Any) -> str | None:
    """date/datetime → ISO text (datetimes to the minute), None stays None."""
    if d is None:
        return None
    if hasattr(d, "hour"):
        return d.replace(second=0, microsecond=0).isoformat(sep=" ", timespec="minutes")
    return d.isoformat()


def age_on(birth: date | None, on: date) -> int | None:
    if birth is None:
        return None
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def policy_meta(policy: Policy) -> dict[str, Any]:
    return {"name": policy.name, "version": policy.version, "key": policy.key, "label": policy.label,
            "jurisdiction": policy.jurisdiction, "source": policy.source,
            "legal_measure": policy.referral_spec("refusal_after_notice").legal_measure}


def case_facts(session: Session, case_id: int, policy: Policy, *, today: date, upto_seq: int | None = None) -> dict[str, Any]:
    """Everything a case document may print, read in one go (raises LookupError if no such case).

    ``upto_seq``: the case as it stood right after its event ``upto_seq`` — the history up to it, the
    state it reached, the streak counted so far, the helpers named by then — so a document about that
    act prints the facts of that moment however late it is rendered (``today``: the act's day)."""
    case = session.get(Case, case_id)
    if case is None:
        raise LookupError(f"case {case_id} not found (案件不存在)")
    pupil = session.get(Pupil, case.pupil_id)
    school = session.get(School, case.school_id)
    klass = session.get(SchoolClass, case.class_id)
    township = session.get(Jurisdiction, school.township_id)
    county = session.get(Jurisdiction, township.parent_id) if township and township.parent_id else None
    village = session.get(Jurisdiction, pupil.village_id) if pupil.village_id else None
    guardians = session.scalars(select(Guardian).where(Guardian.pupil_id == pupil.id).order_by(Guardian.id)).all()
    helpers = session.scalars(select(Helper).where(Helper.case_id == case.id).order_by(Helper.id)).all()
    events = session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.seq)).all()
    state, closed_on, outcome, reason = case.state, case.closed_on, case.outcome_reason, case.reason
    if upto_seq is not None and any(e.seq == upto_seq for e in events):
        reason = reason_as_of(events, upto_seq, case.reason)
        events = [e for e in events if e.seq <= upto_seq]
        helpers = [h for h in helpers if h.event_seq is None or h.event_seq <= upto_seq]
        state = events[-1].to_state
        if not CaseState(state).is_final:
            closed_on = outcome = None

    days = [e.payload["day"] for e in events if e.event == "escalate" and isinstance(e.payload, dict)
            and isinstance(e.payload.get("day"), int)]
    return {
        "case": {
            "id": case.id,
            "ref": f"{school.code}-{case.opened_on:%Y}-{case.id:05d}",
            "state": state,
            "state_label": STATE_LABELS[CaseState(state)],
            "opened_on": iso(case.opened_on),
            "closed_on": iso(closed_on),
            "reason": reason,
            "reason_label": REASON_LABELS.get(reason, reason),
            "outcome_reason": outcome,
            "outcome_label": REASON_LABELS.get(outcome or "", outcome),
            "relapse_of": case.relapse_of,
            "days_absent": max(days, default=1),
            "policy": policy_meta(policy),
        },
        "pupil": {
            "name": pupil.name,
            "gender": pupil.gender,
            "student_no": pupil.student_no,
            "id_number": pupil.id_number,
            "birth_date": iso(pupil.birth_date),
            "age": age_on(pupil.birth_date, today),
            "address": pupil.address,
            "grade": klass.grade,
            "grade_label": GRADE_LABELS.get(klass.grade, f"{klass.grade}年级"),
            "class_name": klass.name,
            "special_groups": [special_group_label(g, policy.special_groups) for g in (pupil.special_groups or [])],
        },
        "guardians": [{"name": g.name, "relation": g.relation, "phone": g.phone} for g in guardians],
        "school": {"name": school.name, "code": school.code, "enrolled": school.enrolled,
                   "short": short_school(school.name, township.name if township else None)},
        "township": {"name": township.name, "code": township.code, "short": short_township(township.name)},
        "village": {"name": village.name} if village else None,
        "county": {"name": county.name, "code": county.code} if county else {"name": policy.jurisdiction, "code": ""},
        "people": _people(session, case, school, klass, township, on=today),
        # 三帮一: the latest assignment (a reassignment replaces the helpers), each role by its label
        "helpers": [{"name": h.name, "role": policy.roles.get(h.role, h.role)} for h in helpers
                    if h.event_seq == max(x.event_seq for x in helpers)],
        "roles": dict(policy.roles),
        "events": [{
            "seq": e.seq, "event": e.event, "label": event_label(e.event, e.to_state),
            "from_state": e.from_state, "to_state": e.to_state, "at": iso(e.at), "actor": e.actor,
            "reason": e.reason, "payload": e.payload if isinstance(e.payload, dict) else {},  # an old malformed one reads as empty
        } for e in events],
    }


def reason_as_of(events: list[CaseEvent], upto_seq: int, current: str) -> str:
    """The dropout reason as it stood right after event ``upto_seq``: the last ``record_reason`` up to it, else
    what the first later one reclassified (its ``previous``), else the case's reason (never reclassified)."""
    recorded = [e for e in events if e.event == "record_reason" and isinstance(e.payload, dict)]
    before = [e for e in recorded if e.seq <= upto_seq and e.payload.get("reason")]
    if before:
        return before[-1].payload["reason"]
    after = [e for e in recorded if e.seq > upto_seq and e.payload.get("previous")]
    return after[0].payload["previous"] if after else current


def _people(session: Session, case: Case, school: School, klass: SchoolClass, township: Jurisdiction | None,
            *, on: date):
    """The first named person of each role on the day ``on`` (the document's date: someone retired since still
    signs what was issued before): the class's head teacher, the school's staff, then the township's (and
    county's) officials."""
    chain: list[int] = []
    j = township
    while j is not None:
        chain.append(j.id)
        j = session.get(Jurisdiction, j.parent_id) if j.parent_id else None
    staff = session.scalars(
        select(Staff).where((Staff.school_id == school.id) | (Staff.jurisdiction_id.in_(chain or [-1])),
                            Staff.retired_on.is_(None) | (Staff.retired_on > on)).order_by(Staff.id)
    ).all()
    by_school: dict[str, Staff] = {}
    by_jurisdiction: dict[tuple[int, str], Staff] = {}
    for s in staff:
        if s.school_id == school.id:
            by_school.setdefault(s.role, s)
        if s.jurisdiction_id is not None:
            by_jurisdiction.setdefault((s.jurisdiction_id, s.role), s)
    people: dict[str, dict | None] = {}
    for role in PEOPLE_ROLES:
        person = by_school.get(role)
        if role == "head_teacher" and klass.head_teacher_id:
            person = session.get(Staff, klass.head_teacher_id)
        if person is None:
            person = next((by_jurisdiction[(jid, role)] for jid in chain if (jid, role) in by_jurisdiction), None)
        people[role] = {"name": person.name, "phone": person.phone} if person else None
    return people
