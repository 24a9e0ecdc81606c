"""辍学书面通报 (seed 002): the school fills it in before the parent signs it or a copy is reported.

``record_class_record`` (the pupil's 行为表现 and 学习情况) issues the notice; ``serve_parent_notice``
(signed or refused) and ``report_parent_notice`` (the bureau's copy) each get a 送达回证. A receipt
for a notice that was never filled in is refused, naming what to do first.
"""
from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from machines.case_machine import ForbiddenEvent
from machines.states import Action
from store.models import Case, CaseEvent

NEEDS_NOTICE = frozenset({Action.serve_parent_notice.value, Action.report_parent_notice.value})


def check_order(session: Session, case: Case, event: str) -> None:
    if event not in NEEDS_NOTICE:
        return
    filled = session.scalar(select(exists().where(CaseEvent.case_id == case.id,
                                                  CaseEvent.event == Action.record_class_record.value)))
    if not filled:
        raise ForbiddenEvent(case.id, case.state, event,
                             "先填写辍学书面通报（在校行为表现、学习情况），再请家长签字或上报 "
                             "(record_class_record first)")
