"""The page shell: the navigation of each role, the template filters, and ``render``/``page`` that
every page module (web/pages*.py) and the login use. It imports no page module, so the page modules
and the login sit beside each other without an import circle."""
from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from machines.next_steps import moment_label
from machines.states import LADDER, REASON_LABELS
from machines.vocabulary import ATTENDANCE_LABELS, LEVEL_LABELS, event_label, special_group_label, state_label
from store.access.accounts import ROLE_LABELS, Role
from web.deps import SHANGHAI, Principal, roles
from web.downloads import file_label

WEEKDAYS = "一二三四五六日"
_RISK, _RECONCILE = ("/risk", "重点关注"), ("/reconcile", "数据核对")
_GATE, _TRUANCY = ("/gate", "门卫登记"), ("/truancy", "旷课分级")
_CENSUS, _HANDOFFS = ("/census", "失学排查"), ("/handoffs", "送达回证")
_DIRECTORY = ("/directory", "名册")
_LEDGER = ("/ledger-book", "辍学台账")  # issue 16: referred cases until 销号
_LEAVE = ("/leave", "请假·转学")  # issue 17: leave, 免学/缓学, transfers, lesson counts (web/pages_leave.py)
NAV = {
    Role.head_teacher: [("/teacher", "今日工作"), ("/morning-check", "晨检"), ("/cases", "我的案件"),
                        _RISK, _GATE, _TRUANCY, _LEAVE, _DIRECTORY],
    Role.school_staff: [("/school", "本校概况"), ("/morning-check", "晨检上报"), ("/cases", "案件"), ("/stuck", "逾期督办"),
                        ("/figures", "月度数据"), ("/accountability", "责任追究"),
                        _RISK, _RECONCILE, _GATE, _TRUANCY, _CENSUS, _HANDOFFS, _LEAVE, _LEDGER, _DIRECTORY],
    Role.township: [("/stuck", "逾期督办"), ("/overview", "各校概况"), ("/figures", "月度数据"), ("/late", "迟报漏报"),
                    ("/spot-checks", "抽查"), ("/accountability", "责任追究"), ("/cases", "案件"),
                    _RISK, _RECONCILE, _TRUANCY, _CENSUS, _HANDOFFS, _LEAVE, _LEDGER, _DIRECTORY],
    Role.county: [("/overview", "全县概况"), ("/stuck", "逾期督办"), ("/figures", "月度数据"), ("/late", "迟报漏报"),
                  ("/spot-checks", "抽查"), ("/accountability", "责任追究"), ("/cases", "案件"), ("/runs", "流程运行"),
                  _RISK, _RECONCILE, _TRUANCY, _CENSUS, _HANDOFFS, _LEAVE, _LEDGER, _DIRECTORY, ("/admin/onboarding", "导入名册"),
                  ("/admin/calendar", "校历")],
    Role.operator: [("/runs", "流程运行"), ("/late", "迟报漏报"), ("/admin/calendar", "校历")],
}
# --- accountability --- 约谈 and 责任书 (web/pages_accountability.py; /veto and /ranking are linked from /accountability)
NAV[Role.school_staff] += [("/pledges", "责任书")]
NAV[Role.township] += [("/interviews", "约谈")]
NAV[Role.county] += [("/interviews", "约谈"), ("/pledges", "责任书")]
# --- reports --- (issue 17 items 1–3: 报表报送, 周查表, 季查结果; web/pages_reports.py)
NAV[Role.head_teacher].append(("/weekly", "周查表"))
for _role in (Role.school_staff, Role.township, Role.county):
    NAV[_role] += [("/submissions", "报表报送"), ("/weekly", "周查表"), ("/spot-results", "季查结果")]

STATUS_CHOICES = [(k, ATTENDANCE_LABELS[k]) for k in ("present", "unexcused", "sick_leave", "personal_leave")]


# -- template helpers ----------------------------------------------------------------------------------
def _dt(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(SHANGHAI).replace(tzinfo=None)
        return value.strftime("%m-%d %H:%M")
    return value.strftime("%Y-%m-%d")


def _day(value: date) -> str:
    return f"{value.year}年{value.month}月{value.day}日 星期{WEEKDAYS[value.weekday()]}"


def _hours(h: float) -> str:
    return f"{h / 24:.1f} 天" if h >= 24 else f"{h:.0f} 小时" if h >= 1 else f"{max(h * 60, 0):.0f} 分钟"


def _pct(x: float) -> str:
    return f"{x * 100:.2f}%"


def _doc_title(kind: str) -> str:
    from documents.catalog import CATALOG

    return CATALOG[kind].name if kind in CATALOG else kind


@lru_cache(maxsize=1)
def _role_names() -> dict[str, str]:
    """Role id → Chinese label, from the policies (the first policy naming a role wins)."""
    from store.policy_files import policy_files, read_policy_file

    names: dict[str, str] = {}
    for path in policy_files():
        for role, label in read_policy_file(path)[0].roles.items():
            names.setdefault(role, label)
    return names


FILTERS = {
    "doc_title": _doc_title, "role_label": lambda r: _role_names().get(r, r), "dt": _dt, "day": _day, "hours": _hours,
    "moment": lambda at: moment_label(at, None),  # 11月18日（周三） 09:00 (machines.next_steps)
    "pct": _pct, "state_label": state_label, "reason_label": lambda r: REASON_LABELS.get(r, r),
    "event_label": event_label, "group_label": special_group_label,  # ``g|group_label(policy.special_groups)``
    "level_label": lambda lv: LEVEL_LABELS.get(lv, lv),
    "file_label": file_label,  # a filed report's file as a link text (issue 18)
}
GLOBALS = {"ROLE_LABELS": ROLE_LABELS, "STATUS_CHOICES": STATUS_CHOICES, "LADDER": LADDER}


def render(request: Request, name: str, who: Principal | None, status: int = 200, **context: Any) -> HTMLResponse:
    now = request.app.state.clock()
    base = {"who": who, "nav": NAV[who.role] if who else [], "now": now, "path": request.url.path,
            "place": who.place if who else ""}
    return request.app.state.templates.TemplateResponse(request, name, base | context, status_code=status)


def error_page(request: Request, status: int, message: str, errors=None) -> HTMLResponse:
    return render(request, "error.html", None, status=status, code=status, message=message, errors=errors or [])


def page(*allowed: Role):
    return roles(*allowed, api=False)
