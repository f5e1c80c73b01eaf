"""What-if replay (issue 20 point 3): the qualification, nurture and routing
decisions of a rule set, taken again over a recorded history.

Pure. The recorded history (`Record`, read from the warehouse by
`pipeline.reporting.replay`) holds what came into the replayed stages from
outside them (enriched leads, attached activities, CRM outcomes as applied,
pull claims, SLA breaches) and when each recorded decision was taken. `replay`
drives the very domain functions the agents call (`requalify`, the nurture
steps through `once`, `route_lead`, `distribute_lead`, `claim_lead`, the SLA
clock), with the state each agent keeps, in recorded order, and with the
recorded times as "now": an input is replayed at the moment its recorded
decision was taken (found by the decision's derived event id), a timer at the
moment the recorded timer fired (found by lead, step and due time), so quiet
hours, business hours, daily caps and rep load see the times they saw then.
Where nothing was recorded (a decision only the candidate rules take), the
input's own time stands in.

Every call into the domain is in `Stages` below, one method per agent, so a
changed signature (rule versions, experiment variants) is adapted in one place.
"""

from __future__ import annotations

import heapq
import itertools
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from pipeline.domain.distribute.routing import (
    QueueState,
    RoutingRules,
    claim_lead,
    decision_scope,
    distribute_lead,
    per_cycle,
    repeat_decision,
    route_lead,
)
from pipeline.domain.distribute.sla import SlaClock, apply_outcome, record_breach
from pipeline.domain.nurture.policy import NurturePolicy
from pipeline.domain.nurture.programs import (
    NurtureState,
    Output,
    due_step,
    gate,
    input_id,
    on_activity,
    on_outcome,
    once,
    run_step,
)
from pipeline.domain.qualify import requalify as loop
from pipeline.domain.qualify.predictive import WinCounts
from pipeline.domain.qualify.scoring import ScoringModel, lead_features
from schemas.envelope import EventBase, derive_id
from schemas.lead import (
    ActivityRecorded,
    ClaimRequested,
    LeadAssigned,
    LeadEnriched,
    LeadHandedOff,
    LeadProfile,
    LeadQualified,
    LeadRouted,
    NurtureStepDue,
    OutcomeRecorded,
    SlaBreached,
    TouchScheduled,
)

Input = LeadEnriched | ActivityRecorded | OutcomeRecorded | ClaimRequested | SlaBreached
"""What the replayed stages received from outside them."""
REQUALIFY = "requalify"
"""The timer kind of interval re-qualification (nurture timers are named by their step)."""
TIMER_TOLERANCE = timedelta(seconds=5)
"""A replayed timer is the next recorded one of its lead and kind when their due times
are this close: the replayed "now" of the step that set it (an input's emission, where
its processing left no trace) may be earlier than the recorded one by the worker's lag."""
SENT_WITHIN = timedelta(seconds=1)
"""A recorded touch this soon after its step's timer fired was sent by that firing."""

FIELDS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "LeadQualified": (
        ("class", ("payload", "lead_class")),
        ("status", ("payload", "status")),
        ("decision", ("payload", "decision")),
        ("grade", ("payload", "grade")),
        ("cycle", ("payload", "cycle")),
    ),
    "LeadNurtured": (("entered", ("payload", "entered")), ("left", ("payload", "left"))),
    "LeadHandedOff": (("deal", ("payload", "deal")),),
    "TouchScheduled": (
        ("program", ("payload", "program")),
        ("step", ("payload", "step")),
        ("content", ("payload", "content_id")),
    ),
    "LeadAssigned": (
        ("queue", ("payload", "queue")),
        ("owner", ("payload", "owner", "rep_id")),
        ("rule", ("payload", "rule")),
        ("assigned_by", ("payload", "assigned_by")),
    ),
}
"""The decisions compared, and what of each: one field list for the recorded events
(read as JSON from the warehouse) and the replayed ones (read from the models)."""
CAUSES: dict[str, tuple[str, ...]] = {
    "LeadQualified": ("LeadHandedOff", "LeadNurtured"),  # the nurture gate
    "LeadHandedOff": ("LeadRouted",),  # route
    "LeadRouted": ("LeadAssigned", "LeadRouted"),  # distribute: an owner, or the overflow
}
"""The events a decision causes directly, by the event type of their id's derivation."""


@dataclass(frozen=True)
class RuleSet:
    """The rules a replay decides by, and the length of a nurture day and an SLA
    minute (shortened in tests and demos, as the worker's settings say)."""

    scoring: ScoringModel
    nurture: NurturePolicy
    routing: RoutingRules
    day: timedelta = timedelta(days=1)
    minute: timedelta = timedelta(minutes=1)


@dataclass(frozen=True)
class Decision:
    """One decision event, as compared: its id, lead, kind and the `FIELDS` values (JSON)."""

    event_id: uuid.UUID
    lead_id: uuid.UUID
    kind: str
    values: tuple[str, ...]

    def named(self) -> dict[str, str]:
        return dict(zip((name for name, _ in FIELDS[self.kind]), self.values, strict=True))


@dataclass
class Record:
    """What the warehouse recorded: the inputs, when each recorded decision was taken
    (event id → its `occurred_at`, which every stage sets to its "now"), when each
    recorded timer fired ((lead, kind) → [(due_at, emitted_at)]), the decisions, and
    its end."""

    inputs: list[Input] = field(default_factory=list)
    times: dict[uuid.UUID, datetime] = field(default_factory=dict)
    timers: dict[tuple[uuid.UUID, str], list[tuple[datetime, datetime]]] = field(
        default_factory=dict
    )
    decisions: list[Decision] = field(default_factory=list)
    end: datetime | None = None
    """The last recorded moment: nothing due later is replayed (the record stops there)."""
    kinds: dict[uuid.UUID, str] = field(default_factory=dict)
    """The event type of each timed event."""

    def settle(self) -> None:
        """No decision before the decision that caused it. A stage that re-sends an
        event after a redelivery stamps it anew under the same id, and the warehouse
        keeps one version: so a recorded time can be later than the decision it
        caused (a hand-off "before" its qualification). The cause is then dated by
        its effect (the effect's id follows from the cause's), effects first. Timers
        are put in order of due time."""
        for fired in self.timers.values():
            fired.sort()
        for kind in ("LeadRouted", "LeadHandedOff", "LeadQualified"):
            children = CAUSES[kind]
            for _ in range(8 if kind == "LeadRouted" else 1):  # overflow: routed → routed
                moved = False
                for event_id in [i for i, k in self.kinds.items() if k == kind]:
                    found = [self.times.get(derive_id(c, event_id)) for c in children]
                    earliest = min((t for t in found if t is not None), default=None)
                    if earliest is not None and earliest < self.times[event_id]:
                        self.times[event_id], moved = earliest, True
                if not moved:
                    break

    def now_of(self, event_id: uuid.UUID, otherwise: datetime) -> datetime:
        """When the decision `event_id` was taken, or `otherwise` if it never was."""
        return self.times.get(event_id, otherwise)

    def fired_at(
        self, lead_id: uuid.UUID, kind: str, due_at: datetime, after: datetime | None = None
    ) -> tuple[datetime, datetime]:
        """The first recorded timer of this lead and kind due after `after` (the last one
        matched), if due at about `due_at`: its due time (which names its event) and
        when it fired (never before `due_at`); `due_at` for both if none was recorded."""
        found = next(
            (t for t in self.timers.get((lead_id, kind), []) if after is None or t[0] > after),
            None,
        )
        if found is None or abs(found[0] - due_at) > TIMER_TOLERANCE:
            return due_at, due_at
        return found[0], max(found[1], due_at)


def decision_of(event: EventBase) -> Decision | None:
    """The compared fields of a decision event (None: not a compared decision)."""
    spec = FIELDS.get(event.event_type)
    if spec is None or (isinstance(event, TouchScheduled) and event.payload.purpose != "nurture"):
        return None
    lead_id = getattr(event, "lead_id", None)
    assert isinstance(lead_id, uuid.UUID)
    values = tuple(orjson.dumps(_path(event, path)).decode() for _, path in spec)
    return Decision(event.event_id, lead_id, event.event_type, values)


def _path(obj: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        obj = getattr(obj, name, None)
    return obj


class Stages:
    """The replayed agents: qualify, nurture, route/SLA and distribute, each with the
    state its agent keeps (per lead, per queue), and one queue of what is due next."""

    def __init__(self, rules: RuleSet, record: Record, keep: bool = False) -> None:
        self.rules, self.record = rules, record
        self.emitted: list[EventBase] | None = [] if keep else None
        """With `keep`: every event the stages emit, at the replayed time (`simulate`)."""
        self.leads: dict[uuid.UUID, loop.LeadState] = {}
        self.nurture: dict[uuid.UUID, NurtureState] = {}
        self.requalify_due: dict[uuid.UUID, datetime] = {}
        self.step_due: dict[uuid.UUID, tuple[datetime, str]] = {}
        self.wins = WinCounts()
        self.lead_queues: dict[str, str] = {}
        self.clocks: dict[uuid.UUID, SlaClock] = {}
        self.queues: dict[str, QueueState] = {}
        self.decided: dict[str, LeadAssigned | LeadRouted | None] = {}
        self.waiting: dict[str, list[LeadRouted]] = {}
        self.decisions: list[Decision] = []
        self.matched: dict[tuple[uuid.UUID, str], datetime] = {}
        """The due time of the last recorded timer fired, per lead and kind."""
        self._due: list[tuple[datetime, int, Callable[[datetime], None]]] = []
        self._order = itertools.count()

    # --- the clock --------------------------------------------------------------

    def at(self, when: datetime, step: Callable[[datetime], None]) -> None:
        """Run `step(now)` at `when` (in order of time, then of scheduling)."""
        heapq.heappush(self._due, (when, next(self._order), step))

    def run(self) -> None:
        end = self.record.end
        while self._due:
            when, _, step = heapq.heappop(self._due)
            if end is not None and when > end:
                return  # past the record's end (the heap holds nothing earlier)
            step(when)

    def _after(self, event_id: uuid.UUID, now: datetime, step: Callable[[datetime], None]) -> None:
        """The next stage's step for an event: at the recorded time of its decision
        `event_id`, never before the event itself."""
        self._after_first([event_id], now, step)

    def _after_first(
        self, event_ids: Iterable[uuid.UUID], now: datetime, step: Callable[[datetime], None]
    ) -> None:
        """The same, for a step that took one of several decisions (the first recorded)."""
        times = self.record.times
        at = min((times[i] for i in event_ids if i in times), default=now)
        self.at(max(at, now), step)

    def _decided(self, event: EventBase | None, now: datetime) -> None:
        if event is None:
            return
        if self.emitted is not None:  # stamped with the replayed time, not the wall clock
            self.emitted.append(event.model_copy(update={"occurred_at": now, "emitted_at": now}))
        found = decision_of(event)
        if found is not None:
            self.decisions.append(found)

    def _timer(self, event: EventBase) -> None:
        if self.emitted is not None:
            self.emitted.append(event)

    # --- the recorded inputs ------------------------------------------------------

    def receive(self, event: Input) -> None:
        """Schedule a recorded input for every replayed agent that reads it."""
        now_of = self.record.now_of
        if isinstance(event, LeadEnriched):
            at = now_of(derive_id("LeadQualified", str(event.event_id)), event.emitted_at)
            self.at(at, lambda now: self.qualify(event.lead_id, loop.from_enriched(event), now))
        elif isinstance(event, ActivityRecorded):
            change = loop.from_activity(event, self.rules.scoring)
            at = now_of(derive_id("LeadQualified", change.input_id), event.emitted_at)
            self.at(at, lambda now: self.qualify(event.lead_id, change, now))
            at = now_of(derive_id("LeadNurtured", event.event_id), event.emitted_at)
            self.at(at, lambda now: self.nurture_step(event, on_activity, now))
        elif isinstance(event, OutcomeRecorded):
            applied = event.payload
            change = loop.from_outcome(applied.outcome, applied.cycle)
            self.at(event.emitted_at, lambda now: self.sla_outcome(event))
            at = now_of(derive_id("LeadQualified", change.input_id), event.emitted_at)
            self.at(at, lambda now: self.qualify(event.lead_id, change, now))
            at = now_of(derive_id("LeadNurtured", input_id(event)), event.emitted_at)
            self.at(at, lambda now: self.nurture_step(event, on_outcome, now))
        elif isinstance(event, ClaimRequested):
            at = now_of(derive_id("claimed", event.event_id), event.emitted_at)
            self.at(at, lambda now: self.claim(event, now))
        else:
            self.at(event.emitted_at, lambda now: self.sla_breach(event, now))

    # --- qualify (agents/qualify.py) ---------------------------------------------

    def predict(self, profile: LeadProfile) -> float | None:
        model = self.rules.scoring
        return self.wins.win_probability(lead_features(profile, model), model.predictive)

    def qualify(
        self,
        lead_id: uuid.UUID,
        change: loop.Change,
        now: datetime,
        fired_at: datetime | None = None,
    ) -> None:
        model = self.rules.scoring
        before = self.leads.get(lead_id) or loop.LeadState()
        # the learned win probability only where it can decide (else it is left out:
        # a replayed qualification compares by class, status, decision and grade)
        predict = self.predict if model.predictive.sales_above is not None else None
        state, event = loop.requalify(lead_id, before, change, model, now, predict)
        self.leads[lead_id] = state
        if fired_at is not None or state.due_at != before.due_at:
            self._requalify_timer(lead_id, loop.next_requalification(state.due_at, fired_at))
        if before.outcome is None and state.outcome is not None and state.profile is not None:
            self.wins = self.wins.learn(lead_features(state.profile, model), state.outcome == "won")
        if event is not None:
            self._decided(event, now)
            gated = (derive_id(kind, event.event_id) for kind in ("LeadHandedOff", "LeadNurtured"))
            self._after_first(gated, now, lambda at: self.nurture_step(event, gate, at))

    def _requalify_timer(self, lead_id: uuid.UUID, due_at: datetime | None) -> None:
        if due_at is None:
            self.requalify_due.pop(lead_id, None)
            return
        self.requalify_due[lead_id] = due_at
        last = self.matched.get((lead_id, REQUALIFY))
        named, fires = self.record.fired_at(lead_id, REQUALIFY, due_at, last)
        self.at(fires, lambda now: self._requalify_fired(lead_id, due_at, named, now))

    def _requalify_fired(
        self, lead_id: uuid.UUID, due_at: datetime, named: datetime, now: datetime
    ) -> None:
        """`named`: the due time of the recorded timer it is (its event's id)."""
        if self.requalify_due.get(lead_id) != due_at:
            return  # set anew since: the agent's timer would not fire this one
        fired = loop.due(lead_id, named, now)
        assert fired is not None
        del self.requalify_due[lead_id]
        self.matched[(lead_id, REQUALIFY)] = named
        self._timer(fired)
        at = self.record.now_of(derive_id("LeadQualified", str(fired.event_id)), now)
        self.at(
            max(at, now), lambda at: self.qualify(lead_id, loop.from_timer(fired), at, fired.due_at)
        )

    # --- nurture (agents/nurture.py) ---------------------------------------------

    def nurture_step(
        self,
        message: LeadQualified | ActivityRecorded | OutcomeRecorded | NurtureStepDue,
        step: Callable[..., tuple[NurtureState, Output | None]],
        now: datetime,
    ) -> None:
        policy, day = self.rules.nurture, self.rules.day
        lead_id = message.lead_id
        before = self.nurture.get(lead_id) or NurtureState()
        state, event = once(before, input_id(message), lambda s: step(message, s, policy, now, day))
        self.nurture[lead_id] = state
        if isinstance(message, NurtureStepDue) or state != before:
            self._step_timer(lead_id, state)
        self._decided(event, now)
        if isinstance(event, LeadHandedOff):
            handoff = event
            self._after(
                derive_id("LeadRouted", handoff.event_id), now, lambda at: self.route(handoff, at)
            )

    def _step_timer(self, lead_id: uuid.UUID, state: NurtureState) -> None:
        pending = state.next_due
        if pending is None or pending.due_at is None:
            self.step_due.pop(lead_id, None)
            return
        due_at, key = pending.due_at, pending.key
        self.step_due[lead_id] = (due_at, key)
        named, fires = self.record.fired_at(lead_id, key, due_at, self.matched.get((lead_id, key)))
        program, run, number = key.rsplit(":", 2)
        touch = derive_id("TouchScheduled", lead_id, program, run, number)
        sent = self.record.times.get(touch)
        if sent is not None and fires <= sent <= fires + SENT_WITHIN:
            fires = sent  # the touch this firing sent: its own "now"
        self.at(fires, lambda now: self._step_fired(lead_id, due_at, key, named, now))

    def _step_fired(
        self, lead_id: uuid.UUID, due_at: datetime, key: str, named: datetime, now: datetime
    ) -> None:
        if self.step_due.get(lead_id) != (due_at, key):
            return
        fired = due_step(lead_id, named, key, now)
        assert fired is not None
        del self.step_due[lead_id]
        self.matched[(lead_id, key)] = named
        self._timer(fired)
        self.nurture_step(fired, run_step, now)

    # --- route and the SLA clock (agents/sla.py) ----------------------------------

    def route(self, handoff: LeadHandedOff, now: datetime) -> None:
        key = per_cycle(str(handoff.lead_id), handoff.payload.qualification.cycle)
        won_by = None
        clock = self.clocks.get(handoff.lead_id) if handoff.payload.deal == "upsell" else None
        if clock is not None and clock.outcome == "won":
            won_by = clock.assigned.payload.owner.rep_id
        routed = route_lead(
            handoff, self.rules.routing, earlier_queue=self.lead_queues.get(key), won_by=won_by
        )
        self.lead_queues.setdefault(key, routed.payload.queue)
        self._decided(routed, now)
        self._to_queue(routed, now)

    def _to_queue(self, routed: LeadRouted, now: datetime) -> None:
        """On to `distribute` when it took its decision: an owner, or on to the overflow."""
        self._after_first(
            (derive_id(kind, routed.event_id) for kind in ("LeadAssigned", "LeadRouted")),
            now,
            lambda at: self.assign(routed, at),
        )

    def start_clock(self, assigned: LeadAssigned) -> None:
        running = self.clocks.get(assigned.lead_id)
        if running is None or running.replaced_by(assigned):
            self.clocks[assigned.lead_id] = SlaClock(assigned=assigned)

    def sla_outcome(self, recorded: OutcomeRecorded) -> None:
        """A closing outcome frees the replayed owner's load (`leads.releases`)."""
        clock = self.clocks.get(recorded.lead_id)
        if clock is None:
            return
        clock, released = apply_outcome(clock, recorded.payload.outcome)
        self.clocks[recorded.lead_id] = clock
        if released is not None:
            name = released.payload.queue
            self.queues[name] = self._queue(name).release(released.payload.owner.rep_id)

    def sla_breach(self, breached: SlaBreached, now: datetime) -> None:
        """A recorded breach on the replayed clock; the second reassigns the lead."""
        clock = self.clocks.get(breached.lead_id)
        if clock is None:
            return
        clock, reassignment = record_breach(clock, breached, self.rules.routing, self.rules.minute)
        self.clocks[breached.lead_id] = clock
        if reassignment is not None:
            self._decided(reassignment, now)
            self._to_queue(reassignment, now)

    # --- distribute (agents/distribute.py) ---------------------------------------

    def _queue(self, name: str) -> QueueState:
        return self.queues.get(name) or QueueState()

    def assign(self, routed: LeadRouted, now: datetime) -> None:
        rules = self.rules.routing
        scope = decision_scope(routed)
        key = f"{scope}:{routed.payload.reassignment}"
        earlier = self.decided.get(key)
        if earlier:
            owner = self.decided.get(f"{scope}:owner")
            latest = owner if isinstance(owner, LeadAssigned) else None
            self._assigned(repeat_decision(earlier, routed, latest), now, key=None)
            return
        name = routed.payload.queue
        if rules.queues[name].mode == "pull" and routed.payload.reassign_from is None:
            line = self.waiting.setdefault(name, [])
            if not any(w.lead_id == routed.lead_id for w in line):
                line.append(routed)
            return
        result, after = distribute_lead(routed, rules, self._queue(name), now, self.rules.minute)
        self.queues[name] = after
        self._assigned(result, now, key)

    def claim(self, request: ClaimRequested, now: datetime) -> None:
        name = request.queue
        line = self.waiting.get(name, [])
        result, _, after = claim_lead(
            request, line[:1], self.rules.routing, self._queue(name), now, self.rules.minute
        )
        if isinstance(result, str):
            return
        self.waiting[name] = line[1:]
        self.queues[name] = after
        self._assigned(result, now, f"{decision_scope(result)}:0")

    def _assigned(self, result: LeadAssigned | LeadRouted, now: datetime, key: str | None) -> None:
        """Keep a new decision (`key`), then on to its owner's clock or the next queue."""
        if key is not None:
            self.decided[key] = result
            if isinstance(result, LeadAssigned):
                self.decided[f"{decision_scope(result)}:owner"] = result
        self._decided(result, now)
        if isinstance(result, LeadRouted):
            self._to_queue(result, now)
            return
        self.start_clock(result)


def replay(record: Record, rules: RuleSet) -> list[Decision]:
    """The decisions `rules` take over the recorded inputs, in the order taken."""
    return _run(Stages(rules, record), record.inputs).decisions


def simulate(inputs: list[Input], rules: RuleSet) -> list[EventBase]:
    """Every event the stages would emit for these inputs, with no record to follow,
    stamped with the time it was taken: a history to record (benchmarks, tests)."""
    emitted = _run(Stages(rules, Record(), keep=True), inputs).emitted
    assert emitted is not None
    return emitted


def _run(stages: Stages, inputs: list[Input]) -> Stages:
    for event in inputs:
        stages.receive(event)
    stages.run()
    return stages


# --- what changed ------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    """A decision that is not the same in two runs (`before` or `after` None: only in one)."""

    lead_id: uuid.UUID
    kind: str
    event_id: uuid.UUID
    before: Mapping[str, str] | None
    after: Mapping[str, str] | None


def differences(before: Iterable[Decision], after: Iterable[Decision]) -> list[Difference]:
    """Decisions present in one run only, or with other values, by event id."""
    old = {d.event_id: d for d in before}
    new = {d.event_id: d for d in after}
    found = []
    for event_id in [*old, *(i for i in new if i not in old)]:
        a, b = old.get(event_id), new.get(event_id)
        if a is not None and b is not None and a.values == b.values:
            continue
        some = a or b
        assert some is not None
        found.append(
            Difference(
                some.lead_id,
                some.kind,
                event_id,
                a.named() if a else None,
                b.named() if b else None,
            )
        )
    return found


@dataclass(frozen=True)
class LeadSummary:
    """Where one lead ended up: its latest class, grade, status and decision, the
    programs it entered, whether it became MQL and SQL, its latest queue and owner."""

    lead_class: str | None = None
    grade: str | None = None
    status: str | None = None
    decision: str | None = None
    programs: tuple[str, ...] = ()
    mql: bool = False
    sql: bool = False
    queue: str | None = None
    owner: str | None = None


COMPARED = ("lead_class", "grade", "status", "decision", "programs", "queue", "owner")
"""What a lead's change is told by (`mql`/`sql` go into the funnel)."""


def summaries(decisions: Iterable[Decision]) -> dict[uuid.UUID, LeadSummary]:
    """Each lead's standing after its decisions (the funnel's definition of MQL and
    SQL: the warehouse's lead state counts a lead MQL once qualified MQL or SQL or sent
    to sales, SQL once SQL or sent to sales)."""
    found: dict[uuid.UUID, dict[str, Any]] = {}
    for d in decisions:
        lead = found.setdefault(d.lead_id, {"programs": ()})
        values = {k: orjson.loads(v) for k, v in d.named().items()}
        if d.kind == "LeadQualified":
            to_sales = values["decision"] == "sales"
            lead.update(
                lead_class=values["class"],
                grade=values["grade"],
                status=values["status"],
                decision=values["decision"],
            )
            lead["mql"] = lead.get("mql", False) or to_sales or values["status"] in ("mql", "sql")
            lead["sql"] = lead.get("sql", False) or to_sales or values["status"] == "sql"
        elif d.kind == "LeadNurtured":
            entered = [p for p in values["entered"] if p not in lead["programs"]]
            lead["programs"] = (*lead["programs"], *entered)
        elif d.kind == "LeadAssigned":
            lead.update(queue=values["queue"], owner=values["owner"])
    return {lead: LeadSummary(**fields) for lead, fields in found.items()}


def changed(
    before: Mapping[uuid.UUID, LeadSummary], after: Mapping[uuid.UUID, LeadSummary]
) -> dict[uuid.UUID, list[tuple[str, Any, Any]]]:
    """Per lead that is treated differently: (what, before, after) for each change."""
    found: dict[uuid.UUID, list[tuple[str, Any, Any]]] = {}
    nothing = LeadSummary()
    for lead in sorted({*before, *after}, key=str):
        a, b = before.get(lead, nothing), after.get(lead, nothing)
        changes = [(k, getattr(a, k), getattr(b, k)) for k in COMPARED]
        changes = [c for c in changes if c[1] != c[2]]
        if changes:
            found[lead] = changes
    return found
