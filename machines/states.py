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
    escalated = "escalated"                # 移交学校以外, 跟踪回访至复学 (referred: tracked until return)
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
OPEN_STATES = frozenset(LADDER)  # the ladder: the timers move these cases
# referred outside the school (whereabouts unknown, working away, refusal after the legal notice): the ladder
# is over, the case is not. Its follow-up duties recur (policy [referral]) until it returns or is excused.
REFERRED_STATES = frozenset({CaseState.escalated})
LIVE_STATES = frozenset(OPEN_STATES | REFERRED_STATES)  # not closed: the morning check speaks for them
FINAL_STATES = frozenset({CaseState.returned, CaseState.excused})

STATE_LABELS = {
    CaseState.absent: "缺勤登记",
    CaseState.family_contacted: "电话联系",
    CaseState.visited: "家访",
    CaseState.collective_visit: "集体家访",
    CaseState.township_notice: "镇政府返校通知",
    CaseState.judicial_notice: "司法督促",
    CaseState.returned: "已复学",
    CaseState.escalated: "已移交跟踪",
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
    record_reason = "record_reason"                    # 查明/更正辍学原因 (seed 002: 了解其辍学原因)
    # follow-up of a referred case (seed 000 §二.5, §三.2; seed 001 §6 追踪和回访; seed 002 3.5 辍学追踪)
    record_follow_up = "record_follow_up"                      # 回访/追踪记录
    record_police_search = "record_police_search"              # 会同公安机关查找下落
    record_guardian_persuasion = "record_guardian_persuasion"  # 劝返监护人
    record_employer_persuasion = "record_employer_persuasion"  # 劝返用工单位
    record_judicial_progress = "record_judicial_progress"      # 司法程序（起诉/公诉/行政处罚）进展
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
    Action.record_reason: "查明辍学原因",
    Action.record_follow_up: "辍学追踪回访",
    Action.record_police_search: "会同公安机关查找下落",
    Action.record_guardian_persuasion: "劝返监护人",
    Action.record_employer_persuasion: "劝返用工单位",
    Action.record_judicial_progress: "司法程序跟进",
    Action.record_class_record: "填写辍学书面通报（行为表现、学习情况）",
    Action.serve_parent_notice: "书面通报家长签字",
    Action.report_parent_notice: "书面通报上报教育行政部门",
}
LADDER_ACTIONS = frozenset({Action.record_phone_call, Action.record_home_visit, Action.record_collective_visit,
                            Action.serve_township_notice, Action.serve_legal_notice, Action.assign_helpers})
FOLLOW_UP_ACTIONS = frozenset({Action.record_follow_up, Action.record_police_search, Action.record_guardian_persuasion,
                               Action.record_employer_persuasion, Action.record_judicial_progress})  # referred cases only


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
    """Reason classes for the statistics (DOMAIN.md §2; seed 002 学生辍学登记与报告制度: 辍学包括
    ①家庭原因、个人原因或其他原因 ②学校原因，如学业困难、心理问题 ③突发事件，如自然灾害、事故;
    the 小学生辍学书面通报 asks for the 辍学原因). The one list: intake, the ``record_reason`` action,
    its form and API field, the 辍学报告单 and the 辍学原因分布 all read it."""

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
