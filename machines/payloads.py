"""What staff enter with each action: one pydantic model per action (pure: no clock, no I/O).

The API, the case page's form and the documents read an action's ``payload`` through these
models: :func:`parse_payload` is called by ``store.cases.actions.apply_event`` before anything is written,
so every way in (API JSON, page form, CLI, demo) is checked the same way, and
``documents.records`` can rely on the shape. Rules:

- unknown fields are refused (``extra="forbid"``), with the field named in Chinese;
- every string is capped (a 20 MB ``result`` is refused, not stored);
- a photo is a reference to an attachment the server issued (``attachment_id``) with a caption,
  never a path, URL or data the user names; ``store.cases.attachments`` checks the id belongs to the case.

Events the system writes (``open``, ``escalate``) have no model: their payload is the system's.
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError

from machines.states import DropoutReason

SHORT, TEXT, MAX_PHOTOS, MAX_NAMES = 100, 2000, 12, 20


def _split_names(value: Any) -> Any:
    """「王老师、李老师」 or "王,李" → a list (the form and some API callers send one string)."""
    if isinstance(value, str):
        return [v.strip() for v in value.replace("，", ",").replace("、", ",").split(",") if v.strip()]
    return value


Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=SHORT)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=TEXT)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)]
Moment = Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)]  # "2026-11-16 15:00", as entered
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
Names = Annotated[list[Name], BeforeValidator(_split_names), Field(max_length=MAX_NAMES)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PhotoRef(_Strict):
    """A photo: an attachment the server issued for this case, and what it shows."""

    attachment_id: int = Field(ge=1, le=2**31 - 1)
    caption: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60)]


class Person(_Strict):
    name: Name
    unit: Short | None = None


class HelperIn(_Strict):
    name: Name
    role: Short = ""
    staff_id: int | None = Field(None, ge=1, le=2**31 - 1)


class _Payload(_Strict):
    notes: Text | None = None


class PhoneCall(_Payload):
    called_at: Moment | None = None
    caller: Short | None = None
    contact: Short | None = None
    phone: Phone | None = None
    reached: bool | None = None
    legit_reason: bool | None = None
    signs: bool | None = None
    result: Text | None = None
    follow_up: Text | None = None


class _Visit(_Payload):
    visited_at: Moment | None = None
    place: Short | None = None
    situation: Text | None = None
    measures: Text | None = None
    result: Text | None = None
    family_opinion: Text | None = None
    conduct: Text | None = None
    study: Text | None = None
    photos: list[PhotoRef] = Field(default_factory=list, max_length=MAX_PHOTOS)


class HomeVisit(_Visit):
    visitors: Names | None = None
    met: Short | None = None
    reason: Short | None = None


class CollectiveVisit(_Visit):
    participants: Annotated[list[Name | Person], BeforeValidator(_split_names), Field(max_length=MAX_NAMES)] | None = None
    village_member: Short | None = None


class Service(_Payload):
    recipient: Short | None = None
    place: Short | None = None
    method: Short | None = None
    servers: Names | None = None
    witness: Short | None = None
    served_at: Moment | None = None
    refused: bool | None = None


class ClassRecord(_Payload):
    """辍学书面通报 (seed 002): the pupil's 行为表现 and 学习情况 from the class record, both required."""

    conduct: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=TEXT)]
    study: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=TEXT)]


class ParentService(Service):
    """书面通报 given to the parent: signed, or refused (``refused``), with the parent's opinion."""

    opinion: Text | None = None


class BureauReport(_Payload):
    """书面通报 reported to the education bureau: who received it, when, how."""

    received_by: Short | None = None
    received_at: Moment | None = None
    method: Short | None = None


class Helpers(_Payload):
    helpers: list[HelperIn] = Field(min_length=1, max_length=10)


class ReasonRecord(_Payload):
    """record_reason: the reason class found (seed 002's list, ``machines.states.DropoutReason``)."""

    reason: DropoutReason
    basis: Text | None = None  # 依据: what the visit or call found


class Returned(_Payload):
    measures: Text | None = None
    follow_up: Text | None = None


class FollowUp(_Payload):
    """A follow-up of a referred case (回访, 查找下落, 劝返监护人/用工单位, 司法程序进展)."""

    contacted_at: Moment | None = None
    contact: Short | None = None      # whom: the guardian, the 派出所, the employer (用工单位), the court
    unit: Short | None = None         # 用工单位 / 派出所 / 司法所 name
    situation: Text | None = None     # the pupil's situation now (辍学后状况)
    measures: Text | None = None
    result: Text | None = None


class Closing(_Payload):
    """excuse / escalate_outside: the reason is a fact of the event, not a payload field."""


PAYLOAD_MODELS: dict[str, type[_Payload]] = {
    "record_phone_call": PhoneCall,
    "record_home_visit": HomeVisit,
    "record_collective_visit": CollectiveVisit,
    "serve_township_notice": Service,
    "serve_legal_notice": Service,
    "assign_helpers": Helpers,
    "record_reason": ReasonRecord,
    "record_class_record": ClassRecord,
    "serve_parent_notice": ParentService,
    "report_parent_notice": BureauReport,
    "mark_returned": Returned,
    **{a: FollowUp for a in ("record_follow_up", "record_police_search", "record_guardian_persuasion",
                             "record_employer_persuasion", "record_judicial_progress")},
    "excuse": Closing,
    "escalate_outside": Closing,
}

FIELD_LABELS = {
    "notes": "说明", "called_at": "通话时间", "caller": "联系人（教师）", "contact": "联系的家长/监护人", "phone": "电话号码",
    "reached": "是否联系上", "legit_reason": "是否有正当理由", "signs": "是否有辍学苗头", "result": "结果",
    "follow_up": "跟踪安排", "visited_at": "家访时间", "place": "地点", "situation": "情况", "measures": "措施",
    "family_opinion": "家长意见", "conduct": "在校表现", "study": "学习情况", "photos": "照片", "attachment_id": "附件编号",
    "caption": "照片说明", "visitors": "家访人员", "met": "见到的家人", "reason": "原因", "participants": "参加人员",
    "village_member": "村委会成员", "recipient": "受送达人", "method": "送达方式", "servers": "送达人", "witness": "见证人",
    "served_at": "送达时间", "refused": "是否拒收", "helpers": "帮扶责任人", "name": "姓名", "role": "职务",
    "staff_id": "教职工编号", "unit": "单位", "basis": "依据", "contacted_at": "时间",
    "opinion": "家长意见", "received_by": "接收人", "received_at": "接收时间",
}


class PayloadInvalid(ValueError):
    """An action's details that do not fit its model; ``errors`` names each bad field in Chinese."""

    def __init__(self, errors: list[dict[str, str]]):
        self.errors = errors
        super().__init__("办理详情有误：" + "；".join(e["message"] for e in errors) + " (invalid action details)")


def _label(loc: tuple) -> str:
    parts = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"第{p + 1}项")
        elif p in FIELD_LABELS:
            parts.append(f"{FIELD_LABELS[p]}（{p}）")
        elif not str(p).startswith(("str", "int", "bool", "list", "function", "Person", "HelperIn", "PhotoRef")):
            parts.append(str(p)[:40])  # a field name the sender made up: echoed, but short
    return "·".join(parts) or "办理详情"


def _message(e: dict) -> str:
    kind, ctx = e.get("type", ""), e.get("ctx") or {}
    if kind == "extra_forbidden":
        return "不认识的字段，不能提交 (unknown field)"
    if kind == "missing":
        return "必填 (required)"
    if kind in ("string_too_long", "too_long"):
        return f"过长，最多 {ctx.get('max_length')} {'字' if kind == 'string_too_long' else '项'} (too long)"
    if kind in ("string_too_short", "too_short"):
        return "不能为空 (required)"
    if kind.startswith("string"):
        return "应为文字 (text expected)"
    if kind == "enum":
        return "应为以下之一：" + str(ctx.get("expected", ""))[:200]
    if kind.startswith("bool"):
        return "应为 是/否 (true or false expected)"
    if kind.startswith("int") or kind.startswith("greater") or kind.startswith("less"):
        return "应为有效的编号 (a valid id expected)"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "格式不对，应为对象 (object expected)"
    if kind == "list_type":
        return "应为列表 (list expected)"
    return "无效 (invalid)"


def parse_payload(event: str, raw: Any) -> dict[str, Any]:
    """The checked payload of a staff action (``event`` without a model: returned as given).

    Fields left out stay out (the documents print a blank line for them)."""
    model = PAYLOAD_MODELS.get(event)
    if model is None:
        return dict(raw or {})
    if raw is not None and not isinstance(raw, dict):
        raise PayloadInvalid([{"field": "payload", "message": "办理详情应为 JSON 对象 (payload must be an object)"}])
    try:
        parsed = model.model_validate(raw or {})
    except ValidationError as exc:
        errors = []
        for e in exc.errors():
            loc = tuple(e.get("loc", ()))
            errors.append({"field": ".".join(str(p) for p in loc), "message": f"{_label(loc)}：{_message(e)}"})
        raise PayloadInvalid(errors) from None
    return parsed.model_dump(mode="json", exclude_none=True, exclude_defaults=True)


def photo_ids(payload: dict[str, Any] | None) -> list[int]:
    """The attachment ids a (checked) payload's photos name."""
    return [int(p["attachment_id"]) for p in (payload or {}).get("photos", []) or []]
