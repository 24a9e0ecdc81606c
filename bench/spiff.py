"""The SpiffWorkflow peer: the default ladder as a BPMN process with boundary timers.

One process instance per case. Each ladder step is a user task (the step's duty) with
* an interrupting boundary timer at the next step's day (09:00 of that school day) → next step,
* a non-interrupting boundary timer at the duty's deadline → a script task marking it overdue.
Timer expressions call ``school_day_at(opened_on, n, hour, minute)``, a school-day function put
into the script engine's environment (the n-th school day of the absence, from the same calendar
the store uses). Instances are stored as Spiff's JSON serialisation, one row per case, with the
time of their next timer in an indexed column so a sweep loads only the instances that are due
(more than Spiff itself offers, and kinder to it than loading every instance).

The process specification is stored once, not in every instance (issue 20): Spiff's default
``BpmnWorkflowConverter.to_dict`` puts the whole spec (and the subprocess specs) into each
workflow's dictionary — 24 of 27.5 kB per case here. SpiffWorkflow's documentation
("Optimizing Serializations", the SQLite serializer of spiff-example-cli) replaces the workflow
converter in the serializer's configuration so that an instance holds its state only and the spec
lives in a table of its own; ``StateOnlyWorkflowConverter`` does that (``spec_dict`` is what goes
into that table, once; ``Ladder.loads`` restores instances against the spec parsed once per
process). ``Ladder(spec_once=False)`` keeps the default serializer, for comparison.

SpiffWorkflow compares timers with ``datetime.now()``; the benchmark sets that clock to the
simulated morning (``Clock``), as a test would freeze time.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from uuid import UUID

from SpiffWorkflow.bpmn.parser import BpmnParser
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine, TaskDataEnvironment
from SpiffWorkflow.bpmn.serializer import DEFAULT_CONFIG, BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, WorkflowConverter
from SpiffWorkflow.bpmn.specs.event_definitions import timer as spiff_timer
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

from store.calendars import calendars

# (task id, escalation day of the *next* step, [(duty id, school days after entry, hour, minute)])
# — the default policy (deploy/policies/default.toml): days 1…5, the duties and their deadlines.
STEPS = [
    ("absent", 1, []),
    ("family_contacted", 2, [("record_phone_call", 0, 17, 0)]),
    ("visited", 3, [("record_home_visit", 0, 18, 0)]),
    ("collective_visit", 4, [("record_collective_visit", 0, 18, 0), ("assign_helpers", 1, 17, 0)]),
    ("township_notice", 5, [("serve_township_notice", 1, 17, 0)]),
    ("judicial_notice", None, [("serve_legal_notice", 2, 17, 0)]),
]
DAY_OF = {name: i for i, (name, _, _) in enumerate(STEPS)}  # step i is entered on school day i (absent: day 1)


def bpmn_xml() -> str:
    parts, flows = [], []
    parts.append('<bpmn:startEvent id="start"/>')
    flows.append(("start", "absent"))
    for i, (name, next_day, duties) in enumerate(STEPS):
        parts.append(f'<bpmn:userTask id="{name}" name="{name}"/>')
        entry_day = max(1, i)
        if next_day is not None:
            nxt = STEPS[i + 1][0]
            parts.append(
                f'<bpmn:boundaryEvent id="t_{name}" attachedToRef="{name}" cancelActivity="true">'
                f'<bpmn:timerEventDefinition><bpmn:timeDate xsi:type="bpmn:tFormalExpression">'
                f'school_day_at(opened_on, {next_day}, 9, 0)</bpmn:timeDate></bpmn:timerEventDefinition>'
                f'</bpmn:boundaryEvent>')
            flows.append((f"t_{name}", nxt))
        else:
            parts.append('<bpmn:endEvent id="end"/>')
            flows.append((name, "end"))
        for duty, after, hh, mm in duties:
            parts.append(
                f'<bpmn:boundaryEvent id="d_{duty}" attachedToRef="{name}" cancelActivity="false">'
                f'<bpmn:timerEventDefinition><bpmn:timeDate xsi:type="bpmn:tFormalExpression">'
                f'school_day_at(opened_on, {entry_day + after}, {hh}, {mm})</bpmn:timeDate></bpmn:timerEventDefinition>'
                f'</bpmn:boundaryEvent>')
            parts.append(f'<bpmn:scriptTask id="o_{duty}"><bpmn:script>overdue = overdue + ["{duty}"]</bpmn:script>'
                         f'</bpmn:scriptTask>')
            parts.append(f'<bpmn:endEvent id="e_{duty}"/>')
            flows.append((f"d_{duty}", f"o_{duty}"))
            flows.append((f"o_{duty}", f"e_{duty}"))
    body = "".join(parts) + "".join(
        f'<bpmn:sequenceFlow id="f{n}" sourceRef="{a}" targetRef="{b}"/>' for n, (a, b) in enumerate(flows))
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="defs" targetNamespace="baoxue">'
            f'<bpmn:process id="dropout_case" isExecutable="true">{body}</bpmn:process></bpmn:definitions>')


class Clock(datetime):
    """Spiff's timers ask ``datetime.now(timezone.utc)``: answer with the simulated time."""

    current = datetime(2026, 1, 1, tzinfo=timezone.utc)

    @classmethod
    def now(cls, tz=None):
        return cls.current if tz else cls.current.replace(tzinfo=None)


spiff_timer.datetime = Clock  # the module's own name for datetime; parsing helpers still work on Clock


def set_clock(at: datetime) -> None:
    Clock.current = at.replace(tzinfo=timezone.utc)


class StateOnlyWorkflowConverter(BpmnWorkflowConverter):
    """A workflow's state without its spec: the converter of spiff-example-cli's SQLite serializer
    (``super(BpmnWorkflowConverter, self).to_dict``: tasks, data, events; no ``spec`` nor
    ``subprocess_specs``), restored against the spec the application keeps (``spec_of``)."""

    spec_of: dict = {}  # process id → the parsed (or once-restored) BpmnProcessSpec

    def to_dict(self, workflow):
        dct = WorkflowConverter.to_dict(self, workflow)
        dct["spec_name"] = workflow.spec.name
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct):
        """``BpmnWorkflowConverter.from_dict`` with the kept spec instead of a restored one."""
        workflow = self.target_class(self.spec_of[dct.pop("spec_name")], {}, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


class Ladder:
    """The parsed spec, a script engine with the school-day function, and the serializer."""

    def __init__(self, calendar_key: str = "default", *, spec_once: bool = True):
        cal = calendars()[calendar_key]
        numbered = cal.numbered_days()
        self._seq = {d.isoformat(): n for d, n in numbered}
        self._day = {n: d for d, n in numbered}

        def school_day_at(opened_on: str, n: int, hour: int, minute: int) -> str:
            d = self._day[self._seq[opened_on] + n - 1]
            return datetime(d.year, d.month, d.day, hour, minute).isoformat()

        parser = BpmnParser()
        parser.add_bpmn_str(bpmn_xml().encode())
        self.spec = parser.get_spec("dropout_case")
        self.engine = PythonScriptEngine(environment=TaskDataEnvironment({"school_day_at": school_day_at}))
        self.spec_once = spec_once
        if spec_once:
            config = dict(DEFAULT_CONFIG)
            config[BpmnWorkflow] = type("Converter", (StateOnlyWorkflowConverter,), {"spec_of": {}})
            registry = BpmnWorkflowSerializer.configure(config)
            self.serializer = BpmnWorkflowSerializer(registry)
            self._converter = config[BpmnWorkflow]
            self._converter.spec_of[self.spec.name] = self.spec
        else:
            self.serializer = BpmnWorkflowSerializer()
        self.next_timer = school_day_at

    def new(self, opened_on: date) -> BpmnWorkflow:
        wf = BpmnWorkflow(self.spec, script_engine=self.engine)
        start = next(t for t in wf.get_tasks(state=TaskState.READY))
        start.data.update({"opened_on": opened_on.isoformat(), "overdue": []})
        wf.do_engine_steps()
        return wf

    def step_of(self, wf: BpmnWorkflow) -> str:
        for t in wf.get_tasks(state=TaskState.READY):
            if t.task_spec.name in DAY_OF:
                return t.task_spec.name
        return "end"

    def sweep(self, wf: BpmnWorkflow) -> None:
        wf.refresh_waiting_tasks()
        wf.do_engine_steps()

    def spec_json(self) -> str:
        """The process specification as Spiff serialises it: stored once (a row of ``spiff_specs``)."""
        import json

        return json.dumps(self.serializer.to_dict(self.spec))

    def use_stored_spec(self, text: str) -> None:
        """Restore instances against the stored spec (restored once per process, as an application
        that reads its spec table at start would)."""
        import json

        spec = self.serializer.from_dict(json.loads(text))
        self._converter.spec_of[spec.name] = spec
        self.spec = spec

    def dumps(self, wf: BpmnWorkflow) -> str:
        return self.serializer.serialize_json(wf)

    def loads(self, text: str) -> BpmnWorkflow:
        wf = self.serializer.deserialize_json(text)
        wf.script_engine = self.engine
        return wf

    def next_due(self, wf: BpmnWorkflow) -> str:
        """When this instance next needs a sweep: its step's escalation timer."""
        step = self.step_of(wf)
        if step == "end" or STEPS[DAY_OF[step]][1] is None:
            return "9999-12-31T00:00:00"
        opened = wf.get_tasks(state=TaskState.READY)[0].data["opened_on"]
        return self.next_timer(opened, STEPS[DAY_OF[step]][1], 9, 0)
