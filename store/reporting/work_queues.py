"""The lists people work through, paged in the database (issue 18 item 3).

- :func:`stuck_queue` — 逾期督办: every duty past due and not done, of one kind (case ladder, census,
  watch list, prevention) or all, filtered by school, owner and step, sorted, one page at a time;
- :func:`case_queue` — 案件: cases searched by name, 学籍号 or ID number, with school, owner and the
  next deadline;
- :func:`watch_queue` — 重点关注: the open watch entries, one page at a time.

Each function filters, sorts and pages in SQL (``LIMIT``/``OFFSET``) and counts up to
:data:`COUNT_CAP` rows, so a page costs the same for a school of 30 cases and a province of a
million: nothing here iterates over the population in Python. Every function takes the reader's
:class:`~store.access.scope.Scope` and nothing else decides what the reader sees.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterator

from sqlalchemy import Integer, and_, any_, bindparam, case, func, or_, select, union_all
from sqlalchemy.sql.elements import Cast, Label
from sqlalchemy.orm import Session, aliased

from machines.identity import mask_id, mask_name
from machines.risk import DUTY_LABELS, RiskDuty
from machines.states import CaseState, OPEN_STATES
from machines.vocabulary import DUTY_KIND_LABELS, QUEUE_REF_LABELS

from store.access.scope import Scope
from store.duties.ledger import DUTY_TABLES, KIND_LABELS, UNDONE, _literal, _rule_labels, branch, order_keys, row_dict
from store.models import Case, Duty, Pupil, School, SchoolClass, Staff
from store.models.risk import WatchDuty, WatchEntry
from store.streaming import stream_rows

COUNT_CAP = 2_000           # a count stops here ("2000+"): counting a million rows costs more than the page
QUEUE_KINDS = ("case", "census", "watch", "prevention")   # the stuck list's tabs, dropouts first
STUCK_SORTS = ("overdue", "owner", "school", "kind")
CASE_SORTS = ("opened", "due", "school", "id")
OPEN = [s.value for s in OPEN_STATES]


@dataclass(frozen=True)
class Paging:
    page: int = 1
    per_page: int = 50

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


def _count(session: Session, q) -> tuple[int, bool]:
    """Rows of ``q`` up to :data:`COUNT_CAP` (and whether there are more)."""
    n = session.scalar(select(func.count()).select_from(q.order_by(None).limit(COUNT_CAP + 1).subquery()))
    return min(n or 0, COUNT_CAP), (n or 0) > COUNT_CAP


def ids_in(session: Session, col, ids):
    """``col IN ids`` for a page's ids (up to an export's 5 000): on PostgreSQL one array parameter
    (``= ANY(:ids)``) — a list of 5 000 bound values costs ~100 ms in psycopg's query parsing and SQLAlchemy's
    expanding before the server sees it, the array one value; SQLite keeps its list (no arrays)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        return col == any_(bindparam(None, list(ids), type_=ARRAY(Integer)))
    return col.in_(ids)


def _page_info(paging: Paging, total: int, capped: bool, shown: int) -> dict[str, Any]:
    pages = max(1, -(-total // paging.per_page))
    return {"page": paging.page, "per_page": paging.per_page, "total": total, "capped": capped, "pages": pages,
            "shown": shown, "first": paging.offset + 1 if shown else 0, "last": paging.offset + shown,
            "has_prev": paging.page > 1, "has_next": capped or paging.page < pages}


# -- references ------------------------------------------------------------------------------------------
def ref_label(kind: str, ref_id: int | None) -> str:
    """How a list names what a row belongs to: 案件 #53, 关注 #53, 失学 #12 — never a bare "#53"."""
    return f"{QUEUE_REF_LABELS.get(kind, kind)} #{ref_id}"


def record_href(kind: str, ref_id: int, state: str | None = None) -> str:
    """The page of the record a duty belongs to (a case, a census case, a watch entry, a pupil's warnings)."""
    if kind == "case":
        return f"/cases/{ref_id}"
    if kind == "watch":
        return f"/risk/entries/{ref_id}"
    if kind == "census":
        return f"/census#census-{ref_id}"
    if kind == "prevention":
        return "/gate" if state == "gate" else f"/truancy?pupil={ref_id}"
    return "/runs"


# -- 逾期督办 ------------------------------------------------------------------------------------------------
def _raw(col):
    """A ledger column's own expression (its label and cast taken off), for a WHERE an index can serve."""
    while isinstance(col, (Label, Cast)):
        col = col.element if isinstance(col, Label) else col.clause
    return col


def _kind_select(scope: Scope, as_of: datetime, kind: str, *, school_id, owner_id, step, bare: bool = False,
                 lean: bool = False):
    """The overdue duties of one kind with the filters, as one select on its own tables (no UNION: each kind's
    index serves its order and its filters); ``bare``: the duty's id and owner only (for counting); ``lean``: the
    ledger's columns of the duty and its record, without the pupil's, school's and owner's names (:func:`_named`)."""
    q = branch(kind, due_by=as_of, bare=bare or lean)
    cols = {c.key: _raw(c) for c in q.selected_columns}
    if bare:
        q = q.with_only_columns(*(c for c in q.selected_columns if c.key in ("kind", "id", "owner_id", "due_at")))
    elif lean:
        pass
    else:
        q = (q.add_columns(School.name.label("school"), School.code.label("school_code"),
                           School.policy_name.label("policy_name"), Staff.name.label("owner"))
             .outerjoin(School, School.id == cols["school_id"]).outerjoin(Staff, Staff.id == cols["owner_id"]))
    q = scope.apply(q, school_col=cols["school_id"], class_col=cols["class_id"])
    if school_id is not None:
        q = q.where(cols["school_id"] == school_id)
    if owner_id is not None:
        q = q.where(cols["owner_id"] == owner_id) if owner_id > 0 else q.where(cols["owner_id"].is_(None))
    if step:
        q = q.where(cols["state"] == step)
    return q


def _top(kinds, selects: dict[str, Any], n: int, *, by_kind: bool):
    """The first ``n`` rows of the kinds' selects together in (due time[, kind], id) order: each kind's first
    ``n`` in its own index order, then the few merged — the same rows as sorting the union of all of them."""
    if len(kinds) == 1:
        return selects[kinds[0]].order_by(*order_keys(kinds[0])).limit(n).subquery("top")
    parts = [select(selects[k].order_by(*order_keys(k)).limit(n).subquery(f"top_{k}")) for k in kinds]
    u = union_all(*parts).subquery("merged")
    return select(u).order_by(u.c.due_at, *([u.c.kind] if by_kind else []), u.c.id).limit(n).subquery("top")


def _count_kinds(session: Session, scope: Scope, as_of: datetime, kinds, *, school_id, owner_id, step) -> dict[str, int]:
    """kind → overdue duties of it with the filters, each counted up to COUNT_CAP + 1 (a count stops there)."""
    out = {}
    for kind in kinds:
        q = _kind_select(scope, as_of, kind, school_id=school_id, owner_id=owner_id, step=step, bare=True)
        out[kind] = session.scalar(select(func.count()).select_from(q.limit(COUNT_CAP + 1).subquery())) or 0
    return out


def stuck_queue(session: Session, scope: Scope, as_of: datetime, *, kind: str | None = "case",
                school_id: int | None = None, owner_id: int | None = None, step: str | None = None,
                sort: str = "overdue", paging: Paging = Paging(), masked: bool = False,
                tabs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One page of the duties past due and not done, one row per duty, with its record's reference.

    ``kind``: one of :data:`QUEUE_KINDS`, or None for every kind; ``owner_id`` 0 = no owner named;
    ``step``: the case's step (a :class:`CaseState` value) or the census state, watch rule or
    prevention source the duty belongs to. ``sort``: ``overdue`` (longest first), ``owner``,
    ``school``, ``kind``. ``tabs``: :func:`stuck_tabs` of the same filters, if the caller has them (their
    counts are this list's when no step is chosen)."""
    kinds = (kind,) if kind else QUEUE_KINDS
    items = list(stuck_rows(session, scope, as_of, kind=kind, school_id=school_id, owner_id=owner_id, step=step,
                            sort=sort, paging=paging, masked=masked))
    if paging.offset + len(items) > COUNT_CAP:  # more rows than the cap already read: the count is capped
        counts = {"read": COUNT_CAP + 1}
    elif tabs is not None and not step:
        counts = {t["kind"]: t["count"] + (1 if t["capped"] else 0) for t in tabs if t["kind"] in kinds}
    else:
        counts = _count_kinds(session, scope, as_of, kinds, school_id=school_id, owner_id=owner_id, step=step)
    n = sum(counts.values())
    return {"rows": items, **_page_info(paging, min(n, COUNT_CAP), n > COUNT_CAP, len(items))}


def in_due_order(sort: str, kind: str | None) -> bool:
    """Whether the list runs in due order (longest overdue first) through all its rows; otherwise it is the
    :data:`COUNT_CAP` longest overdue regrouped by owner, school or kind."""
    return sort == "overdue" or (sort == "kind" and kind is not None)


def stuck_rows(session: Session, scope: Scope, as_of: datetime, *, kind: str | None = "case",
               school_id: int | None = None, owner_id: int | None = None, step: str | None = None,
               sort: str = "overdue", paging: Paging = Paging(), masked: bool = False) -> Iterator[dict[str, Any]]:
    """The rows of one page of the list (:func:`stuck_queue`'s), in its order, each made as the database sends it
    (:func:`store.streaming.stream_rows`): an export labels and writes its first rows while the server reads on."""
    kinds = (kind,) if kind else QUEUE_KINDS
    end = paging.offset + paging.per_page
    if in_due_order(sort, kind):
        # the page's duties with the columns of the duty and its record (case, entry…), read once in the list's order
        # (a township's plan reads its cases' late duties and sorts them: pupils, schools and owners joined to those
        # thousands would cost more than the page); then the names of the page's pupils, schools and owners looked
        # up for the page alone, in the same statement — not the duties and cases read a second time by id (an export's
        # 5 000 scattered duty rows: ~13 000 pages read again on a cold cache, docs/performance.md ``## pages``)
        lean = {k: _kind_select(scope, as_of, k, school_id=school_id, owner_id=owner_id, step=step, lean=True) for k in kinds}
        top = _top(kinds, lean, end, by_kind=kind is None)
        order = lambda t: (t.c.due_at, *([t.c.kind] if kind is None else []), t.c.id)  # noqa: E731
        page_rows = select(top).order_by(*order(top)).limit(paging.per_page).offset(paging.offset).subquery("page")
        stmt = _named(page_rows).order_by(*order(page_rows))
    else:  # by owner, school or kind: the COUNT_CAP longest overdue, regrouped (a bounded sort, never the population)
        selects = {k: _kind_select(scope, as_of, k, school_id=school_id, owner_id=owner_id, step=step) for k in kinds}
        top = _top(kinds, selects, COUNT_CAP, by_kind=False)
        stmt = (select(top).order_by(*{"owner": [top.c.owner, top.c.owner_id], "school": [top.c.school_code],
                                       "kind": [top.c.kind]}[sort], top.c.due_at, top.c.id)
                .limit(paging.per_page).offset(paging.offset))
    # the watch rules' labels of every policy the schools use, read before the stream holds the connection
    labels = _rule_labels(session, set(session.scalars(select(School.policy_name).distinct())) if "watch" in kinds else set())
    keys, rows = stream_rows(session, stmt)
    for values in rows:
        r = dict(zip(keys, values))
        d = row_dict(r, as_of, masked=masked, rule_labels=labels.get(r["policy_name"]))
        d.update(ref=ref_label(r["kind"], r["ref_id"]), href=record_href(r["kind"], r["ref_id"], r["state"]),
                 owner=r["owner"] or "（未指定）")
        yield d


def stuck_more(session: Session, scope: Scope, as_of: datetime, *, kind: str | None, school_id: int | None = None,
               owner_id: int | None = None, step: str | None = None) -> bool:
    """Whether the list holds more than the :data:`COUNT_CAP` rows a regrouped list shows (bounded counts)."""
    kinds = (kind,) if kind else QUEUE_KINDS
    counts = _count_kinds(session, scope, as_of, kinds, school_id=school_id, owner_id=owner_id, step=step)
    return sum(counts.values()) > COUNT_CAP


_PUPIL_NAMED = ("case", "prevention", "watch")  # the kinds whose ledger branch names the pupil from ``pupils``


def _named(page):
    """The rows of a page of the lean selects with the names the full ones join: the pupil's (``pupils``, for the
    kinds whose ledger branch names the pupil from there), the school's name, code and policy, the owner's — each
    looked up by primary key for the page's rows only (a missing school or owner: None, as outer joins give).
    The school's and owner's as scalar subqueries, not joins: PostgreSQL hashes a join of 5 000 rows to a small
    table and must then sort again, so no row could leave before the last is read; looked up row by row, the
    rows leave in the page's order as they are found (:func:`store.streaming.stream_rows`)."""
    from_pupils = page.c.kind.in_(_PUPIL_NAMED)

    def school(col):
        return select(col).where(School.id == page.c.school_id).scalar_subquery()

    return (select(*(c for c in page.c if c.key != "pupil_name"),
                   case((from_pupils, Pupil.name), else_=page.c.pupil_name).label("pupil_name"),
                   school(School.name).label("school"), school(School.code).label("school_code"),
                   school(School.policy_name).label("policy_name"),
                   select(Staff.name).where(Staff.id == page.c.owner_id).scalar_subquery().label("owner"))
            .outerjoin(Pupil, and_(Pupil.id == page.c.pupil_id, from_pupils)))


def stuck_tabs(session: Session, scope: Scope, as_of: datetime, *, school_id: int | None = None,
               owner_id: int | None = None) -> list[dict[str, Any]]:
    """The tabs of the stuck list with their counts (each capped), dropouts first."""
    counts = _count_kinds(session, scope, as_of, QUEUE_KINDS, school_id=school_id, owner_id=owner_id, step=None)
    return [{"kind": kind, "label": DUTY_KIND_LABELS[kind], "count": min(counts[kind], COUNT_CAP),
             "capped": counts[kind] > COUNT_CAP} for kind in QUEUE_KINDS]


OWNER_CHOICES = 300    # the owner filter lists at most 300 people, those owing most first
OWNER_SAMPLE = 2000    # …read from the 2000 longest-overdue duties of the list (a province has 100 000s)


def stuck_owners(session: Session, scope: Scope, as_of: datetime, *, kind: str | None,
                 school_id: int | None = None) -> list[dict[str, Any]]:
    """The people owing the longest-overdue duties of the list, most first (for the owner filter)."""
    kinds = (kind,) if kind else QUEUE_KINDS
    selects = {k: _kind_select(scope, as_of, k, school_id=school_id, owner_id=None, step=None, bare=True) for k in kinds}
    sub = _top(kinds, selects, OWNER_SAMPLE, by_kind=False)
    counted = (select(sub.c.owner_id, func.count().label("n")).where(sub.c.owner_id.is_not(None))
               .group_by(sub.c.owner_id).subquery())
    named = (select(counted.c.owner_id, Staff.name, counted.c.n).join(Staff, Staff.id == counted.c.owner_id)
             .order_by(counted.c.n.desc(), Staff.name).limit(OWNER_CHOICES))
    return [{"id": i, "name": name, "count": n} for i, name, n in session.execute(named)]


STUCK_HEADERS = ["类别", "编号", "学生", "学校", "所处环节", "欠办事项", "责任人", "截止时间", "逾期（小时）"]


def stuck_export_row(r: dict[str, Any]) -> list[Any]:
    """A row of the list (:func:`stuck_rows`) as its export writes it, under :data:`STUCK_HEADERS`."""
    return [r["kind_label"], r["ref"], r["pupil"] or "", r["school"], r["context"], r["action_label"], r["owner"],
            minute(r["due_at"]), r["hours_overdue"]]


def stuck_export_rows(items: list[dict[str, Any]]) -> list[list[Any]]:
    return [stuck_export_row(r) for r in items]


def minute(at: datetime) -> str:
    """``2026-11-30 17:00``: what ``strftime("%Y-%m-%d %H:%M")`` writes (an offset left off), ~5× faster."""
    return at.isoformat(" ", "minutes")[:16]


# -- 案件 ------------------------------------------------------------------------------------------------------
def _search_terms(session: Session, text: str) -> list:
    """The pupil by name (whole, or its beginning), 学籍号 or 身份证号 (the list shows it masked), one term per
    index (ix_pupils_name_id, the unique 学籍号 and 身份证号): no scan of the pupils. A whole name is one of
    the names beginning with it."""
    t = text.strip()
    if session.get_bind().dialect.name == "sqlite":  # GLOB is case-sensitive, so SQLite's index serves a prefix
        prefix = Pupil.name.op("GLOB")(re.sub(r"([*?\[\]])", r"[\1]", t) + "*")
    else:  # varchar_pattern_ops index
        prefix = Pupil.name.like(t.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%", escape="\\")
    terms = [prefix, Pupil.student_no == t]
    if len(t) == 18:
        terms.append(Pupil.id_number == t.upper())
    return terms


def _search_clause(session: Session, text: str):
    """The search on a select that joins the pupil."""
    return or_(*_search_terms(session, text))


def _search_pupils(session: Session, text: str):
    """The ids of the pupils the search finds, one indexed select per term (``UNION ALL``): an ``OR`` over three
    columns is a bitmap scan on PostgreSQL, which reads every matching pupil's row; each term alone is an
    index-only scan (the name index holds the id)."""
    return union_all(*(select(Pupil.id).where(term) for term in _search_terms(session, text)))


WALK_FROM = 2_000  # pupils found from which PostgreSQL walks the case list's order instead of probing each pupil


def _walks(session: Session, text: str) -> bool:
    """Whether the search finds so many pupils (a one-character name: ~1 % of a province) that the page is
    cheaper read by walking the open cases in the list's order (ix_cases_opened_keys, holding the pupil on PostgreSQL)
    and testing each case's pupil against the found ones (a hashed set), stopping at the page, than by probing
    every found pupil's cases and sorting them (10 000 probes: 33 000 buffer reads). PostgreSQL only: its
    planner cannot tell the two apart (it estimates 200 pupils for any search); SQLite reads the probes from
    its covering indexes at 50 ms. Counted up to :data:`WALK_FROM` on the name index."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    found = _search_pupils(session, text).subquery()
    return (session.scalar(select(func.count()).select_from(select(found).limit(WALK_FROM).subquery())) or 0) >= WALK_FROM


def case_queue(session: Session, scope: Scope, as_of: datetime, *, q: str | None = None, state: str | None = None,
               open_only: bool = True, school_id: int | None = None, sort: str = "opened",
               paging: Paging = Paging(), masked: bool = False) -> dict[str, Any]:
    """One page of cases with the pupil's 学籍号 and masked ID number, school, class, current step, the
    owner of the next undone duty and its deadline (overdue flagged)."""
    # The page is chosen on a lean select — the case's id and sort keys, the pupil joined only to search — and
    # only its 20–100 rows are then joined to pupils, schools and classes (every case has all three: NOT NULL
    # keys, so the joins drop none). A name prefix of one character matches ~1 % of a province's pupils: the
    # lean select reads them from indexes (ix_pupils_name_id holds the id; ix_cases_pupil the case's state and first
    # absence; the few found cases' rows their school and id: 0019_pgwrites), sorts their open cases' keys.
    base = scope.apply(select(Case.id))
    page_base = None  # the select the page is read from, when not ``base``
    if state:
        base = base.where(Case.state == CaseState(state).value)
    elif open_only:
        base = base.where(Case.state.in_(OPEN))
    if school_id is not None:
        base = base.where(Case.school_id == school_id)
    if q and q.strip():
        if school_id is None and scope.school_ids is None and scope.class_ids is None:  # county or township: the
            # many pupils: walk the list's order (``k``, ix_cases_opened_keys, which holds the pupil but not the
            # state: 0019_pgwrites), test each case's pupil in the index, and read the row (state, scope) of a
            # case whose pupil was found only
            k = aliased(Case, name="k")
            walk = base.join(k, k.id == Case.id).where(
                or_(*(k.pupil_id.in_(select(Pupil.id).where(t)) for t in _search_terms(session, q))))
            base = base.where(Case.pupil_id.in_(_search_pupils(session, q)))     # pupils found, then their cases
            if sort == "opened" and _walks(session, q):
                page_base = walk.order_by(k.opened_on, k.id)
        else:  # one school's open cases (hundreds), each pupil probed: not the province's 10 000 of a prefix
            base = base.join(Pupil, Pupil.id == Case.pupil_id).where(_search_clause(session, q))
    if sort == "due":  # the cases with a duty pending, by their next deadline: walk the undone duties in due order
        # (ix_duties_undone_due), keep each case's first one (no earlier undone duty of the same case, read from
        # ix_duties_undone_case) whose case passes the filters (a probe by its id), then read the page's cases.
        # Statuses as literals: SQLite uses a partial index only for a query that states its literals. The case is
        # probed in EXISTS, not joined: joined, SQLite's planner scans the million cases into a Bloom filter first.
        earlier = aliased(Duty)
        firsts = (select(Duty.case_id).where(
            Duty.status.in_(_literal(UNDONE)),
            ~select(earlier.id).where(earlier.case_id == Duty.case_id, earlier.status.in_(_literal(UNDONE)),
                                      or_(earlier.due_at < Duty.due_at,
                                          and_(earlier.due_at == Duty.due_at, earlier.id < Duty.id))).exists(),
            base.where(Case.id == Duty.case_id).exists()))
        order = list(session.scalars(firsts.order_by(Duty.due_at, Duty.id).limit(paging.per_page).offset(paging.offset)))
        count_q = firsts
    else:
        keys = {"opened": [Case.opened_on, Case.id], "school": [Case.school_id, Case.opened_on, Case.id],
                "id": [Case.id.desc()]}[sort]
        order = list(session.scalars((base.order_by(*keys) if page_base is None else page_base)
                                     .limit(paging.per_page).offset(paging.offset)))
        count_q = base
    found = {r["id"]: r for r in session.execute(
        select(Case.id, Case.state, Case.opened_on, Case.closed_on, Pupil.name, Pupil.student_no, Pupil.id_number,
               School.name.label("school"), SchoolClass.name.label("klass"))
        .join(Pupil, Pupil.id == Case.pupil_id).join(School, School.id == Case.school_id)
        .join(SchoolClass, SchoolClass.id == Case.class_id).where(ids_in(session, Case.id, order))).mappings()} if order else {}
    rows = [found[i] for i in order]
    ids = [r["id"] for r in rows]
    nexts: dict[int, dict[str, Any]] = {}
    if ids:  # the next undone duty of the cases on this page only
        for case_id, due, owner, status in session.execute(
                select(Duty.case_id, Duty.due_at, Staff.name, Duty.status).outerjoin(Staff, Staff.id == Duty.owner_id)
                .where(ids_in(session, Duty.case_id, ids), Duty.status.in_(UNDONE)).order_by(Duty.case_id, Duty.due_at, Duty.id)):
            nexts.setdefault(case_id, {"due_at": due, "owner": owner, "overdue": status == "overdue" or due <= as_of})
    items = [{"id": r["id"], "ref": ref_label("case", r["id"]), "pupil": mask_name(r["name"]) if masked else r["name"],
              "student_no": r["student_no"], "id_number": mask_id(r["id_number"]), "school": r["school"],
              "class": r["klass"], "state": r["state"], "state_label": CaseState(r["state"]).label,
              "opened_on": r["opened_on"], "closed_on": r["closed_on"],
              "owner": (nexts.get(r["id"]) or {}).get("owner"), "due_at": (nexts.get(r["id"]) or {}).get("due_at"),
              "overdue": (nexts.get(r["id"]) or {}).get("overdue", False)} for r in rows]
    total, capped = _count(session, count_q)
    return {"rows": items, **_page_info(paging, total, capped, len(items))}


CASE_HEADERS = ["案件编号", "学生", "学籍号", "身份证号（脱敏）", "学校", "班级", "当前环节", "首次缺勤", "下一职责责任人", "下一截止时间", "是否逾期"]


def case_export_rows(items: list[dict[str, Any]]) -> list[list[Any]]:
    return [[r["ref"], r["pupil"], r["student_no"], r["id_number"] or "", r["school"], r["class"], r["state_label"],
             r["opened_on"].isoformat(), r["owner"] or "", minute(r["due_at"]) if r["due_at"] else "",
             "逾期" if r["overdue"] else ""] for r in items]


# -- 重点关注 ----------------------------------------------------------------------------------------------------
def watch_queue(session: Session, scope: Scope, as_of: datetime, *, q: str | None = None, school_id: int | None = None,
                overdue_only: bool = False, paging: Paging = Paging(), masked: bool = False) -> dict[str, Any]:
    """One page of the open watch entries (school, class, entry order), each with its duties."""
    base = (select(WatchEntry.id, WatchEntry.pupil_id, WatchEntry.since, WatchEntry.rules, Pupil.name, Pupil.student_no,
                   School.name.label("school"), SchoolClass.name.label("klass"), Staff.name.label("helper"))
            .join(Pupil, Pupil.id == WatchEntry.pupil_id).join(School, School.id == WatchEntry.school_id)
            .join(SchoolClass, SchoolClass.id == WatchEntry.class_id).outerjoin(Staff, Staff.id == WatchEntry.helper_id)
            .where(WatchEntry.until.is_(None)))
    base = scope.apply(base, school_col=WatchEntry.school_id, class_col=WatchEntry.class_id)
    if school_id is not None:
        base = base.where(WatchEntry.school_id == school_id)
    if q and q.strip():
        base = base.where(_search_clause(session, q))
    if overdue_only:
        from store.duties.ledger import watch_due_by

        base = base.where(select(WatchDuty.id).where(WatchDuty.entry_id == WatchEntry.id, WatchDuty.status.in_(UNDONE),
                                                     WatchDuty.due_on <= watch_due_by(as_of)).exists())
    rows = session.execute(base.order_by(WatchEntry.school_id, WatchEntry.class_id, WatchEntry.id)  # ix_watch_open_order
                           .limit(paging.per_page).offset(paging.offset)).mappings().all()
    duties = _watch_duties(session, [r["id"] for r in rows], as_of)
    items = [{"entry_id": r["id"], "ref": ref_label("watch", r["id"]), "href": record_href("watch", r["id"]),
              "pupil_id": r["pupil_id"], "pupil": mask_name(r["name"]) if masked else r["name"],
              "student_no": r["student_no"], "school": r["school"], "class": r["klass"], "helper": r["helper"],
              "since": r["since"].isoformat(), "rules": r["rules"] or [], "duties": duties[r["id"]]} for r in rows]
    total, capped = _count(session, base)
    return {"rows": items, **_page_info(paging, total, capped, len(items))}


def _watch_duties(session: Session, entry_ids: list[int], as_of: datetime) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if not entry_ids:
        return out
    for d, owner in session.execute(select(WatchDuty, Staff.name).outerjoin(Staff, Staff.id == WatchDuty.owner_id)
                                    .where(ids_in(session, WatchDuty.entry_id, entry_ids)).order_by(WatchDuty.due_on, WatchDuty.id)):
        undone = d.status in UNDONE
        late = undone and (d.status == "overdue" or d.due_on < as_of.date())
        out[d.entry_id].append({"id": d.id, "action": d.action, "label": DUTY_LABELS[RiskDuty(d.action)] if d.action in
                                RiskDuty.__members__ else d.action, "owner": owner, "due_on": d.due_on.isoformat(),
                                "status": "open" if undone else d.status, "overdue": late,
                                "days_overdue": (as_of.date() - d.due_on).days if late else 0})
    return out


WATCH_HEADERS = ["编号", "学生", "学籍号", "学校", "班级", "列入依据", "帮扶责任人", "列入日期", "帮扶任务"]


def watch_export_rows(items: list[dict[str, Any]]) -> list[list[Any]]:
    def duty_text(d):
        state = {"done": "已办", "cancelled": "已取消"}.get(d["status"], "逾期" if d["overdue"] else "待办")
        return f"{d['label']}（{d['due_on']}，{state}）"
    return [[r["ref"], r["pupil"], r["student_no"], r["school"], r["class"],
             "；".join(f"{x.get('label', '')}：{x.get('why', '')}" for x in r["rules"]), r["helper"] or "（未指定）",
             r["since"], "；".join(duty_text(d) for d in r["duties"])] for r in items]


def watch_entry(session: Session, scope: Scope, entry_id: int, as_of: datetime, *,
                masked: bool = False) -> dict[str, Any] | None:
    """One watch entry (open or past) with its pupil, rules, helper, duties and history; None outside the scope."""
    from store.models.risk import WatchEvent

    q = (select(WatchEntry, Pupil.name, Pupil.student_no, Pupil.id_number, School.name, SchoolClass.name, Staff.name)
         .join(Pupil, Pupil.id == WatchEntry.pupil_id).join(School, School.id == WatchEntry.school_id)
         .join(SchoolClass, SchoolClass.id == WatchEntry.class_id).outerjoin(Staff, Staff.id == WatchEntry.helper_id)
         .where(WatchEntry.id == entry_id))
    found = session.execute(scope.apply(q, school_col=WatchEntry.school_id, class_col=WatchEntry.class_id)).first()
    if found is None:
        return None
    e, name, no, idn, school, klass, helper = found
    events = [{"event": ev.event, "actor": ev.actor, "at": ev.at, "reason": ev.reason} for ev in session.scalars(
        select(WatchEvent).where(WatchEvent.entry_id == entry_id).order_by(WatchEvent.at, WatchEvent.id))]
    cases = [{"id": cid, "ref": ref_label("case", cid), "state_label": CaseState(st).label, "opened_on": on}
             for cid, st, on in session.execute(select(Case.id, Case.state, Case.opened_on)
                                                .where(Case.pupil_id == e.pupil_id).order_by(Case.id.desc()).limit(20))]
    return {"entry_id": e.id, "ref": ref_label("watch", e.id), "pupil_id": e.pupil_id,
            "pupil": mask_name(name) if masked else name, "student_no": no, "id_number": mask_id(idn), "school": school,
            "class": klass, "helper": helper, "since": e.since.isoformat(), "until": e.until.isoformat() if e.until else None,
            "rules": e.rules or [], "policy": e.policy, "duties": _watch_duties(session, [e.id], as_of)[e.id],
            "events": events, "cases": cases}


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind)


__all__ = ["COUNT_CAP", "QUEUE_KINDS", "STUCK_SORTS", "CASE_SORTS", "Paging", "stuck_queue", "stuck_tabs", "stuck_owners",
           "case_queue", "watch_queue", "watch_entry", "ref_label", "record_href"]
