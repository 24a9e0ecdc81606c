"""Out-of-school census (排查, seed 000 §二.1; 四查三比对): a village's or a household register's list
of children matched against enrolment by 身份证号.

1. :func:`import_census` reads the file (CSV/XLSX via ``store.ingest.tabular``), checks every row (ID check
   digit, duplicates, birth date against the ID, name against the roster) and records it with its
   outcome. The same file twice is one import (its SHA-256).
2. :func:`open_cases` (the census step, run by ``flows.census`` after each import): every child of
   compulsory-school age on the policy's reference date, enrolled nowhere and not exempted, opens
   one ``not_enrolled`` (失学) case — never a second while one is open for that ID — with the
   policy's persuasion duties (village + school) and a 入学通知书 (:func:`issue_notices`).
3. :func:`close_enrolled`: a census case closes (event ``enrol``) as soon as the roster has its ID.

The ladder of dropout cases is untouched: a census child has no pupil row (machines.census).
"""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import false, func, select, update
from sqlalchemy.orm import Session

from machines.census import (
    CENSUS_STATE_LABELS, PROBLEM_LABELS, CensusRules, CensusState, RowProblem, age_on, census_bind, check_row,
)
from machines.identity import mask_id, mask_name
from machines.policy import Policy

from store.models.census import CensusCase, CensusDuty, CensusEvent, CensusImport, CensusRow
from store.cases.context import CaseContext
from store.duties.ledger import UNDONE
from store.models import Jurisdiction, Pupil, School, Staff
from store.policy_files import PolicyFileError, PolicyRegistry
from store.access.scope import EVERYTHING, Scope
from store.ingest.tabular import read_table, require_columns

COLUMNS = {
    "姓名": "name", "儿童姓名": "name", "身份证号": "id_number", "身份证号码": "id_number", "公民身份号码": "id_number",
    "出生日期": "birth_date", "出生年月日": "birth_date", "性别": "gender",
    "村": "village", "村（社区）": "village", "村(社区)": "village", "所在村": "village", "村名": "village", "村庄": "village",
    "乡镇": "township", "乡镇（街道）": "township",
    "监护人": "guardian", "监护人姓名": "guardian", "联系电话": "guardian_phone", "监护人电话": "guardian_phone",
    "家庭住址": "address", "住址": "address",
    "缓免学": "exemption", "延缓/免予入学": "exemption", "缓学免学": "exemption", "缓免原因": "exemption_reason",
    "缓免学原因": "exemption_reason",
}
LABELS = {"name": "姓名", "id_number": "身份证号", "birth_date": "出生日期", "village": "村（社区）", "guardian": "监护人"}
REQUIRED = ["name", "id_number", "birth_date", "village", "guardian"]
EXEMPTIONS = {"延缓入学": "deferred", "缓学": "deferred", "免予入学": "exempted", "免学": "exempted"}
OUTCOMES = {
    "enrolled": "已在校（学籍匹配）", "not_enrolled": "失学（未入学）", "exempted": "缓/免入学", "out_of_age": "不在义务教育年龄段",
    "ambiguous": "待核实（不一致）", "invalid": "无效行",
}
OPEN = CensusState.not_enrolled.value
SYSTEM = "system:census"





# -- import ------------------------------------------------------------------------------------------
@dataclass
class ImportResult:
    import_id: int
    duplicate: bool  # the same file was imported before: nothing new
    summary: dict[str, Any] = field(default_factory=dict)


def _village_index(session: Session) -> tuple[dict[str, list[Jurisdiction]], dict[int, int]]:
    by_name: dict[str, list[Jurisdiction]] = {}
    for v in session.scalars(select(Jurisdiction).where(Jurisdiction.level == "village").order_by(Jurisdiction.id)):
        by_name.setdefault(v.name, []).append(v)
        by_name.setdefault(v.code, []).append(v)
        if v.name.endswith("村"):
            by_name.setdefault(v.name[:-1], []).append(v)
    parents = dict(session.execute(select(Jurisdiction.id, Jurisdiction.parent_id)).all())
    return by_name, parents


def _find_village(by_name, townships: dict[int, str], name: str, township: str) -> tuple[Jurisdiction | None, str]:
    found = by_name.get(name.strip(), [])
    if township:
        found = [v for v in found if townships.get(v.parent_id, "").startswith(township.strip()[:2])] or found
    if len(found) == 1:
        return found[0], ""
    if not found:
        return None, f"村（社区）「{name}」不存在"
    return None, f"村名「{name}」在多个乡镇都有，请加「乡镇」列"


def responsible_schools(session: Session) -> dict[int, int]:
    """village id → the school that serves it: where most of its enrolled children go, else the
    township's first school (片区: the area a school is responsible for, seed 000 §二.1)."""
    counts = session.execute(
        select(Pupil.village_id, Pupil.school_id, func.count()).where(Pupil.village_id.is_not(None), Pupil.enrolled.is_(True))
        .group_by(Pupil.village_id, Pupil.school_id)
    ).all()
    best: dict[int, tuple[int, int]] = {}
    for village_id, school_id, n in counts:
        if village_id not in best or (n, -school_id) > (best[village_id][1], -best[village_id][0]):
            best[village_id] = (school_id, n)
    out = {v: s for v, (s, _) in best.items()}
    first_school = {}
    for sid, township_id in session.execute(select(School.id, School.township_id).order_by(School.code)):
        first_school.setdefault(township_id, sid)
    for vid, parent in session.execute(select(Jurisdiction.id, Jurisdiction.parent_id).where(Jurisdiction.level == "village")):
        if vid not in out and parent in first_school:
            out[vid] = first_school[parent]
    return out


def _policy_of_school(session: Session, registry: PolicyRegistry, school_id: int | None) -> Policy | None:
    name = session.scalar(select(School.policy_name).where(School.id == school_id)) if school_id else None
    try:
        return registry.get(name or "default")
    except PolicyFileError:
        return None


OUT_OF_SCOPE = "out_of_scope"
OUT_OF_SCOPE_DETAIL = "该村（社区）不在您的管辖范围内，本行未处理，请由所属乡镇导入"


def _scope_tag(scope: Scope) -> bytes:
    """What makes one office's import of a file another than a second office's import of the same file."""
    if scope == EVERYTHING:
        return b""
    parts = [f"{k}={','.join(map(str, sorted(v)))}" for k, v in
             (("t", scope.township_ids), ("s", scope.school_ids), ("c", scope.class_ids)) if v is not None]
    return ("scope:" + ";".join(parts) + "\n").encode()


def _villages_in(session: Session, scope: Scope, serving: dict[int, int]) -> set[int] | None:
    """The villages an office may import rows of (None: all): a township its own villages; a school
    office the villages its school serves; a head teacher none (the census is the office's work)."""
    if scope == EVERYTHING:
        return None
    if scope.class_ids is not None:
        return set()
    villages = dict(session.execute(select(Jurisdiction.id, Jurisdiction.parent_id)
                                    .where(Jurisdiction.level == "village")).all())
    return {v for v, parent in villages.items()
            if (scope.township_ids is None or parent in scope.township_ids)
            and (scope.school_ids is None or serving.get(v) in scope.school_ids)}


def import_census(session: Session, data: bytes, filename: str, *, actor: str, now: datetime, source: str = "",
                  year: int | None = None, scope: Scope = EVERYTHING) -> ImportResult:
    """Record a register file and what every row of it is; opens nothing (see :func:`open_cases`).

    ``scope`` is the importing office's: a row of a village outside it is an ``invalid`` row (problem
    ``out_of_scope``) with no village, school or pupil attached, so nothing is opened or numbered
    there and nothing of that village is shown back. The same file imported by another office is
    that office's own import (its SHA-256 is taken with the office's scope)."""
    sha = hashlib.sha256(_scope_tag(scope) + data).hexdigest()
    existing = session.scalar(select(CensusImport).where(CensusImport.content_sha256 == sha))
    if existing is not None:
        return ImportResult(existing.id, True, existing.summary)
    rows = read_table(data, filename, aliases=COLUMNS)
    require_columns(rows, ["name", "id_number"], LABELS)
    year = year or now.year
    registry = PolicyRegistry(session)
    try:
        default_rules = registry.get("default").census
    except PolicyFileError:  # a county whose policies have other names: the model's defaults
        default_rules = CensusRules()
    imp = CensusImport(filename=filename[:255], content_sha256=sha, source=source[:64], census_year=year,
                       reference_date=default_rules.reference_on(year), imported_by=actor, imported_at=now, summary={})
    session.add(imp)
    session.flush()

    by_name, _ = _village_index(session)
    townships = dict(session.execute(select(Jurisdiction.id, Jurisdiction.name).where(Jurisdiction.level == "township")).all())
    serving = responsible_schools(session)
    rules_cache: dict[int | None, CensusRules] = {}

    def rules_for(school_id: int | None) -> CensusRules:
        if school_id not in rules_cache:
            policy = _policy_of_school(session, registry, school_id)
            rules_cache[school_id] = policy.census if policy is not None else default_rules
        return rules_cache[school_id]

    allowed = _villages_in(session, scope, serving)
    # first pass: normalised IDs, for duplicates and the roster lookup
    checked = []
    for n, r in rows:
        village, village_problem = (None, "")
        if r.get("village"):
            village, village_problem = _find_village(by_name, townships, r["village"], r.get("township", ""))
        if allowed is not None and village is not None and village.id not in allowed:  # (unknown: invalid, as before)
            village, village_problem = None, OUT_OF_SCOPE
        school_id = serving.get(village.id) if village else None
        checked.append((n, r, village, village_problem, school_id, check_row(r, rules_for(school_id), year)))
    id_counts = Counter(c.id_number for *_, c in checked if c.id_number)
    ids = [i for i in id_counts]
    pupils: dict[str, Pupil] = {}
    for i in range(0, len(ids), 900):
        for p in session.scalars(select(Pupil).where(Pupil.id_number.in_(ids[i:i + 900]), Pupil.enrolled.is_(True))):
            pupils[p.id_number] = p
    exempted_before = set(session.scalars(
        select(CensusCase.id_number).join(CensusImport, CensusImport.id == CensusCase.import_id)
        .where(CensusCase.state == CensusState.exempted.value, CensusImport.census_year == year,
               CensusCase.id_number.in_(ids or [""]))))

    readable = None if scope == EVERYTHING else set(session.scalars(
        scope.apply(select(School.id), school_col=School.id, class_col=School.id)))
    summary: Counter = Counter()
    refused: list[dict[str, Any]] = []
    for n, r, village, village_problem, school_id, c in checked:
        if village_problem == OUT_OF_SCOPE:  # another office's village: recorded as refused, matched against nothing
            refused.append({"row": n, "message": f"{OUT_OF_SCOPE_DETAIL} (village outside your scope)"})
            summary["invalid"] += 1
            session.add(CensusRow(import_id=imp.id, row_no=n, name="", id_number="", village=(r.get("village") or "")[:64],
                                  guardian="", outcome="invalid", problems=[{"code": OUT_OF_SCOPE, "detail": OUT_OF_SCOPE_DETAIL}]))
            continue
        problems = [{"code": p.value, "detail": d} for p, d in c.problems]
        pupil = pupils.get(c.id_number) if c.id_number else None
        missing = [LABELS[k] for k in REQUIRED if not r.get(k) and k not in ("name", "id_number")]
        if c.id_number and id_counts[c.id_number] > 1:
            problems.append({"code": RowProblem.duplicate_id.value,
                             "detail": f"身份证号在名单中出现{id_counts[c.id_number]}次"})
        if pupil is not None and pupil.name != r.get("name", "").strip():
            # the roster's name only to an office whose school the pupil is at (no name of another office's pupil)
            said = f"学籍姓名为「{pupil.name}」，" if readable is None or pupil.school_id in readable else "与学籍登记的姓名不一致，"
            problems.append({"code": "name_mismatch", "detail": f"{said}名单为「{r.get('name', '')}」"})
        if village_problem and pupil is None:
            problems.append({"code": RowProblem.unknown_village.value, "detail": village_problem})
        if missing and pupil is None and not problems:
            problems.append({"code": RowProblem.missing.value, "detail": "缺少 " + "、".join(missing)})
        codes = {p["code"] for p in problems}
        if codes & {"missing", "bad_id"} or (codes == {"unknown_village"}):
            outcome = "invalid"
        elif problems:
            outcome = "ambiguous"
        elif pupil is not None:
            outcome, school_id = "enrolled", pupil.school_id
        elif not c.school_age:
            outcome = "out_of_age"
        elif r.get("exemption", "").strip() or c.id_number in exempted_before:
            outcome = "exempted"
        else:
            outcome = "not_enrolled"
        summary[outcome] += 1
        detail = r.get("exemption_reason") or r.get("exemption") or ""
        if outcome == "exempted" and detail:
            problems.append({"code": "exemption", "detail": f"{r.get('exemption', '')}：{r.get('exemption_reason', '')}".strip("：")})
        session.add(CensusRow(
            import_id=imp.id, row_no=n, name=(r.get("name") or "")[:32], id_number=(c.id_number or r.get("id_number") or "")[:32],
            birth_date=c.birth, village_id=village.id if village else None, village=(r.get("village") or "")[:64],
            guardian=(r.get("guardian") or "")[:32], guardian_phone=(r.get("guardian_phone") or None),
            address=(r.get("address") or "")[:128] or None, gender=(r.get("gender") or "")[:4] or _gender(c.id_number),
            outcome=outcome, problems=problems,
            pupil_id=pupil.id if pupil is not None and outcome == "enrolled" else None, school_id=school_id,
        ))
    imp.summary = {"rows": len(rows), **{k: summary.get(k, 0) for k in OUTCOMES}} | ({"refused": refused} if refused else {})
    session.flush()
    return ImportResult(imp.id, False, imp.summary)


# -- the not_enrolled track ---------------------------------------------------------------------------
def _event(session: Session, case: CensusCase, event: str, before: str | None, after: str, *, actor: str, at: datetime,
           now: datetime, reason: str, payload: dict | None = None) -> None:
    seq = (session.scalar(select(func.max(CensusEvent.seq)).where(CensusEvent.census_case_id == case.id)) or 0) + 1
    session.add(CensusEvent(census_case_id=case.id, seq=seq, event=event, from_state=before, to_state=after, actor=actor,
                            at=at, recorded_at=now, reason=reason[:255], payload=payload or {}))
    case.version = seq
    case.updated_at = now


def open_cases(session: Session, import_id: int, *, actor: str = SYSTEM, now: datetime,
               ctx: CaseContext | None = None) -> list[int]:
    """Open a 失学 case for every ``not_enrolled`` row of the import (one open case per ID, ever)."""
    ctx = ctx or CaseContext(session)
    imp = session.get(CensusImport, import_id)
    rows = session.scalars(select(CensusRow).where(CensusRow.import_id == import_id, CensusRow.outcome == "not_enrolled",
                                                   CensusRow.census_case_id.is_(None)).order_by(CensusRow.row_no)).all()
    opened: list[int] = []
    if not rows:
        return opened
    open_by_id = dict(session.execute(select(CensusCase.id_number, CensusCase.id).where(
        CensusCase.state == OPEN, CensusCase.id_number.in_([r.id_number for r in rows]))).all())
    village_township = dict(session.execute(select(Jurisdiction.id, Jurisdiction.parent_id)
                                            .where(Jurisdiction.level == "village")).all())
    schools = {s.id: s for s in session.scalars(select(School).where(School.id.in_({r.school_id for r in rows})))}
    for r in rows:
        if r.id_number in open_by_id:  # already being persuaded: this row confirms it, nothing new
            r.census_case_id = open_by_id[r.id_number]
            continue
        school = schools[r.school_id]
        policy = ctx.policy(school.policy_name, ctx.policies.latest_version(school.policy_name))
        case = CensusCase(
            id_number=r.id_number, name=r.name, gender=r.gender, birth_date=r.birth_date, village_id=r.village_id,
            township_id=village_township.get(r.village_id) or school.township_id, school_id=school.id,
            guardian=r.guardian or None, guardian_phone=r.guardian_phone, address=r.address,
            state=OPEN, version=0, policy_name=policy.name, policy_version=policy.version, calendar_key=school.calendar_key,
            import_id=import_id, opened_on=now.date(), created_at=now, updated_at=now,
        )
        session.add(case)
        session.flush()
        age = age_on(r.birth_date, policy.census.reference_on(imp.census_year))
        _event(session, case, "open", None, OPEN, actor=actor, at=now, now=now,
               reason=f"排查：{age}周岁（{policy.census.reference_on(imp.census_year).isoformat()}），未在任何学校就读，未办理缓/免入学",
               payload={"import_id": import_id, "row_no": r.row_no, "age": age, "policy": policy.key})
        for d in policy.census.duties:
            session.add(CensusDuty(
                census_case_id=case.id, action=d.action, label=d.label, role=d.role,
                owner_id=ctx.owners.resolve(school.id, 0, d.role),
                due_at=ctx.due_at(school.calendar_key, now.date(), d.due_school_days, d.due_time),
                status="open", created_at=now))
        r.census_case_id = case.id
        open_by_id[r.id_number] = case.id
        opened.append(case.id)
    session.flush()
    return opened


def _gender(id_number: str | None) -> str | None:
    """From a valid 身份证号: the 17th digit is odd for a boy (GB 11643)."""
    return ("男" if int(id_number[16]) % 2 else "女") if id_number else None


def close_enrolled(session: Session, *, actor: str = "system:roster", now: datetime) -> list[int]:
    """Close every open census case whose 身份证号 is now on the roster (event ``enrol``)."""
    found = session.execute(
        select(CensusCase, Pupil, School).join(Pupil, Pupil.id_number == CensusCase.id_number)
        .join(School, School.id == Pupil.school_id)
        .where(CensusCase.state == OPEN, Pupil.enrolled.is_(True)).order_by(CensusCase.id)
    ).all()
    closed = []
    for case, pupil, school in found:
        case.pupil_id = pupil.id
        _fire(session, case, "enrol", actor=actor, at=now, now=now,
              reason=f"已入学：{school.name}学籍号{pupil.student_no}（花名册导入）",
              payload={"pupil_id": pupil.id, "school_id": school.id, "student_no": pupil.student_no})
        closed.append(case.id)
    return closed


def _fire(session: Session, case: CensusCase, event: str, *, actor: str, at: datetime, now: datetime, reason: str,
          payload: dict | None = None) -> CensusState:
    before = case.state
    after = census_bind(case).fire(event)
    case.state = after.value
    if after.value != OPEN:
        case.closed_on = at.date()
        case.outcome_reason = reason[:255]
        session.execute(update(CensusDuty).where(CensusDuty.census_case_id == case.id, CensusDuty.status.in_(UNDONE))
                        .values(status="cancelled"))
    _event(session, case, event, before, after.value, actor=actor, at=at, now=now, reason=reason, payload=payload)
    session.flush()
    return after


class CensusCaseNotFound(LookupError):
    def __init__(self, case_id: Any):
        super().__init__(f"census case {case_id} not found (失学案件不存在)")


def act(session: Session, census_case_id: int, event: str, *, actor: str, reason: str, now: datetime,
        at: datetime | None = None, action: str | None = None, scope: Scope = EVERYTHING) -> CensusState:
    """Staff on a census case: ``record_persuasion`` (completes the duty ``action``), ``exempt``, ``dismiss``."""
    case = session.scalar(_scoped(select(CensusCase).where(CensusCase.id == census_case_id), scope))
    if case is None:
        raise CensusCaseNotFound(census_case_id)
    at = at or now
    payload = {"action": action} if action else {}
    state = _fire(session, case, event, actor=actor, at=at, now=now, reason=reason, payload=payload)
    if event == "record_persuasion":
        q = update(CensusDuty).where(CensusDuty.census_case_id == case.id, CensusDuty.status.in_(UNDONE))
        if action:
            q = q.where(CensusDuty.action == action)
        session.execute(q.values(status="done", done_at=at))
    return state


# -- reading -----------------------------------------------------------------------------------------
def _scoped(q, scope: Scope, school_col=CensusCase.school_id):
    """A school sees its own census children, a township its schools', the county all; a head
    teacher's scope is a class and a census child has none: nothing."""
    if scope.class_ids is not None:
        return q.where(false())
    return scope.apply(q, school_col=school_col, class_col=school_col)


def case_rows(session: Session, scope: Scope = EVERYTHING, *, open_only: bool = False, masked: bool = False,
              as_of: datetime | None = None) -> list[dict[str, Any]]:
    q = (select(CensusCase, School, Jurisdiction).join(School, School.id == CensusCase.school_id)
         .outerjoin(Jurisdiction, Jurisdiction.id == CensusCase.village_id).order_by(CensusCase.id))
    if open_only:
        q = q.where(CensusCase.state == OPEN)
    rows = session.execute(_scoped(q, scope)).all()
    duties: dict[int, list[CensusDuty]] = {}
    if rows:
        for d in session.scalars(select(CensusDuty).where(CensusDuty.census_case_id.in_([c.id for c, _, _ in rows]))
                                 .order_by(CensusDuty.id)):
            duties.setdefault(d.census_case_id, []).append(d)
    return [{
        "id": c.id, "name": mask_name(c.name) if masked else c.name, "id_number": mask_id(c.id_number),
        "birth_date": c.birth_date.isoformat(), "village": v.name if v else "", "school": s.name, "school_code": s.code,
        "guardian": (mask_name(c.guardian) if masked else c.guardian) or "", "state": c.state,
        "state_label": CENSUS_STATE_LABELS[CensusState(c.state)], "opened_on": c.opened_on.isoformat(),
        "closed_on": c.closed_on.isoformat() if c.closed_on else None, "outcome_reason": c.outcome_reason or "",
        # an overdue duty is still to do ("open" on the page) and flagged late (marked by the daily advance)
        "duties": [{"action": d.action, "label": d.label, "role": d.role, "status": "open" if d.status in UNDONE else d.status,
                    "due_at": d.due_at.isoformat(sep=" "),
                    "overdue": d.status == "overdue" or (d.status == "open" and as_of is not None and d.due_at <= as_of)}
                   for d in duties.get(c.id, [])],
    } for c, s, v in rows]


def report(session: Session, scope: Scope = EVERYTHING, *, import_id: int | None = None, masked: bool = False,
           as_of: datetime | None = None) -> dict[str, Any]:
    """The latest import (or ``import_id``): counts by outcome, every row that needs attention, and the cases."""
    imp = session.get(CensusImport, import_id) if import_id else session.scalar(
        select(CensusImport).order_by(CensusImport.id.desc()).limit(1))
    out: dict[str, Any] = {"import": None, "counts": {}, "attention": [], "cases": case_rows(session, scope, masked=masked,
                                                                                             as_of=as_of)}
    out["open_cases"] = sum(1 for c in out["cases"] if c["state"] == OPEN)
    if imp is None:
        return out
    out["import"] = {"id": imp.id, "filename": imp.filename, "imported_at": imp.imported_at.isoformat(sep=" "),
                     "imported_by": imp.imported_by, "census_year": imp.census_year,
                     "reference_date": imp.reference_date.isoformat()}
    rows = session.scalars(_scoped(select(CensusRow).where(CensusRow.import_id == imp.id).order_by(CensusRow.row_no),
                                   scope, school_col=CensusRow.school_id)).all()
    counts = Counter(r.outcome for r in rows)
    out["counts"] = {k: counts.get(k, 0) for k in OUTCOMES}
    out["counts"]["rows"] = len(rows)
    out["attention"] = [{
        "row_no": r.row_no, "name": mask_name(r.name) if masked else r.name, "id_number": mask_id(r.id_number),
        "village": r.village, "outcome": r.outcome, "outcome_label": OUTCOMES[r.outcome],
        "problems": [{"code": p["code"], "label": PROBLEM_LABELS.get(p["code"], "缓/免入学" if p["code"] == "exemption" else p["code"]),
                      "detail": p["detail"]} for p in r.problems],
        "census_case_id": r.census_case_id,
    } for r in rows if r.outcome in ("not_enrolled", "ambiguous", "invalid", "exempted")]
    return out
