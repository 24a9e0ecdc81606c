"""The out-of-school census (排查, seed 000 §二.1; 四查三比对) and hand-off receipts (送达回证).

Pure rules, no clock and no I/O:

- :class:`CensusRules` / :class:`HandoffRules`: the policy data (``[census]``, ``[handoffs]`` in a
  policy file; the defaults keep older policy files valid);
- :func:`check_row`: what is wrong with one register row, and whether its child is of
  compulsory-school age on the reference date;
- :class:`CensusMachine`: the ``not_enrolled`` (失学) track. A child of school age enrolled nowhere
  and not exempted opens a census case; it ends when the child enrols, is exempted after all, or
  the case turns out to be a mistake. The dropout ladder (``machines.case_machine``) is untouched:
  a census child has no pupil row, no class and no absence streak, so it has its own small machine.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from statemachine import StateMachine
from statemachine.exceptions import TransitionNotAllowed
from statemachine.states import States

from machines.identity import InvalidIdNumber, birth_date, validate_id_number


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- policy data ----------------------------------------------------------------------------------
class CensusDutySpec(_Strict):
    """A persuasion duty (劝返/动员入学) a census case opens, for a named person of ``role``."""

    action: str = Field(pattern=r"^[a-z][a-z_]*$")
    label: str
    role: str
    due_school_days: int = Field(5, ge=0)
    due_time: time = time(17, 0)


class CensusRules(_Strict):
    """Who must be in school: ages on the reference date, the track's duties and documents."""

    min_age: int = Field(6, ge=3, le=9, description="凡年满六周岁的儿童 (义务教育法第十一条)")
    max_age: int = Field(15, ge=10, le=18)
    reference_date: str = Field("08-31", pattern=r"^\d{2}-\d{2}$",
                                description="MM-DD of the census year on which the age is taken (入学年龄截止日)")
    duties: list[CensusDutySpec] = [
        CensusDutySpec(action="village_persuasion", label="村委会入户动员入学", role="village_committee"),
        CensusDutySpec(action="school_persuasion", label="学校劝返动员入学", role="principal"),
    ]
    documents: list[str] = ["enrolment_notice"]

    @field_validator("reference_date")
    @classmethod
    def _real_day(cls, v: str) -> str:
        date(2024, int(v[:2]), int(v[3:]))  # a leap year accepts 02-29
        return v

    def reference_on(self, year: int) -> date:
        month, day = int(self.reference_date[:2]), int(self.reference_date[3:])
        if (month, day) == (2, 29) and not (year % 4 == 0 and (year % 100 or year % 400 == 0)):
            day = 28
        return date(year, month, day)


BODIES = {  # the outside bodies a school or township hands a paper to (recipient of a hand-off)
    "village_committee": "村民委员会",
    "township": "乡镇人民政府",
    "judicial_office": "司法所",
    "police": "公安派出所",
    "education_bureau": "县教育局",
    "education_center": "教育管理中心",  # seed 000 (五台山): 名单、台账报教育中心
    "township_head": "乡镇人民政府主管镇长",  # seed 002 (一): 通知…主管镇长
}


class HandoffRules(_Strict):
    """送达回证: which documents go to which outside body, and how long the receipt may take."""

    ack_school_days: int = Field(2, ge=0, description="school days a body may take to acknowledge receipt")
    ack_time: time = time(17, 0)
    recipients: dict[str, list[str]] = {
        "report_to_township": ["township", "village_committee"],
        "dropout_report_form": ["township"],
        "report_to_bureau": ["education_bureau"],
        "legal_notice": ["judicial_office"],
        "enrolment_notice": ["village_committee"],
    }
    # a document issued when a case leaves the school's hands goes to the bodies the outside rule notifies
    outside_bodies: bool = True

    def expected_by(self, calendar, sent_day: date) -> datetime:
        """When a paper sent on ``sent_day`` must have its receipt: ``ack_school_days`` school days later."""
        return datetime.combine(calendar.add_school_days(sent_day, self.ack_school_days), self.ack_time)

    @field_validator("recipients")
    @classmethod
    def _known_bodies(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for kind, bodies in v.items():
            unknown = sorted(set(bodies) - set(BODIES))
            if unknown:
                raise ValueError(f"hand-off of {kind}: unknown bodies {unknown}; known: {sorted(BODIES)}")
        return v


# -- one register row -------------------------------------------------------------------------------
class RowProblem(str, Enum):
    missing = "missing"                # 必填项缺失
    bad_id = "bad_id"                  # 身份证号无效 (位数/出生日期/校验位)
    duplicate_id = "duplicate_id"      # 同一身份证号在名单中出现多次
    birth_mismatch = "birth_mismatch"  # 出生日期与身份证号不符
    unknown_village = "unknown_village"


PROBLEM_LABELS = {
    "missing": "必填项缺失", "bad_id": "身份证号无效", "duplicate_id": "身份证号重复",
    "birth_mismatch": "出生日期与身份证号不符", "unknown_village": "村（社区）不存在",
    "name_mismatch": "姓名与学籍不符",
}


@dataclass
class RowCheck:
    id_number: str | None = None
    birth: date | None = None
    age: int | None = None
    school_age: bool = False
    problems: list[tuple[RowProblem, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def age_on(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def parse_day(value: str) -> date | None:
    """2016-03-05, 2016/3/5, 20160305, 2016年3月5日 → date; '' → None; anything else → ValueError."""
    v = (value or "").strip().replace("年", "-").replace("月", "-").replace("日", "").replace("/", "-").replace(".", "-")
    if not v:
        return None
    v = v.split(" ")[0]
    if len(v) == 8 and v.isdigit():
        return date(int(v[:4]), int(v[4:6]), int(v[6:]))
    y, m, d = (int(x) for x in v.split("-"))
    return date(y, m, d)


def check_row(row: dict[str, str], rules: CensusRules, year: int) -> RowCheck:
    """What is wrong with one row, and the child's age on the census reference date of ``year``."""
    out = RowCheck()
    missing = [label for key, label in (("name", "姓名"), ("id_number", "身份证号")) if not row.get(key)]
    if missing:
        out.problems.append((RowProblem.missing, "缺少 " + "、".join(missing)))
        return out
    try:
        out.id_number = validate_id_number(row["id_number"])
    except InvalidIdNumber as exc:
        out.problems.append((RowProblem.bad_id, str(exc)))
        return out
    out.birth = birth_date(out.id_number)
    try:
        stated = parse_day(row.get("birth_date", ""))
    except ValueError:
        stated = None
        out.problems.append((RowProblem.birth_mismatch, f"出生日期无法识别: '{row.get('birth_date')}'"))
    if stated is not None and stated != out.birth:
        out.problems.append((RowProblem.birth_mismatch,
                             f"出生日期 {stated.isoformat()} 与身份证号中的 {out.birth.isoformat()} 不符"))
    out.age = age_on(out.birth, rules.reference_on(year))
    out.school_age = rules.min_age <= out.age <= rules.max_age
    return out


# -- the not_enrolled track ---------------------------------------------------------------------------
class CensusState(str, Enum):
    not_enrolled = "not_enrolled"  # 失学: of school age, enrolled nowhere, not exempted (open)
    enrolled = "enrolled"          # 已入学: the roster now has the ID (final)
    exempted = "exempted"          # 延缓/免予入学 approved after all (final)
    dismissed = "dismissed"        # 误报: moved away, died, wrong row (final)

    @property
    def label(self) -> str:
        return CENSUS_STATE_LABELS[self]


CENSUS_STATE_LABELS = {CensusState.not_enrolled: "失学（待入学）", CensusState.enrolled: "已入学",
                       CensusState.exempted: "已批准缓/免入学", CensusState.dismissed: "已排除（误报）"}
CENSUS_OPEN = frozenset({CensusState.not_enrolled})


class CensusForbidden(Exception):
    def __init__(self, case_id: Any, state: str, event: str):
        super().__init__(f"census case {case_id}: event '{event}' is not allowed in state '{state}' "
                         f"(失学案件 {case_id} 当前状态不允许此操作)")


class CensusMachine(StateMachine):
    """not_enrolled → enrolled | exempted | dismissed; persuasion is recorded on the open case."""

    s = States.from_enum(CensusState, initial=CensusState.not_enrolled,
                         final=[CensusState.enrolled, CensusState.exempted, CensusState.dismissed])

    enrol = s.not_enrolled.to(s.enrolled)
    exempt = s.not_enrolled.to(s.exempted)
    dismiss = s.not_enrolled.to(s.dismissed)
    record_persuasion = s.not_enrolled.to.itself(internal=True)

    def fire(self, event: str, **kwargs: Any) -> CensusState:
        before = self.current_state_value
        if event not in CENSUS_EVENTS:
            raise CensusForbidden(getattr(self.model, "id", None), str(before), event)
        try:
            self.send(event, **kwargs)
        except TransitionNotAllowed as exc:
            raise CensusForbidden(getattr(self.model, "id", None), str(before), event) from exc
        return CensusState(self.current_state_value)


CENSUS_EVENTS = frozenset(e.id for e in CensusMachine.events)


def census_bind(model: Any) -> CensusMachine:
    return CensusMachine(model=model, state_field="state")
