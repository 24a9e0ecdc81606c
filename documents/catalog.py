"""The document catalog: one entry per kind of document the ladder produces (DOMAIN.md §7).

Kind ids are the ones policies list (``policy.steps[].documents``, ``policy.actions[…].documents``,
``policy.outside[].documents``) plus the closing and reporting documents. Each entry says what
the document is called, which template draws it, which step and role produce it under the
default policy, who issues it, how it is numbered and in which formats it exists.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from machines.policy import Policy
from machines.states import Action, CaseState

Layout = Literal["gov", "plan", "form", "report"]
Issuer = Literal["school", "township", "county"]
Subject = Literal["case", "report", "census", "truancy", "leave"]  # census: a 失学 child of the 排查 (no pupil row); truancy: a tier (documents/truancy_warning.py)

MEDIA_TYPES = {
    "pdf": "application/pdf",
    "html": "text/html; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@dataclass(frozen=True)
class Numbering:
    """发文字号 scheme: ``{prefix}{series}〔{year}〕{n}号``, one gap-free counter per issuer and year.

    ``prefix`` is the issuer's short name (城关镇, 城关小学); every numbered kind of one issuer
    shares that issuer's counter, so its series must be the same for all of them.
    """

    series: str  # 政发 (township), 校发 (school)

    def format(self, prefix: str, year: int, n: int) -> str:
        return f"{prefix}{self.series}〔{year}〕{n}号"


TOWNSHIP_SERIES = Numbering("政发")
SCHOOL_SERIES = Numbering("校发")


@dataclass(frozen=True)
class Kind:
    id: str
    name: str                       # the title printed on the document
    short: str                      # a short label for lists
    layout: Layout                  # gov = GB/T 9704 公文 (red banner); form/report = tables
    subject: Subject                # case documents (one pupil) or reports (a school, township, county)
    issuer: Issuer                  # who issues (and, if numbered, whose counter)
    role: str                       # policy role that produces it under the default policy
    steps: tuple[CaseState, ...] = ()   # ladder steps that produce it (default policy)
    actions: tuple[Action, ...] = ()    # staff actions that produce it
    numbering: Numbering | None = None
    formats: tuple[str, ...] = ("pdf", "html")
    landscape: bool = False
    deadline_days: int | None = None    # notices: days the guardians are given to comply
    internal: bool = False              # 内部资料 (seed 002: the written notice is private)

    @property
    def template(self) -> str:
        return f"kinds/{self.id}.html.j2"

    @property
    def numbered(self) -> bool:
        return self.numbering is not None


_KINDS = [
    Kind("absence_register", "学生缺勤（辍学）登记表", "缺勤登记", "form", "case", "school", "academic_office",
         steps=(CaseState.family_contacted,), formats=("pdf", "html", "xlsx")),
    Kind("phone_record", "学生缺勤电话联系记录", "电话联系记录", "form", "case", "school", "head_teacher",
         actions=(Action.record_phone_call,)),
    Kind("home_visit_record", "学生家访记录", "家访记录", "form", "case", "school", "academic_office",
         actions=(Action.record_home_visit,)),
    Kind("collective_visit_record", "集体家访记录", "集体家访记录", "form", "case", "school", "principal",
         actions=(Action.record_collective_visit,)),
    Kind("control_plan", "控辍保学工作方案（一人一案）", "控辍方案", "plan", "case", "school", "leadership_group",
         actions=(Action.assign_helpers,)),  # issued with the 三帮一 helpers (jingbian: on entering 集体家访)
    Kind("report_to_township", "关于学生无故缺勤疑似辍学情况的报告", "书面报告（镇、村）", "gov", "case", "school",
         "principal", steps=(CaseState.collective_visit,), numbering=SCHOOL_SERIES),
    Kind("dropout_report_form", "义务教育阶段学生辍学报告单", "辍学报告单", "form", "case", "school", "principal",
         steps=(CaseState.township_notice,)),
    Kind("return_notice", "辍学学生返校通知书", "返校通知书", "gov", "case", "township", "township",
         steps=(CaseState.township_notice,), numbering=TOWNSHIP_SERIES, deadline_days=5),
    Kind("legal_notice", "督促送子女入学通知书", "法律文书（责令改正）", "gov", "case", "township", "judicial_office",
         steps=(CaseState.judicial_notice,), numbering=TOWNSHIP_SERIES, deadline_days=3),
    Kind("report_to_bureau", "关于学生辍学情况及劝返工作的报告", "书面报告（教育局）", "gov", "case", "school",
         "principal", steps=(CaseState.judicial_notice,), numbering=SCHOOL_SERIES),
    Kind("parent_notice", "学生辍学书面通报", "辍学书面通报", "form", "case", "school", "head_teacher",
         actions=(Action.record_class_record,), internal=True),  # issued once the school filled it in
    Kind("proof_of_service", "送达回证", "送达回证", "form", "case", "township", "township",
         actions=(Action.serve_township_notice, Action.serve_legal_notice, Action.serve_parent_notice,
                  Action.report_parent_notice)),
    Kind("return_register", "辍学学生复学登记及台账销号表", "复学登记·销号", "form", "case", "school",
         "academic_office", steps=(CaseState.returned,), formats=("pdf", "html", "xlsx")),
    Kind("monthly_report", "控辍保学工作月报表", "月报", "report", "report", "school", "academic_office",
         formats=("pdf", "html", "xlsx"), landscape=True),
    Kind("spot_check_sheet", "控辍保学季度随机抽查记录表", "季查表", "report", "report", "county", "education_bureau",
         formats=("pdf", "html", "xlsx"), landscape=True),
    Kind("accountability_sheet", "控辍保学工作责任追究事实材料", "责任追究", "report", "report", "county",
         "education_bureau", formats=("pdf", "html", "xlsx"), landscape=True),
    Kind("enrolment_notice", "适龄儿童少年入学通知书", "入学通知书", "gov", "census", "township", "township",
         numbering=TOWNSHIP_SERIES, deadline_days=10),  # 排查 found a child enrolled nowhere (store.prevention.census)
    Kind("education_center_list", "经两次劝返仍未复学学生名单（报教育中心）", "名单报教育中心", "form", "case", "school",
         "principal"),  # seed 000 §二.5: 填报学生名单报教育中心启动劝返复学程序 (wutaishan's township_notice step)
    # followup: refusal after the legal notice → 公诉/起诉/行政处罚 (seed 000 §三.2, seed 002 二.6, seed 003 二.(6))
    Kind("judicial_referral", "关于提请依法处理拒不送适龄子女入学的监护人的函", "提请依法处理函", "gov", "case", "township",
         "judicial_office", numbering=TOWNSHIP_SERIES),
    # followup: 辍学学生台账 报教育中心/教育局, 复学后销号 (seed 000 §三.3)
    Kind("referral_ledger", "控辍保学辍学学生台账（移交跟踪及销号）", "辍学台账", "report", "report", "county",
         "education_bureau", formats=("pdf", "html", "xlsx"), landscape=True),
    Kind("responsibility_pledge", "班主任控辍保学责任书", "责任书", "form", "report", "school", "head_teacher",
         formats=("pdf", "html")),  # seed 003: one per person and school year, with the 包保 chain's pupils (documents/pledges.py)
    Kind("truancy_written_warning", "学生旷课书面警告", "旷课书面警告", "form", "truancy", "school", "head_teacher",
         internal=True),  # seed 001 第六条: 第二次旷课，班主任书面警告 (documents/truancy_warning.py)
    Kind("exemption_decision", "适龄儿童少年免学（缓学）申请审批决定书", "免学/缓学审批决定", "form", "leave", "county",
         "education_bureau", internal=True),  # seed 002 3: 经县级以上教育主管部门批准 (documents/exemption_decision.py)
]

CATALOG: dict[str, Kind] = {k.id: k for k in _KINDS}
CASE_KINDS = tuple(k.id for k in _KINDS if k.subject == "case")
REPORT_KINDS = tuple(k.id for k in _KINDS if k.subject == "report")

# Which served notice a proof of service belongs to.
SERVED_BY_ACTION = {Action.serve_township_notice.value: "return_notice", Action.serve_legal_notice.value: "legal_notice",
                    Action.serve_parent_notice.value: "parent_notice", Action.report_parent_notice.value: "parent_notice"}
# Receipts the school (not the township) keeps: the parent's signature, the bureau's receipt of its copy.
SCHOOL_RECEIPTS = frozenset({Action.serve_parent_notice.value, Action.report_parent_notice.value})


class UnknownKind(KeyError):
    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind

    def __str__(self) -> str:
        return f"unknown document kind '{self.kind}' (文书种类不存在); known: {', '.join(CATALOG)}"


def get(kind: str) -> Kind:
    try:
        return CATALOG[kind]
    except KeyError:
        raise UnknownKind(kind) from None


@dataclass(frozen=True)
class Producer:
    """Where a policy produces a kind: on entering a step, on an action, or on leaving the ladder."""

    trigger: str         # "step" | "action" | "outside" | "final"
    what: str            # state, action or outside reason id
    label: str           # Chinese label of the step / action
    roles: tuple[str, ...]


def producers(policy: Policy, kind: str) -> list[Producer]:
    """Every place ``policy`` asks for ``kind`` (empty: the policy never asks for it)."""
    get(kind)
    out: list[Producer] = []
    for s in policy.steps:
        if kind in s.documents:
            out.append(Producer("step", s.state.value, s.label, tuple(s.roles)))
    for action, spec in policy.actions.items():
        if kind in spec.documents:
            duty_roles = tuple(d.role for s in policy.steps for d in s.duties if d.action == action)
            roles = (spec.role,) if spec.role else duty_roles
            out.append(Producer("action", action.value, action.label, roles))
    for rule in policy.outside:
        if kind in rule.documents or kind in policy.referral_spec(rule.reason).documents:
            out.append(Producer("outside", rule.reason.value, rule.reason.value, tuple(rule.notify)))
    if kind == "return_register":
        out.append(Producer("final", CaseState.returned.value, CaseState.returned.label, ("academic_office",)))
    return out


def policy_kinds(policy: Policy) -> set[str]:
    """Every kind a policy's ladder, actions and outside rules mention."""
    kinds = {k for s in policy.steps for k in s.documents}
    kinds |= {k for spec in policy.actions.values() for k in spec.documents}
    kinds |= {k for r in policy.outside for k in r.documents}
    kinds |= {k for spec in policy.referral.values() for k in spec.documents}
    return kinds
