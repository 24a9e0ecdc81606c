"""The one rule every morning-check entry applies before recording (store.ingest.attendance_files.vet_check):
a bad row refuses the whole file, every bad row listed; overwriting the day's recorded absences or closing
open cases needs a confirmation (the preview's token); the template's words read back as recorded."""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from store.cases.intake import MarkIn, RowError
from store.ingest.attendance_files import BadRows, NeedsConfirmation, parse_attendance, review_check, vet_check
from store.models import AttendanceMark, Case
from tests.engine_helpers import case_of, morning, setup_store

DAY = date(2026, 11, 16)


@pytest.fixture
def check(factory):
    with factory() as s:
        code, pupils = setup_store(s)
        s.commit()
    morning(factory, code, DAY, [pupils[0]], statuses={pupils[1]: "病假"})
    return factory, code, pupils


def test_a_file_that_would_close_a_case_needs_the_confirmation_of_its_own_preview(check):
    factory, code, pupils = check
    everyone_present = [MarkIn(no, "present", row=i) for i, no in enumerate(pupils, start=2)]
    with factory() as s:
        cid = case_of(s, pupils[0]).id
        review = review_check(s, school_code=code, day=DAY, marks=everyone_present)
        assert (review.overwritten, review.returned, review.excused) == (2, [cid], [])
        assert review.message == "将覆盖 2 条已上报记录，1 个案件将结案"
        with pytest.raises(NeedsConfirmation) as refused:
            vet_check(s, school_code=code, day=DAY, marks=everyone_present)
        assert "将覆盖 2 条已上报记录" in str(refused.value)
        with pytest.raises(NeedsConfirmation):  # a token of another preview is no confirmation
            vet_check(s, school_code=code, day=DAY, marks=everyone_present, confirm="0" * 16)
        assert vet_check(s, school_code=code, day=DAY, marks=everyone_present, confirm=review.token).returned == [cid]
        assert vet_check(s, school_code=code, day=DAY, marks=everyone_present, confirm=True).returned == [cid]
        # a leave closes (excuses) the case too
        leave = [MarkIn(pupils[0], "sick_leave", row=2)]
        assert review_check(s, school_code=code, day=DAY, marks=leave).excused == [cid]


def test_the_day_as_recorded_sent_back_needs_no_confirmation(check):
    """The template pre-filled with the day's marks, uploaded unchanged: nothing to overwrite or close."""
    factory, code, pupils = check
    sheet = "学籍号,出勤状态\n" + "".join(
        f"{no},{ {pupils[0]: '无故缺勤', pupils[1]: '病假'}.get(no, '到校') }\n" for no in pupils)
    parsed = parse_attendance(sheet.encode(), filename="t.csv")
    with factory() as s:
        review = vet_check(s, school_code=code, day=DAY, marks=parsed.marks, errors=parsed.errors)
        assert (review.overwritten, review.closing, review.needs_confirmation) == (0, [], False)
        # a head teacher's partial check (complete=False) that leaves the absentee out changes nothing either
        assert not review_check(s, school_code=code, day=DAY, marks=[MarkIn(pupils[2], "present")],
                                complete=False).needs_confirmation


def test_a_file_with_bad_rows_is_refused_whole_with_every_row_listed(check):
    factory, code, pupils = check
    sheet = f"学籍号,出勤状态\n{pupils[0]},到校\nNOPE1,缺勤\n{pupils[2]},迟到了\n{pupils[3]},缺勤\n{pupils[3]},到校\n"
    parsed = parse_attendance(sheet.encode(), filename="t.csv")
    with factory() as s:
        marks_before = s.scalar(select(func.count()).select_from(AttendanceMark))
        with pytest.raises(BadRows) as refused:  # bad rows win over the confirmation: nothing applies
            vet_check(s, school_code=code, day=DAY, marks=parsed.marks, errors=parsed.errors, confirm=True)
        rows = [(e.row, e.student_no) for e in refused.value.review.errors]
        assert rows == [(3, "NOPE1"), (4, pupils[2]), (6, pupils[3])]
        assert all(isinstance(e, RowError) and e.message for e in refused.value.review.errors)
        assert s.scalar(select(func.count()).select_from(AttendanceMark)) == marks_before
        assert s.scalar(select(Case.state).where(Case.id == case_of(s, pupils[0]).id)) != "returned"
