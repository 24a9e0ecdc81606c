"""What the demo's staff enter for the 辍学书面通报 (seed 002): the class record, the parent's answer,
the bureau's receipt — varied by duty, deterministic."""
from __future__ import annotations

CONDUCT = ("上课注意力不集中，作业常不完成，与同学相处融洽", "遵守纪律，性格内向，不爱发言", "多次迟到早退，课堂纪律较差")
STUDY = ("语文中等，数学明显跟不上", "各科成绩中下，英语较弱", "成绩中等，近一月下滑明显")


def duty_payload(action: str, duty_id: int) -> dict:
    """The details a duty's owner records with ``action`` in the demo ({} for the others)."""
    if action == "record_class_record":
        return {"conduct": CONDUCT[duty_id % len(CONDUCT)], "study": STUDY[duty_id % len(STUDY)]}
    if action == "serve_parent_notice":
        refused = duty_id % 3 == 0
        return {"recipient": "学生家长", "refused": refused,
                "opinion": "不同意送孩子返校" if refused else "已知悉，督促孩子返校"}
    if action == "report_parent_notice":
        return {"received_by": "基教股经办人", "method": "当面报送"}
    return {}


def notice_ready(factory, case_id: int, action: str) -> bool:
    """A demo clerk only asks the parent to sign (or reports) a 书面通报 the school has filled in."""
    from store.cases.parent_notice import NEEDS_NOTICE
    if action not in NEEDS_NOTICE:
        return True
    from sqlalchemy import exists, select

    from store.db import transaction
    from store.models import CaseEvent
    with transaction(factory) as s:
        return bool(s.scalar(select(exists().where(CaseEvent.case_id == case_id, CaseEvent.event == "record_class_record"))))
