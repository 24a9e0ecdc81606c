"""The states of a dropout case (一人一案) and the staff actions recorded on it."""
from __future__ import annotations

from enum import Enum


class CaseState(str, Enum):
    """Where a case stands on the escalation ladder (DOMAIN.md §2).

    A ladder state names the step the case has reached; the step's duties (phone the family,
    visit the home, ...) are recorded as actions while the case is in it.
    """

    absent = "absent"                      # 缺勤登记: morning check found the pupil missing
    family_contacted = "family_contacted"  # 电话联系家长 (day 1)
    visited = "visited"                    # 家访 (day 2)
    collective_visit = "collective_visit"  # 集体家访, 控辍方案, 书面报告 (day 3)
    township_notice = "township_notice"    # 镇政府 返校通知书 (day 4)
    judicial_notice = "judicial_notice"    # 司法所 法律文书 (day 5)
    returned = "returned"                  # 复学, 台账销号 (final)
    escalated = "escalated"                # 移交学校以外 (final for the school's ladder)
    excused = "excused"                    # 有正当理由 / 误报 (final)

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES

    @property
    def label(self) -> str:
        return STATE_LABELS[self]


LADDER: tuple[CaseState, ...] = (
    CaseState.absent,
    CaseState.family_contacted,
    CaseState.visited,
    CaseState.collective_visit,
    CaseState.township_notice,
    CaseState.judicial_notice,
)
OPEN_STATES = frozenset(LADDER)
FINAL_STATES = frozenset({CaseState.returned, CaseState.escalated, CaseState.excused})

STATE_LABELS = {
    CaseState.absent: "缺勤登记",
    CaseState.family_contacted: "电话联系",
    CaseState.visited: "家访",
    CaseState.collective_visit: "集体家访",
    CaseState.township_notice: "镇政府返校通知",
    CaseState.judicial_notice: "司法督促",
    CaseState.returned: "已复学",
    CaseState.escalated: "已移交",
    CaseState.excused: "已排除",
}


class Action(str, Enum):
    """Things staff record on an open case. Each completes the duty of the same name."""

    record_phone_call = "record_phone_call"            # 电话联系记录
    record_home_visit = "record_home_visit"            # 家访记录
    record_collective_visit = "record_collective_visit"  # 集体家访记录
    serve_township_notice = "serve_township_notice"    # 返校通知书送达
    serve_legal_notice = "serve_legal_notice"          # 法律文书送达
    assign_helpers = "assign_helpers"                  # 三帮一 帮扶责任人
    record_class_record = "record_class_record"        # 书面通报: 在校行为表现、学习情况 (seed 002)
    serve_parent_notice = "serve_parent_notice"        # 书面通报 家长签字/拒签 (送达回证)
    report_parent_notice = "report_parent_notice"      # 书面通报 上报教育行政部门 (回执)

    @property
    def label(self) -> str:
        return ACTION_LABELS[self]


ACTION_LABELS = {
    Action.record_phone_call: "电话联系家长",
    Action.record_home_visit: "家访",
    Action.record_collective_visit: "集体家访",
    Action.serve_township_notice: "送达返校通知书",
    Action.serve_legal_notice: "送达法律文书",
    Action.assign_helpers: "落实三帮一帮扶责任人",
    Action.record_class_record: "填写辍学书面通报（行为表现、学习情况）",
    Action.serve_parent_notice: "书面通报家长签字",
    Action.report_parent_notice: "书面通报上报教育行政部门",
}


class ExcuseReason(str, Enum):
    sick_leave = "sick_leave"            # 病假
    personal_leave = "personal_leave"    # 事假
    exemption = "exemption"              # 免学/缓学
    transfer = "transfer"                # 转学/借读
    opened_in_error = "opened_in_error"  # 误报


class OutsideReason(str, Enum):
    whereabouts_unknown = "whereabouts_unknown"    # 去向不明 → 镇政府 + 公安
    refusal_after_notice = "refusal_after_notice"  # 法律文书送达后仍拒不复学
    working_away = "working_away"                  # 外出务工


class DropoutReason(str, Enum):
    """Reason classes for the statistics (DOMAIN.md §2)."""

    family = "family"
    study = "study"              # 学业困难/厌学
    psychological = "psychological"
    poverty = "poverty"
    working_away = "working_away"
    disaster = "disaster"
    illness = "illness"
    other = "other"
    unknown = "unknown"


REASON_LABELS = {
    "family": "家庭原因", "study": "学业困难/厌学", "psychological": "心理原因", "poverty": "家庭贫困",
    "working_away": "外出务工", "disaster": "灾害/意外", "illness": "疾病", "other": "其他",
    "unknown": "尚未查明",
    "sick_leave": "病假", "personal_leave": "事假", "exemption": "免学/缓学", "transfer": "转学/借读",
    "opened_in_error": "误报", "whereabouts_unknown": "去向不明", "refusal_after_notice": "拒不送子女入学",
}
