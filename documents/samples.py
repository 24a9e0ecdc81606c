"""Generated, deterministic document data without a database: for tests, the benchmark, previews.

``sample_facts(policy, seed)`` builds the facts of one case that went up ``policy``'s whole
ladder (every action recorded, with payloads), in the shape ``documents.facts.case_facts``
returns; ``sample_report(kind, seed)`` the data of a monthly report, a spot-check sheet or an
accountability sheet. Names are made up (never real people).
"""
from __future__ import annotations

import base64
import io
import random
from datetime import date, datetime, timedelta
from typing import Any

from machines.identity import id_check_digit
from machines.policy import Policy
from machines.states import REASON_LABELS, STATE_LABELS, Action, CaseState
from machines.vocabulary import EVENT_LABELS, is_dropout

from documents.reports import SPECIAL, STEP_COLUMNS, WORK  # the 月报表's columns (machines.vocabulary)
from documents.facts import GRADE_LABELS, PEOPLE_ROLES, event_label, policy_meta, short_school, short_township

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
GIVEN = ["子涵", "欣怡", "浩宇", "雨桐", "梓萱", "思远", "俊杰", "佳怡", "明轩", "梦瑶", "天佑", "博文", "雅琪", "家豪",
         "志强", "秀英", "建国", "丽娟", "海燕", "春梅", "晓东", "鹏飞", "振宇", "婷婷", "昊天", "喆", "淼", "堃"]
TOWNSHIPS = ["城关镇", "柳河镇", "石桥乡", "杏林镇"]
VILLAGES = ["石门村", "柳树村", "河湾村", "杏花村", "东岭村"]


def _name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + rng.choice(GIVEN)


def _phone(rng: random.Random) -> str:
    return f"1{rng.choice('3578')}{rng.randrange(10**9):09d}"


def sample_photo(seed: int, caption: str) -> dict:
    """A small generated JPEG (a hillside and a house), as a data: URI."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    img = Image.new("RGB", (480, 360), (150 + rng.randrange(60), 190 + rng.randrange(40), 230))
    d = ImageDraw.Draw(img)
    d.polygon([(0, 250), (160, 150 + rng.randrange(40)), (330, 230), (480, 170), (480, 360), (0, 360)], fill=(96, 140, 80))
    x = 120 + rng.randrange(200)
    d.rectangle([x, 200, x + 120, 290], fill=(210, 200, 180), outline=(90, 70, 60), width=3)
    d.polygon([(x - 10, 200), (x + 60, 150), (x + 130, 200)], fill=(150, 60, 50))
    for i in range(3):  # people
        px = x - 60 + i * 45
        d.ellipse([px, 250, px + 16, 266], fill=(60, 50, 40))
        d.rectangle([px + 2, 266, px + 14, 305], fill=(40 + 60 * i, 60, 120))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=70)
    return {"src": "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode(), "caption": caption}


def sample_facts(policy: Policy, *, seed: int = 1, returned: bool = False, photos: bool = True,
                 opened_on: date = date(2026, 11, 16)) -> dict[str, Any]:
    """One case that climbed ``policy``'s ladder to its last step (or came back, ``returned``)."""
    rng = random.Random(seed)
    township = rng.choice(TOWNSHIPS)
    village = rng.choice(VILLAGES)
    grade = rng.randint(3, 8)
    school_name = f"{township}{village[:-1]}{'中学' if grade >= 7 else '小学'}"
    county_code = f"C{seed}"
    t_code, s_code = f"{county_code}T1", f"{county_code}T1S1"
    pupil_name = _name(rng)
    surname = pupil_name[0]
    birth = date(2026 - 6 - grade, rng.randint(1, 12), rng.randint(1, 28))
    first17 = f"610824{birth:%Y%m%d}{rng.randrange(1000):03d}"
    people = {role: {"name": _name(rng), "phone": _phone(rng)} for role in PEOPLE_ROLES}
    guardians = [
        {"name": surname + rng.choice(GIVEN)[:1] + rng.choice("军强平华林"), "relation": "父亲", "phone": _phone(rng)},
        {"name": _name(rng), "relation": "母亲", "phone": _phone(rng)},
    ]
    reason = rng.choice(["family", "study", "poverty", "working_away", "psychological"])

    events: list[dict[str, Any]] = []
    at = datetime.combine(opened_on, datetime.min.time()).replace(hour=9, minute=5)

    def add(event: str, to_state: str, from_state: str | None, when: datetime, *, reason_text: str = "", actor: str = "system", **payload):
        events.append({"seq": len(events) + 1, "event": event, "label": event_label(event, to_state),
                       "from_state": from_state, "to_state": to_state, "at": when.strftime("%Y-%m-%d %H:%M"),
                       "actor": actor, "reason": reason_text, "payload": payload})

    add("open", "absent", None, at, reason_text="晨检发现未请假不到校", actor="school:" + s_code, policy=policy.key,
        opened_on=opened_on.isoformat())
    state = CaseState.absent
    day_at = lambda n, h, m=0: (datetime.combine(opened_on + timedelta(days=n - 1), datetime.min.time())
                                .replace(hour=h, minute=m))
    g = guardians[0]
    for step in policy.steps:
        add("escalate", step.state.value, state.value, day_at(step.day, 9), reason_text=f"连续{step.day}个上学日无故缺勤：{step.label}",
            policy=policy.key, day=step.day)
        state = step.state
        for duty in step.duties:
            a = duty.action
            if a is Action.record_phone_call:
                add(a.value, state.value, state.value, day_at(step.day, 10, 20), actor="staff:head_teacher",
                    called_at=day_at(step.day, 10, 15).strftime("%Y-%m-%d %H:%M"), caller=people["head_teacher"]["name"],
                    contact=f"{g['name']}（{g['relation']}）", phone=g["phone"],
                    result=f"家长称孩子{REASON_LABELS[reason]}，不愿到校，家长劝说无效。", legit_reason=False, signs=True)
            elif a is Action.record_home_visit:
                add(a.value, state.value, state.value, day_at(step.day, 16, 30), actor="staff:academic_office",
                    visitors=[people["academic_office"]["name"], people["head_teacher"]["name"], people["mentor_teacher"]["name"]],
                    met=f"{g['name']}（{g['relation']}）", situation="父母常年在外务工，学生由祖父母照看，近期沉迷手机，学习跟不上。",
                    measures="向家长宣讲义务教育法，约定次日送孩子到校；班主任安排同学结对帮扶。",
                    result="家长表示配合，学生仍不愿返校。", family_opinion="同意送孩子返校，但孩子不听劝。",
                    conduct="在校遵守纪律，与同学相处一般，近一个月多次迟到。", study="语文、数学成绩下滑明显，作业完成不好。")
            elif a is Action.record_collective_visit:
                add(a.value, state.value, state.value, day_at(step.day, 15), actor="staff:principal",
                    participants=[people["principal"]["name"], people["area_leader"]["name"], people["head_teacher"]["name"]],
                    village_member=people["village_committee"]["name"], place=f"{township}{village}{rng.randint(1, 9)}组",
                    situation="家庭经济困难，父亲外出务工，母亲在家务农。学生对学习失去兴趣。",
                    measures="学校领导、村干部与家长面谈，落实三帮一帮扶责任人，申请生活补助。",
                    result="家长态度转变，学生仍未返校。", family_opinion="希望学校多关心孩子。",
                    photos=[sample_photo(seed * 10 + 1, "集体家访现场"), sample_photo(seed * 10 + 2, "与家长交流")] if photos else [])
            elif a is Action.assign_helpers:
                add(a.value, state.value, state.value, day_at(step.day + duty.due_school_days, 11), actor="staff:principal",
                    helpers=[{"name": people["principal"]["name"], "role": "校领导"},
                             {"name": people["head_teacher"]["name"], "role": "班主任"},
                             {"name": people["village_committee"]["name"], "role": "村干部"}])
            elif a in (Action.serve_township_notice, Action.serve_legal_notice):
                servers = [people["township"]["name"]] + ([people["judicial_office"]["name"]] if a is Action.serve_legal_notice else [])
                add(a.value, state.value, state.value, day_at(step.day + 1, 10), actor="staff:township",
                    recipient=f"{g['name']}（{pupil_name}之{g['relation']}）", place=f"{township}{village}",
                    method="直接送达", servers=servers, witness=people["village_committee"]["name"],
                    served_at=day_at(step.day + 1, 10).strftime("%Y-%m-%d %H:%M"))
    closed_on = None
    if returned:
        last = policy.steps[-1].day + 2
        add("mark_returned", "returned", state.value, day_at(last, 8, 10), reason_text="晨检到校，复学",
            measures="镇村干部、学校领导多次家访，落实三帮一，家长送孩子返校。", follow_up=None)
        state = CaseState.returned
        closed_on = (opened_on + timedelta(days=last - 1)).isoformat()

    helpers = next((e["payload"]["helpers"] for e in events if e["event"] == "assign_helpers"), [])
    return {
        "case": {
            "id": 1000 + seed, "ref": f"{s_code}-2026-{1000 + seed:05d}", "state": state.value,
            "state_label": STATE_LABELS[state], "opened_on": opened_on.isoformat(), "closed_on": closed_on,
            "reason": reason, "reason_label": REASON_LABELS[reason],
            "outcome_reason": None, "outcome_label": None, "relapse_of": None,
            "days_absent": max((s.day for s in policy.steps), default=1), "policy": policy_meta(policy),
        },
        "pupil": {
            "name": pupil_name, "gender": rng.choice("男女"), "student_no": f"G{first17[:6]}{rng.randrange(10**8):08d}",
            "id_number": first17 + id_check_digit(first17), "birth_date": birth.isoformat(),
            "age": 2026 - birth.year - ((11, 23) < (birth.month, birth.day)), "address": f"{township}{village}{rng.randint(1, 9)}组",
            "grade": grade, "grade_label": GRADE_LABELS[grade], "class_name": f"{GRADE_LABELS[grade]}({rng.randint(1, 3)})班",
            "special_groups": ["留守儿童"] if rng.random() < 0.5 else [],
        },
        "guardians": guardians,
        "school": {"name": school_name, "code": s_code, "enrolled": 400 + rng.randrange(600),
                   "short": short_school(school_name, township)},
        "township": {"name": township, "code": t_code, "short": short_township(township)},
        "village": {"name": village},
        "county": {"name": "宁安县", "code": county_code},
        "people": people,
        "helpers": helpers,
        "roles": dict(policy.roles),
        "events": events,
    }


# -- reports ------------------------------------------------------------------------------------


def _row(rng: random.Random, name: str, enrolled: int, standard: float) -> dict:
    open_by_step = {s["state"]: rng.choice([0, 0, 0, 1, 1, 2]) for s in STEP_COLUMNS}
    dropouts = sum(v for k, v in open_by_step.items() if is_dropout(k))
    rate = dropouts / enrolled if enrolled else 0.0
    return {"name": name, "enrolled": enrolled, "open_by_step": open_by_step, "open_total": sum(open_by_step.values()),
            "new_cases": rng.randrange(6), "returned": rng.randrange(5), "excused": rng.randrange(3), "escalated": rng.randrange(2),
            "dropouts": dropouts, "rate": round(rate, 6), "over_standard": rate > standard,
            "special": {g["key"]: rng.randrange(2) for g in SPECIAL}}


def sum_rows(rows: list[dict], standard: float) -> dict:
    t = {"name": "合计", "enrolled": sum(r["enrolled"] for r in rows),
         "open_by_step": {s["state"]: sum(r["open_by_step"][s["state"]] for r in rows) for s in STEP_COLUMNS},
         "new_cases": sum(r["new_cases"] for r in rows), "returned": sum(r["returned"] for r in rows),
         "excused": sum(r["excused"] for r in rows), "escalated": sum(r["escalated"] for r in rows),
         "dropouts": sum(r["dropouts"] for r in rows),
         "special": {g["key"]: sum(r["special"][g["key"]] for r in rows) for g in SPECIAL}}
    t["open_total"] = sum(t["open_by_step"].values())
    t["rate"] = round(t["dropouts"] / t["enrolled"], 6) if t["enrolled"] else 0.0
    t["over_standard"] = t["rate"] > standard
    return t


def sample_report(kind: str, *, seed: int = 1, period: str = "2026-11") -> dict[str, Any]:
    rng = random.Random(seed)
    year, month = (int(x) for x in period.split("-"))
    start = date(year, month, 1)
    end = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1))
    if kind == "monthly_report":
        standard = 0.006
        rows = [_row(rng, f"{t}中心学校", 600 + rng.randrange(900), standard) for t in TOWNSHIPS]
        totals = sum_rows(rows, standard)
        counts = {r: rng.randrange(1, 7) for r in ("family", "study", "poverty", "working_away", "psychological", "illness")}
        total = sum(counts.values())
        daily, open_now = [], rng.randrange(3, 8)
        d = start
        while d <= end:
            if d.weekday() < 5:
                new = rng.choice([0, 0, 1, 1, 2])
                back = rng.choice([0, 1, 1, 2]) if open_now else 0
                open_now = max(open_now + new - back, 0)
                daily.append({"day": d.isoformat(), "new": new, "returned": back, "open": open_now})
            d += timedelta(days=1)
        return {
            "level": "county", "level_label": "县", "unit": {"name": "宁安县", "code": "C1"}, "to": "市教育局",
            "row_label": "乡镇", "period": period, "month_label": f"{year}年{month}月",
            "period_start": start.isoformat(), "period_end": end.isoformat(), "due_on": end.isoformat(),
            "steps": STEP_COLUMNS, "special_labels": SPECIAL, "rows": rows, "totals": totals,
            "reasons": [{"reason": r, "label": REASON_LABELS[r], "count": n, "share": round(n / total, 4)}
                        for r, n in sorted(counts.items(), key=lambda kv: -kv[1])],
            "work": [{"key": k, "label": label, "count": rng.randrange(2, 30)} for k, label in WORK],
            "daily": daily, "standard_rate": standard,
            "over_standard": [r["name"] for r in rows if r["over_standard"]],
            "problems": "个别留守儿童家庭监护缺位，劝返后易反复；部分家长法律意识淡薄。",
            "next_steps": "落实三帮一跟踪帮扶，每周家访一次；配合镇政府依法送达返校通知书。",
            "prepared_by": _name(rng), "approved_by": _name(rng),
        }
    if kind == "spot_check_sheet":
        rows = []
        for t in TOWNSHIPS:
            for v in rng.sample(VILLAGES, 2):
                grade = rng.randint(1, 9)
                rows.append({"township": t, "school": f"{t}{v[:-1]}小学", "class_name": f"{GRADE_LABELS[grade]}(1)班",
                             "head_teacher": _name(rng), "enrolled": 40 + rng.randrange(16), "ledger_open": rng.randrange(2),
                             "ledger_returned": rng.randrange(3), "ledger_new": rng.randrange(3)})
        q = (month - 1) // 3 + 1
        return {"level": "county", "unit": {"name": "宁安县", "code": "C1"}, "period": f"{year}Q{q}", "quarter": f"{year}Q{q}",
                "quarter_label": f"{year}年第{'一二三四'[q - 1]}季度", "sample_rate": 0.2, "as_of": end.isoformat(), "rows": rows}
    if kind == "accountability_sheet":
        duties = [("record_home_visit", "家访", "academic_office", "教务处", "对学生不到校没有及时家访做动员说服工作"),
                  ("record_phone_call", "电话联系家长", "head_teacher", "班主任", "发现学生缺勤未及时联系家长、报告"),
                  ("serve_township_notice", "送达返校通知书", "township", "镇政府", "未按期送达返校通知书"),
                  ("record_collective_visit", "集体家访", "principal", "校长", "未按期组织集体家访")]
        rows = []
        for i in range(7):
            action, label, role, role_label, ground = rng.choice(duties)
            due = datetime.combine(start + timedelta(days=rng.randrange(25)), datetime.min.time()).replace(hour=17)
            done = due + timedelta(hours=rng.randrange(3, 60)) if rng.random() < 0.6 else None
            rows.append({"person": _name(rng), "role": role, "role_label": role_label, "unit": f"{rng.choice(TOWNSHIPS)}中心学校",
                         "case_id": 100 + i, "pupil": _name(rng), "duty": action, "duty_label": label,
                         "step_label": "", "due_at": due.strftime("%Y-%m-%d %H:%M"),
                         "done_at": done.strftime("%Y-%m-%d %H:%M") if done else None, "status": "done" if done else "overdue",
                         "hours_late": round(((done or datetime.combine(end, datetime.min.time()).replace(hour=23)) - due).total_seconds() / 3600, 1),
                         "ground": ground})
        from documents.reports import accountability_summary
        return {"level": "county", "unit": {"name": "宁安县", "code": "C1"}, "period": period, "period_label": f"{year}年{month}月",
                "period_start": start.isoformat(), "period_end": end.isoformat(), "as_of": f"{end.isoformat()} 23:59",
                "rows": rows, "summary": accountability_summary(rows)}
    if kind == "referral_ledger":  # followup: the 台账 of referred cases
        reasons = [("whereabouts_unknown", "去向不明"), ("working_away", "外出务工"), ("refusal_after_notice", "拒不送子女入学")]
        rows = []
        for i in range(5):
            reason, label = reasons[i % 3]
            opened = start + timedelta(days=rng.randrange(10))
            closed = (opened + timedelta(days=12)).isoformat() if i % 2 else None
            rows.append({"case_id": 200 + i, "school": f"{rng.choice(TOWNSHIPS)}中心学校", "class_name": "七年级(1)班",
                         "pupil": _name(rng), "student_no": "", "opened_on": opened.isoformat(),
                         "referred_on": (opened + timedelta(days=3)).isoformat(), "reason": reason, "reason_label": label,
                         "state": "returned" if closed else "escalated", "status_label": "已复学·销号" if closed else "移交跟踪中",
                         "follow_ups_done": rng.randrange(4), "follow_ups_overdue": rng.randrange(2),
                         "last_follow_up": "回访：家长称学生在外地打工", "closed_on": closed})
        tracking = sum(1 for r in rows if r["closed_on"] is None)
        return {"level": "county", "unit": {"name": "宁安县", "code": "C1"}, "period": period, "period_label": f"{year}年{month}月",
                "as_of": end.isoformat(), "rows": rows, "tracking": tracking, "closed": len(rows) - tracking}
    if kind == "responsibility_pledge":
        from documents.pledges import CLAUSES
        pupils = [{"name": _name(rng), "student_no": f"G61082720150{i:05d}", "class_name": "三年级(2)班", "role_label": "班主任"}
                  for i in range(12)]
        return {"level": "school", "unit": {"name": "城关镇中心小学", "code": "S1"}, "period": f"{year}-1",
                "title": "班主任控辍保学责任书", "year": year, "person": _name(rng), "role_label": "班主任", "pupils": pupils,
                "clauses": CLAUSES, "standard_rate": 0.006, "ground_seed": "003 一"}
    raise KeyError(kind)


__all__ = ["sample_facts", "sample_report", "sample_photo", "EVENT_LABELS"]
