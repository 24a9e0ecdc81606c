"""A synthetic jurisdiction at any size (10 k → 10 M pupils), deterministic from a seed.

The ORM generator in ``demo.synthetic`` writes a demo county row by row; this one writes a
province: the same kinds of rows (counties, townships, villages, schools, 9 grades × 2 classes of
45 pupils, head teachers and the staff and officials the policies name, pupils with GB 11643 ID
numbers, guardians) with ids assigned here and streamed to the database with ``COPY`` (PostgreSQL)
or ``executemany`` in one transaction with ``synchronous=OFF`` (SQLite).

Cases follow an absence model:

* new unexcused absences start at about 0.5 % of pupils a school day (``ABSENCE_RATE``; used for
  the morning-check file of the intake figure, :func:`morning_check_file`);
* spell lengths have a heavy tail, P(length ≥ k) = k^-1.3 (59 % of spells last one day, 12 %
  reach day 5, 5 % day 10) for returned cases and for the cases due on the day of the run;
* the cases still open and not due are the long absences, P(length ≥ k) ∝ k^-0.8 up to the
  start of the school calendar;
* closed (returned) cases carry their history, and 30 % of them belong to a pupil who relapsed
  and has an open case now (``relapse_of``);
* every case's history (``case_events``) and duties (``duties``: done, overdue or still open,
  as yesterday's sweep left them) match its policy — schools use ``default`` (70 %),
  ``wutaishan`` (20 %, gaps between steps: day 3 → 6 → 11) and ``jingbian`` (10 %).

A population is pinned by ``open_cases`` and ``due`` (cases whose next escalation falls on the
run's day, ``AS_OF``): benchmarks state their scale as "1 M open cases, 100 k due". Document
requests and attendance marks of past days are not generated (the advance only inserts there).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sqlite3
import time
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import make_url

from machines.identity import id_check_digit
from machines.policy import Policy
from machines.states import CaseState
from store.calendars import calendars
from store.policy_files import policy_files, read_policy_file
from demo.synthetic import COUNTY_ROLES, GIVEN, RELATIONS, SCHOOL_STAFF_ROLES, SURNAMES, TOWNSHIP_ROLES, VILLAGES

from .common import analyze, backend_of, create_db, emit, exists_db, log, sqlite_path

GENERATOR_VERSION = 6  # 4: cases.opened_seq; 5: index ix_case_events_event_at (schema from the models); 6: cases.special_groups
AS_OF = datetime(2026, 11, 23, 9, 30)  # a Monday, after the morning check (晨检) and its 09:00 cut-off
CALENDAR = "default"
ABSENCE_RATE = 0.005
PUPILS_PER_CLASS, CLASSES_PER_GRADE, GRADES = 45, 2, 9
CLASSES_PER_SCHOOL = CLASSES_PER_GRADE * GRADES
SCHOOLS_PER_TOWNSHIP, TOWNSHIPS_PER_COUNTY, VILLAGES_PER_TOWNSHIP = 10, 8, 4
POLICY_MIX = ["default"] * 7 + ["wutaishan"] * 2 + ["jingbian"]  # by school number mod 10
REASONS = ["family", "study", "psychological", "poverty", "working_away", "disaster", "illness", "other", "unknown"]
REASON_WEIGHTS = [18, 30, 8, 10, 12, 1, 6, 5, 10]
GRADE_NAMES = "一二三四五六七八九"
CHUNK = 20_000


@dataclass(frozen=True)
class Population:
    pupils: int
    open_cases: int = 0
    due: int = 0
    closed: int | None = None  # returned cases in the history; default open_cases // 2
    seed: int = 1

    def __post_init__(self):
        if self.open_cases > self.pupils:
            raise ValueError("at most one open case per pupil")
        if self.due > self.open_cases:
            raise ValueError("due ≤ open_cases")

    @property
    def n_closed(self) -> int:
        return self.open_cases // 2 if self.closed is None else self.closed

    def key(self) -> str:
        # the schema's revision too: a population made before a migration is not reused after it
        from store.schema import head_revision

        return hashlib.sha1(json.dumps([GENERATOR_VERSION, head_revision(), asdict(self)]).encode()).hexdigest()[:12]

    def label(self) -> str:
        return f"{_n(self.pupils)} pupils, {_n(self.open_cases)} open, {_n(self.due)} due"


def _n(x: int) -> str:
    return f"{x // 1_000_000} M" if x >= 1_000_000 and x % 1_000_000 == 0 else (
        f"{x // 1000} k" if x >= 1000 and x % 1000 == 0 else str(x))


# -- the calendar and the policies as plain lists --------------------------------------------
class Days:
    """School days numbered 1…n (the materialised ``school_days`` table), as strings."""

    def __init__(self):
        cal = calendars()[CALENDAR]
        numbered = cal.numbered_days()
        self.day = {n: d for d, n in numbered}
        self.seq = {d: n for d, n in numbered}
        self.E = self.seq[AS_OF.date()]
        self._ds: dict[int, str] = {}
        self._dt: dict[tuple[int, int, int], str] = {}

    def ds(self, n: int) -> str:
        s = self._ds.get(n)
        if s is None:
            s = self._ds[n] = self.day[n].isoformat()
        return s

    def dt(self, n: int, hour: int, minute: int = 0) -> str:
        k = (n, hour, minute)
        s = self._dt.get(k)
        if s is None:
            s = self._dt[k] = f"{self.day[n].isoformat()} {hour:02d}:{minute:02d}:00.000000"
        return s


def load_policies() -> dict[str, Policy]:
    return {p.name: p for p in (read_policy_file(f)[0] for f in policy_files())}


# -- organisation rows -------------------------------------------------------------------------
class Org:
    """Ids and owners of everything above the pupil, computed from the pupil count."""

    def __init__(self, pupils: int, seed: int):
        self.pupils = pupils
        self.n_classes = max(1, math.ceil(pupils / PUPILS_PER_CLASS))
        self.n_schools = math.ceil(self.n_classes / CLASSES_PER_SCHOOL)
        self.n_townships = math.ceil(self.n_schools / SCHOOLS_PER_TOWNSHIP)
        self.n_counties = math.ceil(self.n_townships / TOWNSHIPS_PER_COUNTY)
        self.seed = seed

    def special_groups(self, p: int) -> str:
        """Pupil ``p``'s special groups (JSON text): 12 % left-behind, 4 % poor, 1 % disabled, from
        the pupil and the seed alone, so a case's copy needs no pupil row."""
        r = ((p + 1) * 2654435761 + self.seed * 40503) % 4294967296 / 4294967296
        return "[]" if r > 0.17 else ('["left_behind"]' if r < 0.12 else ('["poor"]' if r < 0.16 else '["disabled"]'))

    # ids: counties 1..C, townships C+1.., villages after; staff in blocks
    def county_id(self, c: int) -> int:
        return c + 1

    def township_id(self, t: int) -> int:
        return self.n_counties + t + 1

    def village_id(self, t: int, v: int) -> int:
        return self.n_counties + self.n_townships + t * VILLAGES_PER_TOWNSHIP + v + 1

    def school_policy(self, s: int) -> str:
        return POLICY_MIX[s % 10]

    def class_school(self, k: int) -> int:
        return k // CLASSES_PER_SCHOOL

    def pupil_class(self, p: int) -> int:  # p: 0-based pupil index
        return p // PUPILS_PER_CLASS

    # staff: county staff, then township staff, then school staff, then head teachers
    def staff_county(self, c: int) -> int:
        return c + 1

    def staff_township(self, t: int, role: str) -> int:
        return self.n_counties + t * len(TOWNSHIP_ROLES) + TOWNSHIP_ROLES.index(role) + 1

    def staff_school(self, s: int, role: str) -> int:
        return (self.n_counties + self.n_townships * len(TOWNSHIP_ROLES) + s * len(SCHOOL_STAFF_ROLES)
                + SCHOOL_STAFF_ROLES.index(role) + 1)

    def staff_head_teacher(self, k: int) -> int:
        return (self.n_counties + self.n_townships * len(TOWNSHIP_ROLES) + self.n_schools * len(SCHOOL_STAFF_ROLES)
                + k + 1)

    def owner(self, pupil: int, role: str) -> int | None:
        """Who owes a duty of ``role`` for this pupil (as store.cases.context.OwnerResolver resolves it)."""
        k = self.pupil_class(pupil)
        s = self.class_school(k)
        if role == "head_teacher":
            return self.staff_head_teacher(k)
        if role in SCHOOL_STAFF_ROLES:
            return self.staff_school(s, role)
        t = s // SCHOOLS_PER_TOWNSHIP
        if role in TOWNSHIP_ROLES:
            return self.staff_township(t, role)
        if role in COUNTY_ROLES:
            return self.staff_county(t // TOWNSHIPS_PER_COUNTY)
        return None

    def rows(self, rng: random.Random):
        names = _name_pool(rng)
        phone = lambda: f"1{rng.choice('3578')}{rng.randrange(10**9):09d}"
        tn = ["城关镇", "柳河镇", "石桥乡", "杏林镇", "东坡乡", "南山镇", "白水乡", "青石镇"]
        jur, staff = [], []
        for c in range(self.n_counties):
            jur.append((self.county_id(c), f"P{self.seed}C{c + 1}", f"第{c + 1}县", "county", None))
            staff.append((self.staff_county(c), rng.choice(names), "education_bureau", phone(), None, self.county_id(c)))
        for t in range(self.n_townships):
            c = t // TOWNSHIPS_PER_COUNTY
            jur.append((self.township_id(t), f"P{self.seed}C{c + 1}T{t + 1}", tn[t % 8] + str(t + 1), "township",
                        self.county_id(c)))
            for r in TOWNSHIP_ROLES:
                staff.append((self.staff_township(t, r), rng.choice(names), r, phone(), None, self.township_id(t)))
        for t in range(self.n_townships):
            for v in range(VILLAGES_PER_TOWNSHIP):
                jur.append((self.village_id(t, v), f"P{self.seed}T{t + 1}V{v + 1}",
                            VILLAGES[(t * 4 + v) % len(VILLAGES)] + "村", "village", self.township_id(t)))
        schools, classes = [], []
        for s in range(self.n_schools):
            t = s // SCHOOLS_PER_TOWNSHIP
            first_pupil = s * CLASSES_PER_SCHOOL * PUPILS_PER_CLASS
            enrolled = max(0, min(self.pupils - first_pupil, CLASSES_PER_SCHOOL * PUPILS_PER_CLASS))
            schools.append((s + 1, f"P{self.seed}S{s + 1:06d}", f"{tn[t % 8]}第{s + 1}学校", self.township_id(t),
                            CALENDAR, self.school_policy(s), enrolled, False))
            for r in SCHOOL_STAFF_ROLES:
                staff.append((self.staff_school(s, r), rng.choice(names), r, phone(), s + 1, None))
        for k in range(self.n_classes):
            s = self.class_school(k)
            g = (k % CLASSES_PER_SCHOOL) // CLASSES_PER_GRADE + 1
            n = k % CLASSES_PER_GRADE + 1
            staff.append((self.staff_head_teacher(k), rng.choice(names), "head_teacher", phone(), s + 1, None))
            classes.append((k + 1, s + 1, g, f"{GRADE_NAMES[g - 1]}年级({n})班", self.staff_head_teacher(k)))
        return jur, schools, staff, classes


def _name_pool(rng: random.Random) -> list[str]:
    given = [GIVEN[i:i + 2] for i in range(0, len(GIVEN) - 1, 2)]
    pool = {s + g for s in SURNAMES for g in given} | {s + g[0] for s in SURNAMES for g in given}
    return sorted(pool)


def pupil_rows(org: Org, rng: random.Random, start: int, stop: int):
    """Pupils ``start``…``stop-1`` (0-based) and one guardian each."""
    names = _name_pool(rng)
    pupils, guardians = [], []
    for p in range(start, stop):
        k = org.pupil_class(p)
        s = org.class_school(k)
        t = s // SCHOOLS_PER_TOWNSHIP
        c = t // TOWNSHIPS_PER_COUNTY
        g = (k % CLASSES_PER_SCHOOL) // CLASSES_PER_GRADE + 1
        idx_in_county = p - c * TOWNSHIPS_PER_COUNTY * SCHOOLS_PER_TOWNSHIP * CLASSES_PER_SCHOOL * PUPILS_PER_CLASS
        # unique: region per county, birth day from the index, 3-digit sequence
        birth = date(2026 - 6 - g, 1, 1) + timedelta(days=(idx_in_county // 1000) % 365)
        first17 = f"{110000 + c % 890000:06d}{birth:%Y%m%d}{idx_in_county % 1000:03d}"
        name = names[rng.randrange(len(names))]
        groups = org.special_groups(p)
        v = org.village_id(t, rng.randrange(VILLAGES_PER_TOWNSHIP))
        pupils.append((p + 1, f"G{org.seed:02d}{p + 1:010d}", name, first17 + id_check_digit(first17),
                       "男" if p % 2 else "女", birth.isoformat(), s + 1, k + 1, v, f"第{t + 1}镇{v}村{p % 12 + 1}组", groups, 1))
        left_behind = groups == '["left_behind"]'
        rel = RELATIONS[2 + p % 3] if left_behind else RELATIONS[p % 2]
        guardians.append((p + 1, p + 1, name[0] + names[rng.randrange(len(names))][1:], rel,
                          f"1{3 + p % 7}{rng.randrange(10**9):09d}"))
    return pupils, guardians


# -- cases ---------------------------------------------------------------------------------------
class _Step:
    """One policy step with everything a generated row needs precomputed."""

    def __init__(self, policy: Policy, step):
        self.day = step.day
        self.state = step.state.value
        self.reason = f"连续{step.day}个上学日无故缺勤：{step.label}"
        self.payload = json.dumps({"policy": policy.key, "day": step.day})
        self.duties = [(d.action.value, d.role, d.due_school_days, d.due_time.hour, d.due_time.minute)
                       for d in step.duties]


class CaseWriter:
    """Builds the rows of one case (case, history, duties) consistent with its policy."""

    def __init__(self, org: Org, days: Days, policies: dict[str, Policy], rng: random.Random):
        self.org, self.days, self.policies, self.rng = org, days, policies, rng
        self.steps = {name: [_Step(p, s) for s in p.steps] for name, p in policies.items()}
        self.event_id = 0
        self.duty_id = 0
        self.prev_sweep = days.dt(days.E - 1, 9, 30)
        self.cases, self.events, self.duties = [], [], []
        self._reasons = self.rng.choices(REASONS, REASON_WEIGHTS, k=4096)

    def flush(self):
        out = (self.cases, self.events, self.duties)
        self.cases, self.events, self.duties = [], [], []
        return out

    def add(self, case_id: int, pupil: int, opened: int, streak_done: int, *, returned_on: int | None = None,
            relapse_of: int | None = None) -> None:
        """A case opened on school day ``opened`` whose escalations up to ``streak_done`` days happened.

        ``returned_on``: the school day the pupil came back (case closed), or None (still open).
        """
        d, org, rnd = self.days, self.org, self.rng.random
        k = org.pupil_class(pupil)
        s = org.class_school(k)
        pname = org.school_policy(s)
        policy = self.policies[pname]
        minute = int(rnd() * 60)
        created = d.dt(opened, 8, minute)
        events = self.events
        eid = self.event_id
        eid += 1
        events.append((eid, case_id, 1, "open", None, "absent", "duty_teacher", created, created,
                       "晨检发现未请假不到校（复发）" if relapse_of else "晨检发现未请假不到校",
                       f'{{"policy": "{policy.key}", "opened_on": "{d.ds(opened)}", "relapse_of": '
                       f'{relapse_of if relapse_of else "null"}}}', None))
        seq, state = 1, "absent"
        closed_at = d.dt(returned_on, 8, minute) if returned_on else None
        reached = [st for st in self.steps[pname] if st.day <= streak_done]
        prev_sweep, duties = self.prev_sweep, self.duties
        for st in reached:
            entry = opened + st.day - 1
            seq += 1
            eid += 1
            sweep = d.dt(entry, 9, 30)
            events.append((eid, case_id, seq, "escalate", state, st.state, "system", d.dt(entry, 9), sweep,
                           st.reason, st.payload, None))
            state = st.state
            is_current = returned_on is None and st is reached[-1]
            for action, role, due_days, hh, mm in st.duties:
                self.duty_id += 1
                due_seq = entry + due_days
                due = d.dt(due_seq, hh, mm) if due_seq in d.day else "2099-01-01 00:00:00.000000"
                r = rnd()
                if closed_at is not None and due >= closed_at:
                    row = ("cancelled", None, None)
                elif due <= prev_sweep:
                    if r < (0.5 if is_current else 0.8):
                        row = ("done", d.dt(due_seq, hh - 2, mm), None)
                    else:
                        row = ("overdue", None, _next_morning(d, due_seq))
                elif r < 0.6 or returned_on:
                    row = ("open", None, None)
                else:
                    row = ("done", sweep, None)
                duties.append((self.duty_id, case_id, st.state, action, role, org.owner(pupil, role), due, row[0],
                               sweep, row[1], 0, row[2]))
        if returned_on is not None:
            seq += 1
            eid += 1
            events.append((eid, case_id, seq, "mark_returned", state, "returned", "duty_teacher", closed_at, closed_at,
                           "晨检到校，复学", "{}", f"intake:{case_id}"))
        self.event_id = eid
        self.cases.append((case_id, pupil + 1, s + 1, k + 1, "returned" if returned_on is not None else state, seq,
                           policy.name, policy.version, CALENDAR, d.ds(opened), opened,
                           d.ds(returned_on) if returned_on else None, self._reasons[case_id % 4096], None, relapse_of,
                           org.special_groups(pupil), created,
                           closed_at if returned_on else d.dt(opened + max(0, streak_done - 1), 9, 30)))


def _next_morning(d: Days, seq: int) -> str:
    return d.dt(seq + 1, 9, 30) if seq + 1 in d.day else d.dt(seq, 23, 0)


def _pareto(rng: random.Random, alpha: float, xm: float = 1.0) -> float:
    return xm * (1.0 - rng.random()) ** (-1.0 / alpha)


def case_plan(pop: Population, org: Org, days: Days, policies: dict[str, Policy], rng: random.Random):
    """(case_id, pupil, opened, streak_done, returned_on, relapse_of) of every case, closed ones first."""
    E = days.E
    open_pupils = rng.sample(range(pop.pupils), pop.open_cases) if pop.open_cases else []
    plan_open = []
    for i, p in enumerate(open_pupils):
        policy = policies[org.school_policy(org.class_school(org.pupil_class(p)))]
        step_days = [s.day for s in policy.steps]
        if i < pop.due:
            # due today: today's streak reaches the next step's day; heavy tail over the steps
            weights = [d ** -1.3 for d in step_days]
            s = rng.choices(step_days, weights)[0]
        else:
            while True:  # a long absence whose next step (if any) is not today
                s = min(E, int(_pareto(rng, 0.8, 2.0)))
                if s not in step_days and s > 1:
                    break
        plan_open.append([p, E - s + 1, s - 1])
    # returned cases: 30 % are earlier spells of pupils who relapsed (open now)
    closed = []
    relapse_budget = int(pop.n_closed * 0.3)
    for j in range(pop.n_closed):
        length = min(60, int(_pareto(rng, 1.3)))
        if j < relapse_budget and plan_open:
            i = rng.randrange(len(plan_open))
            p, opened_open = plan_open[i][0], plan_open[i][1]
            last_start = opened_open - length - 1
            if last_start >= 1 and len(plan_open[i]) == 3:
                start = rng.randint(max(1, last_start - 40), last_start)
                closed.append((p, start, length, i))
                plan_open[i].append(None)  # mark: has a previous case
                continue
        p = rng.randrange(pop.pupils)
        start = rng.randint(1, max(1, E - length - 1))
        closed.append((p, start, length, None))
    rows, case_id = [], 0
    relapse_of: dict[int, int] = {}
    for p, start, length, i in closed:
        case_id += 1
        rows.append((case_id, p, start, length, start + length, None))
        if i is not None:
            relapse_of[i] = case_id
    for i, (p, opened, done, *_) in enumerate(plan_open):
        case_id += 1
        rows.append((case_id, p, opened, done, None, relapse_of.get(i)))
    return rows


# -- writers -------------------------------------------------------------------------------------
COLUMNS = {
    "jurisdictions": "id, code, name, level, parent_id",
    "schools": "id, code, name, township_id, calendar_key, policy_name, enrolled, boarding",
    "staff": "id, name, role, phone, school_id, jurisdiction_id",
    "classes": "id, school_id, grade, name, head_teacher_id",
    "pupils": "id, student_no, name, id_number, gender, birth_date, school_id, class_id, village_id, address, "
              "special_groups, enrolled",
    "guardians": "id, pupil_id, name, relation, phone",
    "cases": "id, pupil_id, school_id, class_id, state, version, policy_name, policy_version, calendar_key, opened_on, opened_seq, "
             "closed_on, reason, outcome_reason, relapse_of, special_groups, created_at, updated_at",
    "case_events": "id, case_id, seq, event, from_state, to_state, actor, at, recorded_at, reason, payload, "
                   "idempotency_key",
    "duties": "id, case_id, step, action, role, owner_id, due_at, status, created_at, done_at, done_late, overdue_at",
}
SERIAL_TABLES = list(COLUMNS)


class SqliteWriter:
    """executemany in one transaction, no journal, no fsync; explicit indexes built after the load."""

    def __init__(self, url: str):
        self.con = sqlite3.connect(sqlite_path(url), isolation_level=None, check_same_thread=False)
        self.con.execute("PRAGMA journal_mode=OFF")
        self.con.execute("PRAGMA synchronous=OFF")
        self.con.execute("PRAGMA cache_size=-400000")
        names = ",".join(f"'{t}'" for t in COLUMNS)
        self.indexes = self.con.execute(
            f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ({names})"
        ).fetchall()
        self.con.execute("BEGIN")
        for name, _ in self.indexes:
            self.con.execute(f'DROP INDEX "{name}"')

    def write(self, table: str, rows: list[tuple]) -> None:
        if rows:
            marks = ",".join("?" * len(rows[0]))
            self.con.executemany(f"INSERT INTO {table} ({COLUMNS[table]}) VALUES ({marks})", rows)

    def close(self) -> None:
        for _, sql in self.indexes:
            self.con.execute(sql)
        self.con.execute("COMMIT")
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.close()


class PgWriter:
    def __init__(self, url: str):
        import psycopg

        u = make_url(url)
        self.con = psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database)
        self.con.execute("SET synchronous_commit = off")
        # the rows are consistent by construction: skip the per-row foreign-key triggers during COPY
        self.con.execute("SET session_replication_role = replica")

    def write(self, table: str, rows: list[tuple]) -> None:
        if rows:
            with self.con.cursor() as cur, cur.copy(f"COPY {table} ({COLUMNS[table]}) FROM STDIN") as cp:
                for r in rows:
                    cp.write_row(r)

    def close(self) -> None:
        for t in SERIAL_TABLES:
            self.con.execute(f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), coalesce((SELECT max(id) FROM {t}), 0) + 1, false)")
        self.con.commit()
        self.con.close()


class Pipelined:
    """Writes in a thread while the next chunk is generated (the driver releases the GIL on I/O)."""

    def __init__(self, inner):
        import queue
        import threading

        self.inner, self.q, self.error = inner, queue.Queue(maxsize=3), None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while (item := self.q.get()) is not None:
            if self.error is None:
                try:
                    self.inner.write(*item)
                except BaseException as exc:  # re-raised in close()
                    self.error = exc

    def write(self, table, rows):
        if self.error:
            raise self.error
        self.q.put((table, rows))

    def close(self):
        self.q.put(None)
        self.thread.join()
        if self.error:
            raise self.error
        self.inner.close()


def writer_for(url: str):
    inner = SqliteWriter if backend_of(url) == "sqlite" else PgWriter
    return Pipelined(inner(url))


def init_schema(url: str) -> None:
    from store.bootstrap import init_store
    from store.db import make_engine

    eng = make_engine(url)
    init_store(eng, now=datetime(2025, 8, 20, 8, 0))
    eng.dispose()


def meta_key(url: str) -> str | None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    eng = create_engine(url, poolclass=NullPool)
    try:
        with eng.connect() as c:
            return c.scalar(text("SELECT value FROM bench_meta WHERE key = 'population'"))
    except Exception:
        return None
    finally:
        eng.dispose()


def build(url: str, pop: Population, *, reuse: bool = False, quiet: bool = False) -> dict:
    """Create the database at ``url`` holding ``pop``. Returns counts and timings."""
    if reuse and exists_db(url) and meta_key(url) == pop.key():
        return {"reused": True}
    t0 = time.perf_counter()
    create_db(url)
    init_schema(url)
    t_schema = time.perf_counter() - t0
    rng = random.Random(pop.seed)
    org, days, policies = Org(pop.pupils, pop.seed), Days(), load_policies()
    w = writer_for(url)
    counts: dict[str, int] = {}

    def put(table, rows):
        w.write(table, rows)
        counts[table] = counts.get(table, 0) + len(rows)

    t1 = time.perf_counter()
    jur, schools, staff, classes = org.rows(rng)
    for table, rows in (("jurisdictions", jur), ("schools", schools), ("staff", staff), ("classes", classes)):
        put(table, rows)
    for start in range(0, pop.pupils, 100_000):
        pupils, guardians = pupil_rows(org, rng, start, min(pop.pupils, start + 100_000))
        put("pupils", pupils)
        put("guardians", guardians)
        if not quiet and start and start % 1_000_000 == 0:
            log(f"  pupils {start:,}")
    t_pupils = time.perf_counter() - t1
    t2 = time.perf_counter()
    cw = CaseWriter(org, days, policies, rng)
    plan = case_plan(pop, org, days, policies, rng)
    for n, (case_id, p, opened, done, returned_on, relapse_of) in enumerate(plan, start=1):
        cw.add(case_id, p, opened, done, returned_on=returned_on, relapse_of=relapse_of)
        if n % CHUNK == 0:
            for table, rows in zip(("cases", "case_events", "duties"), cw.flush()):
                put(table, rows)
    for table, rows in zip(("cases", "case_events", "duties"), cw.flush()):
        put(table, rows)
    t_cases = time.perf_counter() - t2
    w.close()
    t3 = time.perf_counter()
    analyze(url)
    _write_meta(url, pop)
    t_analyze = time.perf_counter() - t3
    total = time.perf_counter() - t0
    return {"reused": False, "counts": counts, "seconds": {"schema": t_schema, "org_pupils": t_pupils,
                                                          "cases": t_cases, "analyze": t_analyze, "total": total}}


def _write_meta(url: str, pop: Population) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    eng = create_engine(url, poolclass=NullPool)
    with eng.begin() as c:
        c.execute(text("CREATE TABLE IF NOT EXISTS bench_meta (key VARCHAR(32) PRIMARY KEY, value VARCHAR(200))"))
        c.execute(text("DELETE FROM bench_meta"))
        c.execute(text("INSERT INTO bench_meta VALUES ('population', :k), ('label', :l)"), {"k": pop.key(), "l": pop.label()})
    eng.dispose()


# -- the morning-check file of one county ------------------------------------------------------
def morning_check_file(url: str, seed: int, day: date) -> list[tuple[str, str, str, str]]:
    """(school code, 学籍号, status, reason) for every pupil of the population on ``day``.

    Pupils with an open case: 80 % still absent, 15 % back (returns), 5 % bring a sick note.
    The others: 0.5 % new unexcused absences (relapses where the pupil had a case before),
    1 % on leave, the rest present.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    eng = create_engine(url, poolclass=NullPool)
    with eng.connect() as c:
        pupils = c.execute(text("SELECT p.student_no, s.code, p.id FROM pupils p JOIN schools s ON s.id = p.school_id "
                                "ORDER BY p.id")).all()
        open_ids = set(c.scalars(text("SELECT pupil_id FROM cases WHERE state NOT IN ('returned','excused','escalated')")))
    eng.dispose()
    rng = random.Random(seed * 7919 + day.toordinal())
    rows = []
    for student_no, code, pid in pupils:
        r = rng.random()
        if pid in open_ids:
            status = "缺勤" if r < 0.80 else ("到校" if r < 0.95 else "病假")
        else:
            status = "缺勤" if r < ABSENCE_RATE else ("事假" if r < ABSENCE_RATE + 0.01 else "到校")
        reason = rng.choices(REASONS, REASON_WEIGHTS)[0] if status == "缺勤" else ""
        rows.append((code, student_no, status, reason))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("--pupils", type=int, default=10_000)
    ap.add_argument("--open", type=int, default=0)
    ap.add_argument("--due", type=int, default=0)
    ap.add_argument("--closed", type=int, default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--figure", action="store_true", help="print the generator's throughput as a figure")
    a = ap.parse_args()
    pop = Population(a.pupils, a.open, a.due, a.closed, a.seed)
    res = build(a.url, pop, reuse=a.reuse)
    log(json.dumps(res, default=str))
    if a.figure and not res["reused"]:
        rows = sum(res["counts"].values())
        db = backend_of(a.url)
        emit(f"generate {pop.label()} [{db}]: rows written", rows / res["seconds"]["total"], "rows/s",
             db=db, rows=rows, seconds=res["seconds"]["total"], pupils_per_s=pop.pupils / res["seconds"]["org_pupils"])


if __name__ == "__main__":
    main()
