"""The words of the product, each defined once: events, special groups, duty kinds, report levels
and kinds, what counts as a dropout, and their Chinese labels.

The case states, staff actions and reason classes are in ``machines.states`` (with their labels),
the watch-list duties in ``machines.risk``, the census states in ``machines.census``; this module
adds the rest and the functions every screen, document, artifact and CLI table labels them with. A
policy file may rename a special group (``[special_groups]``) or a step (``steps.label``); nothing
else keeps a label table of its own (tests/test_vocabulary.py).
"""
from __future__ import annotations

from functools import lru_cache

from enum import Enum
from typing import Mapping

from machines.states import ACTION_LABELS, OPEN_STATES, REASON_LABELS, STATE_LABELS, Action, CaseState

__all__ = [
    "ACTION_LABELS", "ATTENDANCE_LABELS", "DROPOUT_STATES", "DUTY_KIND_LABELS", "DutyKind", "EVENT_LABELS", "Event", "LEVEL_LABELS",
    "OUT_OF_SCHOOL_STATES", "PREVENTION_SOURCE_LABELS", "REASON_LABELS", "REPORT_KIND_LABELS", "REPORTED_GROUPS", "RISK_DUTY_LABELS", "RiskDuty",
    "SPECIAL_GROUP_LABELS", "STATE_LABELS", "SpecialGroup", "WORK_EVENTS", "event_label", "is_dropout", "label_of",
    "special_group_label", "state_label",
]


class Event(str, Enum):
    """What a case history records besides the staff actions (``machines.states.Action``)."""

    open = "open"                          # 晨检发现无故缺勤
    escalate = "escalate"                  # timer: the next step of the ladder
    mark_returned = "mark_returned"        # 返校复学
    excuse = "excuse"                      # 排除
    escalate_outside = "escalate_outside"  # 移交学校以外


EVENT_LABELS: dict[str, str] = {
    Event.open.value: "晨检发现无故缺勤，登记备案",
    Event.escalate.value: "按制度升级",
    Event.mark_returned.value: "返校复学",
    Event.excuse.value: "排除（有正当理由）",
    Event.escalate_outside.value: "移交学校以外",
    **{a.value: ACTION_LABELS[a] for a in Action},
}
STATE_CHANGES = frozenset(e.value for e in Event)  # the events that move a case's state


def event_label(event: str, to_state: str | None = None) -> str:
    """The Chinese label of a history event (an escalation names the step it reached)."""
    if event == Event.escalate.value and to_state in CaseState.__members__:
        return "升级至「" + STATE_LABELS[CaseState(to_state)] + "」"
    return EVENT_LABELS.get(event, event)


@lru_cache(maxsize=1024)  # a list labels thousands of rows with a handful of steps
def state_label(state: str) -> str:
    """A state's label; a referred case's follow-up round (duty step ``escalated:<n>``) names its round."""
    base, _, n = (state or "").partition(":")
    if n.isdigit() and base in CaseState.__members__:
        return f"{STATE_LABELS[CaseState(base)]}·第{n}轮"
    return STATE_LABELS[CaseState(state)] if state in CaseState.__members__ else state


# -- what counts as a dropout (DOMAIN.md §2, the monthly report) -------------------------------------
# 辍学 in the statistics: three or more school days without reason (the collective visit and later
# steps) or handed outside the school. 未返校 (out of school): every open case and every handed-out one.
DROPOUT_STATES = frozenset({CaseState.collective_visit, CaseState.township_notice, CaseState.judicial_notice,
                            CaseState.escalated})
OUT_OF_SCHOOL_STATES = frozenset(OPEN_STATES | {CaseState.escalated})
WORK_EVENTS = tuple(a.value for a in Action)  # 工作开展: the staff actions, in ladder order


def is_dropout(state: str | None) -> bool:
    return state in {s.value for s in DROPOUT_STATES}


# -- special groups (the roster's flags; seed 000 §一.3) ---------------------------------------------
class SpecialGroup(str, Enum):
    orphan = "orphan"
    left_behind = "left_behind"
    disabled = "disabled"
    poor = "poor"
    learning_difficulty = "learning_difficulty"


SPECIAL_GROUP_LABELS: dict[str, str] = {
    SpecialGroup.orphan.value: "孤儿",
    SpecialGroup.left_behind.value: "留守儿童",
    SpecialGroup.disabled.value: "残疾儿童",
    SpecialGroup.poor.value: "家庭经济困难",
    SpecialGroup.learning_difficulty.value: "学困生",
}
# the groups the monthly report counts among its dropouts (seed 002's 特殊群体 columns)
REPORTED_GROUPS = (SpecialGroup.left_behind.value, SpecialGroup.orphan.value, SpecialGroup.disabled.value)


def special_group_label(group: str, renamed: Mapping[str, str] | None = None) -> str:
    """A group's label; ``renamed``: the policy's ``[special_groups]`` (a policy may rename one)."""
    return (renamed or {}).get(group) or SPECIAL_GROUP_LABELS.get(group, group)


# -- duty kinds (store.duties.ledger) and report words ----------------------------------------------------
class DutyKind(str, Enum):
    case = "case"
    census = "census"
    prevention = "prevention"
    watch = "watch"
    calendar = "calendar"  # the operator's duty to supply a year's holiday list (store.calendar_watch)
    talk = "talk"          # 约谈整改跟踪: an interview's rectification, checked by its deadline (store.accountability)
    pledge = "pledge"      # 责任书签订: the yearly 控辍保学责任书 not yet signed (store.accountability)
    report = "report_due"  # 报表报送: a report, a weekly count or a 季查 reconciliation (store.reporting.people)
    approval = "approval"  # a leave, 免学/缓学 or transfer awaiting its approver (store.cases.leave)


DUTY_KIND_LABELS = {DutyKind.case.value: "控辍案件", DutyKind.census.value: "失学排查",
                    DutyKind.prevention.value: "防辍预警", DutyKind.watch.value: "重点关注",
                    DutyKind.calendar.value: "校历", DutyKind.talk.value: "约谈整改",
                    DutyKind.pledge.value: "责任书签订", DutyKind.report.value: "报表报送"}
PREVENTION_SOURCE_LABELS = {"gate": "门卫登记预警", "truancy": "旷课分级"}
LEVEL_LABELS = {"school": "学校", "township": "乡镇", "county": "县"}
# a pupil's mark in the morning check (晨检)
ATTENDANCE_LABELS = {"present": "到校", "unexcused": "无故缺勤", "sick_leave": "病假", "personal_leave": "事假",
                     "exemption": "免学/缓学", "transfer": "转学/借读"}
REPORT_KIND_LABELS = {"monthly": "月报", "term_start": "学期初报告", "term_end": "学期末报告"}


class RiskDuty(str, Enum):
    """Preventive duties a rule can create for the pupil's helper (帮扶责任人) or another role."""

    tutoring = "tutoring"                           # 学业辅导
    subsidy_check = "subsidy_check"                 # 资助政策落实核查
    psychological_support = "psychological_support"  # 心理疏导
    home_contact = "home_contact"                   # 家校联系

    @property
    def label(self) -> str:
        return RISK_DUTY_LABELS[self]


RISK_DUTY_LABELS = {RiskDuty.tutoring: "学业辅导", RiskDuty.subsidy_check: "资助政策落实核查",
               RiskDuty.psychological_support: "心理疏导", RiskDuty.home_contact: "家校联系"}


def label_of(word: str) -> str:
    """Any identifier of the vocabulary → its Chinese label (the identifier itself if unknown):
    for free-form lists (a duty's action, a history's event, a watch rule's flag)."""
    for table in (EVENT_LABELS, {s.value: l for s, l in STATE_LABELS.items()}, SPECIAL_GROUP_LABELS,
                  {d.value: l for d, l in RISK_DUTY_LABELS.items()}, REASON_LABELS, DUTY_KIND_LABELS):
        if word in table:
            return table[word]
    return word



# --- onboard ---
class Bookkeeping(str, Enum):
    """History events that change neither the state nor the ladder, but a reader must still see."""

    duty_handover = "duty_handover"  # 班主任变更: her open duties go to the successor (store.duties.handover)


EVENT_LABELS[Bookkeeping.duty_handover.value] = "班主任变更，待办移交"
# --- accountability ---
# The seed ground of each kind of missed duty (责任追究情形), as data: key "kind:action", else "kind",
# else "*". Each is (seed reference, the seed's words). A new kind of duty falls back to the kind's
# or the general ground until a line is added here (seed 001 模版(3篇) 三.1–10, seed 003 二.(1)–(7)).
ACCOUNTABILITY_GROUNDS: dict[str, tuple[str, str]] = {
    "case:record_phone_call": ("003 二(1)", "发现学生缺勤未及时联系家长、报告教务处（对学生辍学不采取必要措施）"),
    "case:record_home_visit": ("003 二(3)", "对学生不到校没有及时家访做动员说服工作，贻误劝返时机"),
    "case:record_collective_visit": ("003 二(3)", "未按期组织集体家访，贻误劝返时机"),
    "case:assign_helpers": ("001 三.4", "未按期落实三帮一帮扶责任人（劝返辍学学生工作不到位）"),
    "case:serve_township_notice": ("003 四", "未按期送达辍学学生返校通知书"),
    "case:serve_legal_notice": ("001 三.2", "未按期送达督促送子女入学通知书（实施办法落实不到位）"),
    "case": ("003 二(1)", "对学生辍学不采取必要措施"),
    "census": ("003 二(2)", "对管辖范围内适龄儿童少年底数不清，未按期入户核查、督促入学"),
    "prevention:check_whereabouts": ("003 二(1)", "住校生出入校门异常未及时查明去向（对学生辍学不采取必要措施）"),
    "prevention": ("003 二(1)", "学生旷课未按期处置（对学生辍学不采取必要措施）"),
    "watch": ("001 三.4", "对学困生帮扶缺乏具体措施，关爱特殊家庭学生、留守儿童工作不力"),
    "calendar": ("001 三.3", "控辍保学管理不规范（校历未按期维护）"),
    "talk": ("001 四.1", "约谈后未按期整改落实（诫勉谈话事项）"),
    "pledge": ("003 一", "未按期签订控辍保学目标责任书（逐级签订责任书）"),
    "report_due": ("001 三.3", "执行定期自查、汇报制度不及时"),
    "*": ("001 三.10", "其他应当追究责任的控辍保学行为"),
}
RECONCILIATION_GROUND = ("001 三.9", "上报控辍报表、材料弄虚作假")  # reconcile.evidence's rows


def accountability_ground(kind: str, action: str | None = None) -> tuple[str, str]:
    """(seed reference, ground) of a missed duty of ``kind`` and ``action``: the most specific line."""
    g = ACCOUNTABILITY_GROUNDS
    return g.get(f"{kind}:{action}") or g.get(kind) or g["*"]


INTERVIEW_LEVEL_LABELS = {"township": "乡镇约谈", "county": "县教育局约谈"}
INTERVIEW_STATUS_LABELS = {"open": "整改中", "rectified": "已整改", "not_rectified": "未整改到位"}
PLEDGE_STATUS_LABELS = {"issued": "待签订", "signed": "已签订"}
VETO_REASON_LABELS = {"over_standard": "辍学率超过标准", "hidden_dropouts": "隐瞒辍学人数（上报少于台账）"}
# --- reports ---
# issue 17 items 1–3: what people submit (store.reporting.people)
WEEKLY_COUNT = "weekly_count"  # the report kind of the 周查表 (seed 002; seed 003 §三.3 每周一统计)
REPORT_DUTY_ACTIONS = {"submit_report": "提交并签署报告", "submit_weekly_count": "提交班级周查",
                       "reconcile_spot_check": "说明季查差异（对账）"}
REPORT_DUTY_KIND_LABELS = {**REPORT_KIND_LABELS, WEEKLY_COUNT: "周查表", "spot_check": "季查对账"}
REPORT_VERSION_STATUS_LABELS = {"draft": "草稿", "submitted": "已报送"}
WEEKLY_COUNT_FIELDS = {"enrolled": "在册", "present": "在校", "absent": "缺勤", "dropouts": "辍学",
                       "collective_visits": "集体家访"}  # seed 002: 集体家访计入周查表
SPOT_RESULT_STATUS_LABELS = {"consistent": "一致", "open": "待对账", "resolved": "已说明"}
# --- uploads ---
# The word a morning-check template cell gets for a status recorded that day; each reads back as that
# status (store.ingest.attendance_files.status_of), so the day's template sent back unchanged changes nothing.
TEMPLATE_STATUS_WORDS = {"present": "到校", "unexcused": "无故缺勤", "sick_leave": "病假", "personal_leave": "事假",
                         "exemption": "免学", "transfer": "转学"}
# --- queues ---
# How a list names the record a row belongs to ("案件 #53", "关注 #53"): a duty of each kind points at a
# different table, so a bare "#53" is ambiguous (issue 18).
QUEUE_REF_LABELS = {DutyKind.case.value: "案件", DutyKind.census.value: "失学", DutyKind.prevention.value: "学生",
                    DutyKind.watch.value: "关注", DutyKind.calendar.value: "校历"}
# what a watch entry's history records (store.prevention.risk: added, rules_changed, left, duty_done)
WATCH_EVENT_LABELS = {"added": "列入重点关注", "rules_changed": "列入依据变化", "left": "移出重点关注", "duty_done": "帮扶任务办结"}
# --- leave ---
# 请假、免学/缓学、转学 awaiting approval (store.cases.leave; seed 002 2、3、5), per-lesson counts and
# 放学未回家 (seed 000 §二.2、§二.4).
DUTY_KIND_LABELS[DutyKind.approval.value] = "请假/转学审批"
PREVENTION_SOURCE_LABELS["after_school"] = "放学未回家"
REQUEST_KIND_LABELS = {"sick_leave": "病假", "personal_leave": "事假", "exemption": "免学/缓学", "transfer": "转学"}
REQUEST_ACTION_LABELS = {"approve_leave": "审批请假", "decide_exemption": "审批免学/缓学申请",
                         "confirm_transfer": "确认转入"}
DECISION_LABELS = {"pending": "待审批", "approved": "已批准", "refused": "不予批准"}
TRANSFER_DECISION_LABELS = {"pending": "待确认转入", "approved": "已确认转入", "refused": "接收学校未接收"}
REQUEST_SOURCE_LABELS = {"mark": "晨检登记", "web": "网页填报", "api": "接口", "cli": "命令行"}
AFTER_SCHOOL_LABELS = {"find_pupil": "放学未回家：学校当日查找学生去向"}


def decision_label(kind: str, decision: str) -> str:
    return (TRANSFER_DECISION_LABELS if kind == "transfer" else DECISION_LABELS).get(decision, decision)
