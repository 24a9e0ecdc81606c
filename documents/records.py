"""Per-kind ``record``: what one document states, derived from the case facts (pure functions).

The facts (``documents.facts``) are the case as stored; a record picks the event the document is
about (the phone call, the visit, the notice served …) and reads the details staff entered with
it. What staff did not enter stays ``None`` and the form prints a blank line for it, to be
filled in by hand, as on paper.

Action payload keys read here (all optional):

- ``record_phone_call``: called_at, caller, contact, phone, result, legit_reason (bool), signs (bool), notes
- ``record_home_visit``: visitors [names], met, place, situation, reason, measures, result, notes
- ``record_collective_visit``: participants [names or {name, unit}], village_member, place,
  situation, measures, result, photos [{src, caption, missing}] (the archive resolved each
  attachment id to ``archive:<path the server stored it under>``; a lost one has ``src`` None
  and ``missing``)

The payloads are checked by ``machines.payloads`` when recorded; old events recorded before
that are read defensively here (a wrong type reads as not entered).
- ``serve_township_notice`` / ``serve_legal_notice``: recipient, place, method, servers [names],
  witness, served_at, refused (bool), notes
- ``mark_returned``: measures, follow_up, notes
"""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Callable

from machines.states import REASON_LABELS, STATE_LABELS, CaseState, DropoutReason

from documents.catalog import SERVED_BY_ACTION, Kind

REASON_CLASSES = tuple(r.value for r in DropoutReason if r is not DropoutReason.unknown)  # the one list (seed 002)

Facts = dict[str, Any]


def event_at(facts: Facts, seq: int | None) -> dict | None:
    return next((e for e in facts["events"] if e["seq"] == seq), None) if seq is not None else None


def latest(facts: Facts, names: tuple[str, ...] | str, upto: int | None = None) -> dict | None:
    names = (names,) if isinstance(names, str) else names
    found = [e for e in facts["events"] if e["event"] in names and (upto is None or e["seq"] <= upto)]
    return found[-1] if found else None


def _about(facts: Facts, seq: int | None, names: tuple[str, ...] | str) -> dict | None:
    """The event the document is about: the one at ``seq`` if it is of that kind, else the latest before it."""
    names = (names,) if isinstance(names, str) else names
    ev = event_at(facts, seq)
    if ev is not None and ev["event"] in names:
        return ev
    return latest(facts, names, upto=seq) or latest(facts, names)


def _p(ev: dict | None, key: str, default: Any = None) -> Any:
    if ev is None:
        return default
    payload = ev.get("payload")
    value = payload.get(key) if isinstance(payload, dict) else None
    if isinstance(value, dict) or (isinstance(value, list) and key not in LIST_KEYS):
        return default  # an old, unchecked payload: a wrong shape reads as not entered
    return default if value in (None, "", []) else value


LIST_KEYS = frozenset({"visitors", "participants", "servers", "photos", "helpers"})


def _name(person: dict | None) -> str | None:
    return person["name"] if person else None


def _names(value: Any) -> list[str]:
    if not value:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.replace("，", "、").replace(",", "、").split("、") if v.strip()]
    if not isinstance(value, list):
        return []
    return [str(v.get("name") or "") + (f"（{v['unit']}）" if v.get("unit") else "") if isinstance(v, dict) else str(v)
            for v in value if v]


def _yes_no(value: Any) -> str | None:
    if value is None:
        return None
    return "是" if bool(value) else "否"


def _day(at: str | None) -> str | None:
    return at[:10] if at else None


def history(facts: Facts, upto: int | None = None) -> list[dict]:
    """What was done so far, in order: the lines a report's 工作经过 lists."""
    lines = []
    for e in facts["events"]:
        if upto is not None and e["seq"] > upto:
            break
        if e["event"] == "escalate":
            text = f"连续{_p(e, 'day', '')}个上学日未到校，按制度进入「{STATE_LABELS.get(CaseState(e['to_state']), e['to_state'])}」环节"
        elif e["event"] == "open":
            text = "晨检发现该生未请假不到校，班主任报教务处登记备案"
        else:
            text = e["label"]
            detail = _p(e, "result") or e.get("reason")
            if detail:
                text += f"：{detail}"
        lines.append({"at": e["at"], "day": _day(e["at"]), "text": text.rstrip("。；;，,. "), "actor": e["actor"],
                      "event": e["event"]})
    return lines


def _guardian(facts: Facts) -> dict:
    return facts["guardians"][0] if facts["guardians"] else {"name": None, "relation": None, "phone": None}


def _addressee(facts: Facts) -> str:
    gs = facts["guardians"]
    if not gs:
        return f"{facts['pupil']['name']}的监护人"
    return "、".join(g["name"] for g in gs[:2])


def _deadline(issued_on: str, days: int | None) -> str | None:
    if days is None:
        return None
    return (date.fromisoformat(issued_on) + timedelta(days=days)).isoformat()


# -- one builder per kind ------------------------------------------------------------------------
def _absence_register(facts: Facts, seq: int | None, kind: Kind, issued_on: str) -> dict:
    call = latest(facts, "record_phone_call")
    return {
        "registered_on": facts["case"]["opened_on"],
        "reported_by": _name(facts["people"]["head_teacher"]),
        "registrar": _name(facts["people"]["academic_office"]),
        "days_absent": facts["case"]["days_absent"],
        "guardian": _guardian(facts),
        "reasons": [{"label": REASON_LABELS[r], "checked": facts["case"]["reason"] == r} for r in REASON_CLASSES],
        "contact_result": _p(call, "result"),
        "history": history(facts, upto=seq),
    }


def _phone_record(facts: Facts, seq: int | None, kind: Kind, issued_on: str) -> dict:
    ev = _about(facts, seq, "record_phone_call")
    g = _guardian(facts)
    unreachable = _p(ev, "reached") is False
    return {
        "called_at": _p(ev, "called_at", ev["at"] if ev else None),
        "caller": _p(ev, "caller", _name(facts["people"]["head_teacher"])),
        "contact": _p(ev, "contact", f"{g['name']}（{g['relation']}）" if g["name"] else None),
        "phone": _p(ev, "phone", g["phone"]),
        "result": _p(ev, "result", ev.get("reason") if ev else None) or None,
        "legit_reason": _yes_no(_p(ev, "legit_reason")),
        "signs": _yes_no(_p(ev, "signs")),
        "unreachable": unreachable,
        "reported_to": _name(facts["people"]["academic_office"]),
        "follow_up": _p(ev, "follow_up") or ("当日家访" if (unreachable or _p(ev, "signs")) else None),
        "notes": _p(ev, "notes"),
    }


def _home_visit_record(facts: Facts, seq: int | None, kind: Kind, issued_on: str) -> dict:
    ev = _about(facts, seq, "record_home_visit")
    people = facts["people"]
    default_visitors = [n for n in (_name(people["academic_office"]) or _name(people["grade_director"]),
                                    _name(people["head_teacher"]), _name(people["mentor_teacher"])) if n]
    return {
        "visited_at": _p(ev, "visited_at", ev["at"] if ev else None),
        "visitors": _names(_p(ev, "visitors")) or default_visitors,
        "met": _p(ev, "met"),
        "place": _p(ev, "place", facts["pupil"]["address"]),
        "situation": _p(ev, "situation"),
        "reason": _p(ev, "reason", facts["case"]["reason_label"] if facts["case"]["reason"] != "unknown" else None),
        "measures": _p(ev, "measures"),
        "result": _p(ev, "result", ev.get("reason") if ev else None) or None,
        "family_opinion": _p(ev, "family_opinion"),
        "reported_to": _name(people["principal"]),
    }


def _collective_visit_record(facts: Facts, seq: int | None, kind: Kind, issued_on: str) -> dict:
    ev = _about(facts, seq, "record_collective_visit")
    people = facts["people"]
    default = [n for n in (_name(people["principal"]), _name(people["area_leader"]) or _name(people["vice_principal"]),
                           _name(people["head_teacher"])) if n]
    village_member = _p(ev, "village_member", _name(people["village_committee"]))
    photos = _p(ev, "photos", [])
    return {
        "visited_at": _p(ev, "visited_at", ev["at"] if ev else None),
        "participants": _names(_p(ev, "participants")) or default,
        "village_member": village_member,
        "place": _p(ev, "place", facts["pupil"]["address"]),
        "situation": _p(ev, "situation"),
        "measures": _p(ev, "measures"),
        "result": _p(ev, "result", ev.get("reason") if ev else None) or None,
        "family_opinion": _p(ev, "family_opinion"),
        "photos": [{"src": p.get("src"), "caption": p.get("caption") or "", "missing": bool(p.get("missing"))}
                   for p in photos if isinstance(p, dict)],
        "weekly_sheet": True,  # 计入周查表
    }


def _control_plan(facts: Facts, seq: int | None, kind: Kind, issued_on: str) -> dict:
    people = facts["people"]
    helpers = facts["helpers"]  # only those assigned (三帮一): never a name nobody assigned
    return {
        "leader": _name(people["principal"]),
        "deputy": _name(people["vice_principal"]) or _name(people["academic_office"]),
        "members": [n for n in (_name(people["academic_office"]), _name(people["grade_director"]),
                                _name(people["area_leader"]), _name(people["head_teacher"]),
                                _name(people["mentor_teacher"])) if n],
        "helpers": helpers,
        "history": history(facts, upto=seq),
        "visit_on": issued_on,
    }


def _report_to_township(facts: Facts, seq: int | None, kind: Kind, issued_on: str) -> dict:
    ev = event_at(facts, seq)
    whereabouts_unknown = bool(ev and ev["event"] == "escalate_outside")
    return {
        "addressees": _addressed(facts, [f"{facts['township']['name']}人民政府"] + (
            [f"{facts['village']['name']}村民委员会".replace("村村", "村")] if facts["village"] else [])),
        "history": history(facts, upto=seq),
        "whereabouts_unknown": whereabouts_unknown,
        "contact": facts["people"]["principal"],
    }


def _dropout_report_form(facts: Facts, seq: int | None, kind: Kind, issued_on: str) -> dict:
    return {
        "guardian": _guardian(facts),
        "history": history(facts, upto=seq),
        "helpers": facts["helpers"],
        "reported_on": issued_on,
        "addressees": _addressed(facts, [f"{facts['township']['name']}人民政府"]),
    }


def _education_center_list(facts: Facts, seq: int | None, kind: Kind, issued_on: str) -> dict:
    """名单报教育中心 (seed 000 §二.5): the pupil, the two persuasions on record, the helpers; with a 送达回证."""
    persuasions = [e for e in facts["events"] if e["event"] in ("record_home_visit", "record_collective_visit")
                   and (seq is None or e["seq"] <= seq)]
    return {
        "addressee": "教育管理中心",
        "guardian": _guardian(facts),
        "persuasions": [{"on": _day(e["at"]), "label": e["label"], "result": _p(e, "result")} for e in persuasions],
        "helpers": facts["helpers"],
        "history": history(facts, upto=seq),
        "reported_on": issued_on,
    }
def _notice_deadline(facts: Facts, kind: Kind, issued_on: str) -> str | None:
    """The policy's deadline in school days (``facts["notices"]``), else the kind's calendar days."""
    notices = facts.get("notices")
    if notices is not None:
        return notices["return_deadline" if kind.id == "return_notice" else "legal_deadline"]
    return _deadline(issued_on, kind.deadline_days)


def _addressed(facts: Facts, default: list[str]) -> list[str]:
    notices = facts.get("notices")
    return list(notices["addressees"]) if notices is not None and notices["addressees"] else default


def _notice(facts: Facts, seq: int | None, kind: Kind, issued_on: str) -> dict:
    notices = facts.get("notices") or {}
    return {
        "addressee": _addressee(facts),
        "deadline": _notice_deadline(facts, kind, issued_on),
        "check_time": notices.get("check_time"),  # the deadline is that day's morning check (晨检)
        "return_deadline": notices.get("return_deadline") if kind.id == "legal_notice" else None,
        "school_contact": facts["people"]["head_teacher"],
        "township_contact": facts["people"]["township"] or facts["people"]["township_head"],
        "judicial_office": notices.get("judicial_office") or f"{facts['township']['short']}司法所",
        "return_notice": None,  # filled by the archive: the 返校通知书 this notice follows, if issued
    }


def _report_to_bureau(facts: Facts, seq: int | None, kind: Kind, issued_on: str) -> dict:
    visit = _collective_visit_record(facts, None, kind, issued_on)
    attachments = ["集体家访记录"]
    if visit["photos"]:
        attachments.append(f"集体家访照片（{len(visit['photos'])}张）")
    attachments.append("控辍保学工作方案")
    return {
        "addressees": _addressed(facts, [f"{facts['county']['name']}教育局基础教育股"]),
        "history": history(facts, upto=seq),
        "visit": visit,
        "plan": _control_plan(facts, None, kind, issued_on),
        "attachments": attachments,
        "contact": facts["people"]["principal"],
    }


def _parent_notice(facts: Facts, seq: int | None, kind: Kind, issued_on: str) -> dict:
    """The 书面通报 as the school filled it in (``record_class_record``), else what a visit noted."""
    entered = latest(facts, "record_class_record", upto=seq)
    last = latest(facts, ("record_home_visit", "record_collective_visit"), upto=seq)
    return {
        "addressee": _addressee(facts),
        "conduct": _p(entered, "conduct") or _p(last, "conduct"),
        "study": _p(entered, "study") or _p(last, "study"),
        "class_record_seq": entered["seq"] if entered else None,
        "reported_to": (facts.get("notices") or {}).get("copies") or [],
        "dropout_on": facts["case"]["opened_on"],
        "signed_by": _name(facts["people"]["head_teacher"]),
    }


def _proof_of_service(facts: Facts, seq: int | None, kind: Kind, issued_on: str) -> dict:
    ev = _about(facts, seq, tuple(SERVED_BY_ACTION))
    served_kind = SERVED_BY_ACTION.get(ev["event"]) if ev else None
    if served_kind is None:  # rendered by hand before anything was served: the newest notice due
        served_kind = "legal_notice" if facts["case"]["state"] == CaseState.judicial_notice.value else "return_notice"
    g = _guardian(facts)
    people = facts["people"]
    default_servers = [n for n in (_name(people["township"]) or _name(people["township_head"]),
                                   _name(people["judicial_office"]) if served_kind == "legal_notice" else None) if n]
    action = ev["event"] if ev else None
    if action == "report_parent_notice":  # the bureau's receipt of the school's copy
        notices = facts.get("notices") or {}
        return {
            "served_kind": served_kind, "served": None, "to_bureau": True,
            "recipient": "、".join(notices.get("parent_notice_to") or []) or None,
            "place": None, "method": _p(ev, "method", "报送"), "servers": [n for n in (_name(people["principal"]),) if n],
            "witness": None, "served_at": _p(ev, "received_at", ev["at"]), "refused": False,
            "received_by": _p(ev, "received_by"), "opinion": None, "notes": _p(ev, "notes"),
        }
    if action == "serve_parent_notice":
        default_servers = [n for n in (_name(people["head_teacher"]),) if n]
    return {
        "served_kind": served_kind,
        "served": None,  # {title, doc_number, issuer}: filled by the archive from the served document
        "recipient": _p(ev, "recipient", f"{g['name']}（{facts['pupil']['name']}之{g['relation']}）" if g["name"] else None),
        "place": _p(ev, "place", facts["pupil"]["address"]),
        "method": _p(ev, "method", "直接送达"),
        "servers": _names(_p(ev, "servers")) or default_servers,
        "witness": _p(ev, "witness", _name(people["village_committee"])),
        "served_at": _p(ev, "served_at", ev["at"] if ev else None),
        "refused": bool(_p(ev, "refused", False)),
        "notes": _p(ev, "notes"),
        "to_bureau": False,
        "received_by": None,
        "opinion": _p(ev, "opinion"),
    }


def _return_register(facts: Facts, seq: int | None, kind: Kind, issued_on: str) -> dict:
    ev = _about(facts, seq, "mark_returned")
    opened = date.fromisoformat(facts["case"]["opened_on"])
    returned_on = facts["case"]["closed_on"] or _day(ev["at"] if ev else None)
    reached = [e for e in facts["events"] if e["event"] == "escalate"]
    return {
        "returned_on": returned_on,
        "calendar_days_out": (date.fromisoformat(returned_on) - opened).days if returned_on else None,
        "highest_step": STATE_LABELS[CaseState(reached[-1]["to_state"])] if reached else STATE_LABELS[CaseState.absent],
        "measures": _p(ev, "measures") or "；".join(h["text"] for h in history(facts, upto=seq)[1:4]) or None,
        "follow_up": _p(ev, "follow_up"),
        "helpers": facts["helpers"],
        "ledger_closed_on": returned_on,
        "registrar": _name(facts["people"]["academic_office"]),
        "history": history(facts, upto=seq),
    }


BUILDERS: dict[str, Callable[[Facts, int | None, Kind, str], dict]] = {
    "absence_register": _absence_register,
    "phone_record": _phone_record,
    "home_visit_record": _home_visit_record,
    "collective_visit_record": _collective_visit_record,
    "control_plan": _control_plan,
    "report_to_township": _report_to_township,
    "dropout_report_form": _dropout_report_form,
    "education_center_list": _education_center_list,
    "return_notice": _notice,
    "legal_notice": _notice,
    "report_to_bureau": _report_to_bureau,
    "parent_notice": _parent_notice,
    "proof_of_service": _proof_of_service,
    "return_register": _return_register,
}


def record_for(kind: Kind, facts: Facts, *, event_seq: int | None, issued_on: str) -> dict:
    return BUILDERS[kind.id](facts, event_seq, kind, issued_on)



# -- followup (issue 16) ---------------------------------------------------------------------------
def _judicial_referral(facts: dict, seq: int | None, kind: Kind, issued_on: str) -> dict[str, Any]:
    """提请依法处理函: refusal after the legal notice, to the 司法所 (and, through it, the 人民法院)."""
    served = latest(facts, "serve_legal_notice", upto=seq)
    t, c = facts["township"], facts["county"]
    return {
        "addressees": [f"{t['short']}司法所", f"{c['name']}人民法院"],
        "guardians": _addressee(facts),
        "guardian": _guardian(facts),
        "legal_measure": facts["case"]["policy"].get("legal_measure") or "依法处理",
        "legal_notice_served_on": _day(served["at"]) if served else None,
        "refused_service": bool(_p(served, "refused", False)),
        "history": history(facts, upto=seq),
        "contact": facts["people"]["principal"],
        "township_contact": _name(facts["people"]["township"] or facts["people"]["township_head"]),
    }


BUILDERS["judicial_referral"] = _judicial_referral
