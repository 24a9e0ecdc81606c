"""The demo's 三帮一 helpers and investigated reasons (issue 16): what staff find on a home visit.

- :func:`helpers_for`: the named helpers a case's policy wants (``helpers_required``, covering the
  ``[three_helpers]`` roles): the class's head teacher, the school's or township's named person for
  a role, else a made-up name, each with its role id.
- :func:`investigated_reason`: the reason class a visit finds (seed 002's list), drawn
  deterministically from the case id with the weights of a rural county.
"""
from __future__ import annotations

import random

from sqlalchemy import select
from sqlalchemy.orm import Session

from machines.states import DropoutReason
from store.cases.context import CaseContext
from store.models import Case, Staff

# what a home visit finds, weighted (study troubles and family reasons lead, as in the seeds' lists)
FOUND = [(DropoutReason.study, 5), (DropoutReason.family, 4), (DropoutReason.working_away, 3),
         (DropoutReason.poverty, 2), (DropoutReason.psychological, 2), (DropoutReason.illness, 1),
         (DropoutReason.other, 1)]
SURNAMES = "王李张刘陈杨赵黄周吴"
GIVEN = ("建国", "秀英", "志强", "桂兰", "海涛", "春梅", "卫东", "玉珍")


def investigated_reason(case_id: int) -> str:
    reasons, weights = zip(*FOUND)
    return random.Random(case_id * 104729).choices(reasons, weights)[0].value


def helpers_for(session: Session, ctx: CaseContext, case_id: int) -> list[dict]:
    case = session.get(Case, case_id)
    policy = ctx.policy(case.policy_name, case.policy_version)
    roles = list(policy.three_helpers.roles) or ["head_teacher"]
    while len(roles) < max(policy.helpers_required, 1):
        roles.append(roles[-1])
    rng = random.Random(case_id)
    out, seen = [], set()
    for role in roles:
        staff_id = ctx.owners.resolve(case.school_id, case.class_id, role)
        name = session.scalar(select(Staff.name).where(Staff.id == staff_id)) if staff_id else None
        if not name or name in seen:
            name, staff_id = rng.choice(SURNAMES) + rng.choice(GIVEN), None
        seen.add(name)
        out.append({"name": name, "role": role, **({"staff_id": staff_id} if staff_id else {})})
    return out
