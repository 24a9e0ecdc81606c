"""What is on record — schools, classes, staff, pupils — within a scope, searched and paged.

One read model for the CLI (`baoxue org …`), the API (`/api/schools` …) and the pages. Every
list is a SQL query with LIMIT/OFFSET and a COUNT, never Python over the population. Pupils'
ID numbers are always masked in lists; names are masked when ``mask_names`` (the county,
store.access.masking).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, aliased

from machines.identity import mask_id, mask_name

from store.access.scope import Scope
from store.models import Jurisdiction, Pupil, School, SchoolClass, Staff

MAX_LIMIT = 500


def _page(session: Session, q, limit: int, offset: int, row) -> dict[str, Any]:
    limit = max(1, min(limit, MAX_LIMIT))
    total = session.scalar(select(func.count()).select_from(q.order_by(None).subquery()))
    rows = [row(r) for r in session.execute(q.limit(limit).offset(max(0, offset)))]
    return {"total": total, "limit": limit, "offset": max(0, offset), "rows": rows}


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _school_scope(q, scope: Scope, school_col=School.id):
    """Schools are limited by the scope's schools and townships (a class scope sees its schools)."""
    if scope.school_ids is not None:
        q = q.where(school_col.in_(scope.school_ids))
    if scope.township_ids is not None:
        q = q.where(school_col.in_(select(School.id).where(School.township_id.in_(scope.township_ids))))
    if scope.class_ids is not None:
        q = q.where(school_col.in_(select(SchoolClass.school_id).where(SchoolClass.id.in_(scope.class_ids))))
    return q


def list_schools(session: Session, scope: Scope, *, search: str | None = None, limit: int = 50,
                 offset: int = 0) -> dict[str, Any]:
    township = aliased(Jurisdiction)
    q = (select(School.id, School.code, School.name, School.stage, School.boarding, School.policy_name,
                School.calendar_key, School.enrolled, School.retired_on, township.name.label("township"))
         .join(township, township.id == School.township_id).order_by(School.code))
    q = _school_scope(q, scope)
    if search:
        q = q.where(or_(School.name.like(_like(search), escape="\\"), School.code.like(_like(search), escape="\\")))
    return _page(session, q, limit, offset, lambda r: dict(r._mapping))


def list_classes(session: Session, scope: Scope, *, school_id: int | None = None, limit: int = 100,
                 offset: int = 0) -> dict[str, Any]:
    q = (select(SchoolClass.id, SchoolClass.name, SchoolClass.grade, SchoolClass.retired_on, School.code.label("school_code"),
                School.name.label("school"), Staff.name.label("head_teacher"))
         .join(School, School.id == SchoolClass.school_id).outerjoin(Staff, Staff.id == SchoolClass.head_teacher_id)
         .order_by(School.code, SchoolClass.grade, SchoolClass.name))
    q = _school_scope(q, scope, SchoolClass.school_id)
    if scope.class_ids is not None:
        q = q.where(SchoolClass.id.in_(scope.class_ids))
    if school_id is not None:
        q = q.where(SchoolClass.school_id == school_id)
    return _page(session, q, limit, offset, lambda r: dict(r._mapping))


def list_staff(session: Session, scope: Scope, *, search: str | None = None, limit: int = 100,
               offset: int = 0, role_labels: dict[str, str] | None = None) -> dict[str, Any]:
    """School staff within the scope's schools; officials of a jurisdiction for a township/county scope."""
    place = aliased(Jurisdiction)
    q = (select(Staff.id, Staff.name, Staff.role, Staff.phone, Staff.office, Staff.retired_on,
                func.coalesce(School.name, place.name).label("unit"))
         .outerjoin(School, School.id == Staff.school_id).outerjoin(place, place.id == Staff.jurisdiction_id)
         .order_by(func.coalesce(School.code, place.code), Staff.role, Staff.id))
    if scope.school_ids is not None or scope.class_ids is not None:
        q = _school_scope(q, scope, Staff.school_id)
    elif scope.township_ids is not None:
        q = q.where(or_(Staff.school_id.in_(select(School.id).where(School.township_id.in_(scope.township_ids))),
                        Staff.jurisdiction_id.in_(scope.township_ids),
                        Staff.jurisdiction_id.in_(select(Jurisdiction.id).where(
                            Jurisdiction.parent_id.in_(scope.township_ids)))))
    if search:
        q = q.where(or_(Staff.name.like(_like(search), escape="\\"), Staff.phone.like(_like(search), escape="\\")))
    labels = role_labels or {}
    from store.ingest.organisation import ROLE_WORDS
    words = {role: word for word, role in reversed(list(ROLE_WORDS.items()))}
    return _page(session, q, limit, offset, lambda r: dict(r._mapping) | {
        "role_label": labels.get(r.role) or words.get(r.role, r.role)})


def list_pupils(session: Session, scope: Scope, *, search: str | None = None, limit: int = 50, offset: int = 0,
                mask_names: bool = False) -> dict[str, Any]:
    """Pupils in the scope, searched by name, 学籍号 or the last digits of the ID number."""
    village = aliased(Jurisdiction)
    q = (select(Pupil.id, Pupil.student_no, Pupil.name, Pupil.id_number, Pupil.gender, Pupil.enrolled,
                School.name.label("school"), SchoolClass.name.label("class"), village.name.label("village"),
                Pupil.special_groups)
         .join(School, School.id == Pupil.school_id).join(SchoolClass, SchoolClass.id == Pupil.class_id)
         .outerjoin(village, village.id == Pupil.village_id).order_by(School.code, SchoolClass.grade, Pupil.student_no))
    q = scope.apply(q, school_col=Pupil.school_id, class_col=Pupil.class_id)
    if search:
        term = _like(search)
        q = q.where(or_(Pupil.name.like(term, escape="\\"), Pupil.student_no.like(term, escape="\\"),
                        Pupil.id_number.like("%" + search, escape="\\") if search.isalnum() and len(search) >= 4
                        else Pupil.id == -1))

    def row(r):
        return {"id": r.id, "student_no": r.student_no, "name": mask_name(r.name) if mask_names else r.name,
                "id_number": mask_id(r.id_number), "gender": r.gender, "enrolled": r.enrolled, "school": r.school,
                "class": r._mapping["class"], "village": r.village, "special_groups": r.special_groups or []}
    return _page(session, q, limit, offset, row)
