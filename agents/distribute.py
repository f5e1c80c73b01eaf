"""Distribute: hand-offs are routed to a queue, then to exactly one rep; the
SLA clock runs until the CRM reports contact, and closed leads free capacity.

`route` picks the queue and re-keys the lead by it; `distribute` consumes that
queue-keyed topic, so one partition owns each queue's state (fairness credit,
load, daily counts: a Faust table, durable through its changelog). The
decision per lead and queue is kept too, so a redelivered hand-off re-emits
the same decision instead of assigning a second owner.

`sla-start`, `crm-feedback` and `sla-breached` share a clock table keyed by
lead (their topics are lead-keyed and co-partitioned) and the time each
clock next asks for an alarm (`sla-due`, `pipeline/worker/timers.py`); a timer scans
those times, reads a clock only once it is due, reminds owners before the
deadline (`leads.reminders`) and escalates overdue leads to the queue's
manager (`leads.escalations`); after the second breach `sla-breached` sends
the lead back to its queue for another rep. Closing outcomes go back
re-keyed by queue (`leads.releases`), where `release` frees the owner's load
in the queue's own partition.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, TypeVar

import faust
import structlog
from faust.web import Request, Response, View
from pydantic import BaseModel, Field, SecretStr, TypeAdapter

from pipeline.config.settings import Settings
from pipeline.config.topics import TopicSpec
from pipeline.domain.distribute.routing import (
    QueueState,
    claim_lead,
    distribute_lead,
    queue_report,
    repeat_decision,
    route_lead,
)
from pipeline.domain.distribute.sla import (
    HeldOutcome,
    SlaClock,
    alarm,
    apply_outcome,
    expire,
    held,
    hold,
    misrouted,
    next_alarm,
    record_breach,
    recorded,
)
from pipeline.domain.messages import Position
from pipeline.worker.http import caller
from pipeline.worker.services import Services
from pipeline.worker.stage import Stage
from pipeline.worker.timers import DueTimers
from schemas.envelope import EventBase, derive_id, utcnow
from schemas.inputs import CrmOutcome
from schemas.lead import (
    ClaimRequested,
    LeadAssigned,
    LeadHandedOff,
    LeadQualified,
    LeadReleased,
    LeadRouted,
    OutcomeWaitExpired,
    SlaBreached,
)
from schemas.rejected import MessageRejected

log = structlog.get_logger("leadflow.agent")
SCAN_SECONDS = 1.0
M = TypeVar("M", bound=BaseModel)
DECISION: TypeAdapter[LeadAssigned | LeadRouted] = TypeAdapter(
    Annotated[LeadAssigned | LeadRouted, Field(discriminator="event_type")]
)


def claim_keys(settings: Settings) -> dict[str, SecretStr]:
    return settings.claim_keys


def register(stage: Stage, _services: Services) -> None:
    """Routing, distribution, claims, the SLA clock and releases."""
    rules = stage.rules.routing
    minute = timedelta(seconds=stage.settings.sla_minute_seconds)
    json: faust.Schema = faust.Schema(key_serializer="json", value_serializer="json")

    def table(name: str, spec: TopicSpec) -> faust.types.TableT[str, Any]:
        return stage.app.Table(name, partitions=spec.partitions, schema=json)

    lead_queues = table("routing-lead-queue", stage.topics.handoff)  # lead → first queue
    queues = table("routing-queue-state", stage.topics.routing)
    decided = table("routing-decision", stage.topics.routing)
    waiting = table("routing-waiting", stage.topics.routing)  # pull queues: queue → leads
    clocks = table("sla-clock", stage.topics.sales_ready)
    early = table("sla-early-outcomes", stage.topics.feedback)  # lead → [HeldOutcome]
    known = table("sla-known-leads", stage.topics.qualified)  # lead → its sales cycle
    sent: set[str] = set()
    outcome_wait = timedelta(seconds=stage.settings.outcome_wait_seconds)
    waits = DueTimers(  # when the first held outcome of a lead has waited long enough
        stage,
        "sla-early-due",
        stage.topics.feedback.partitions,
        SCAN_SECONDS,
        lambda lead, when, _tag, now: OutcomeWaitExpired.fired(uuid.UUID(lead), when, now),
    )

    def sla_alarm(lead: str, _when: datetime, _tag: str, now: datetime) -> EventBase | None:
        """The reminder or breach a due clock asks for; this process sends each once.

        A repeat after a crash has the same event_id, so consumers can drop it;
        `sla-breached` records a breach from the escalations topic (a timer may
        not write to a table).
        """
        raw = clocks.get(lead)
        event = alarm(SlaClock.model_validate_json(raw), now, rules, minute) if raw else None
        if event is None or str(event.event_id) in sent:
            return None
        sent.add(str(event.event_id))
        return event

    alarms = DueTimers(
        stage, "sla-due", stage.topics.sales_ready.partitions, SCAN_SECONDS, sla_alarm
    )

    def held_entry(stored: dict[str, Any] | str) -> HeldOutcome:
        return held(stored, utcnow(), outcome_wait)

    def set_clock(lead: str, clock: SlaClock) -> None:
        clocks[lead] = clock.model_dump_json()
        alarms.set(lead, next_alarm(clock, rules, minute))

    def queue_state(name: str) -> QueueState:
        return QueueState.model_validate(queues.get(name) or {})

    def waiting_in(name: str) -> list[LeadRouted]:
        return [LeadRouted.model_validate_json(raw) for raw in waiting.get(name) or []]

    def assign(routed: LeadRouted) -> LeadAssigned | LeadRouted | None:
        scope = decision_scope(routed)
        key = f"{scope}:{routed.payload.reassignment}"
        earlier = decided.get(key)
        if earlier is not None:
            latest = decided.get(f"{scope}:owner")
            owner = LeadAssigned.model_validate_json(latest) if latest else None
            return repeat_decision(DECISION.validate_json(earlier), routed, owner)
        name = routed.payload.queue
        if rules.queues[name].mode == "pull" and routed.payload.reassign_from is None:
            parked = waiting_in(name)
            if all(w.lead_id != routed.lead_id for w in parked):
                waiting[name] = [w.model_dump_json() for w in [*parked, routed]]
            log.info("routing.waiting", lead_id=str(routed.lead_id), queue=name)
            return None  # until a rep claims it
        state = queue_state(name)
        result, after = distribute_lead(routed, rules, state, utcnow(), minute)
        queues[name] = after.model_dump(mode="json")
        keep(key, result)
        return result

    def keep(key: str, decision: LeadAssigned | LeadRouted) -> None:
        """The decision, and (for an owner) the lead's current owner in this queue."""
        decided[key] = decision.model_dump_json()
        if isinstance(decision, LeadAssigned):
            decided[f"{decision_scope(decision)}:owner"] = decided[key]

    def claim(request: ClaimRequested) -> LeadAssigned | None:
        """The oldest lead waiting in a pull queue goes to the rep who claims it."""
        done = decided.get(f"claim:{request.event_id}")
        if done is not None:  # a redelivered claim: the same answer
            return DECISION.validate_json(done) if done else None  # type: ignore[return-value]
        name = request.queue
        state = queue_state(name)
        result, rest, after = claim_lead(request, waiting_in(name), rules, state, utcnow(), minute)
        if isinstance(result, str):
            log.info("routing.claim_unfilled", queue=name, rep_id=request.rep_id, why=result)
            decided[f"claim:{request.event_id}"] = ""
            return None
        waiting[name] = [w.model_dump_json() for w in rest]
        queues[name] = after.model_dump(mode="json")
        decided[f"claim:{request.event_id}"] = result.model_dump_json()
        keep(f"{decision_scope(result)}:0", result)
        return result

    async def start_clock(assigned: LeadAssigned, _: Received) -> None:
        lead = str(assigned.lead_id)
        running = clocks.get(lead)
        if running is not None:
            if SlaClock.model_validate_json(running).replaced_by(assigned):
                set_clock(lead, SlaClock(assigned=assigned))  # a new owner or cycle, a new clock
            return
        set_clock(lead, SlaClock(assigned=assigned))
        held = early.pop(lead, [])
        if held:
            waits.set(lead, None)
        for entry in held:  # outcomes that overtook the assignment
            await apply(CrmOutcome.model_validate_json(held_entry(entry).raw))

    async def feedback(outcome: CrmOutcome, received: Received) -> None:
        """The one consumer of crm.feedback: each outcome lands on its body's lead."""
        lead = str(outcome.lead_id)
        if misrouted(received.key, outcome):
            # In another lead's partition: sent again under its own lead's key.
            await stage.channel(stage.topics.feedback).send(key=lead.encode(), value=received.raw)
            log.info("sla.feedback_rekeyed", lead_id=lead, at=received.at.ref)
            return
        if lead in clocks:
            await apply(outcome)
            return
        # The CRM was faster than `sla-start`, the lead was never handed to sales, or it
        # is unknown: held for the clock, for a while; recorded at once on a known lead.
        entry = hold(received.raw, received.at, utcnow(), outcome_wait)
        if lead in known:
            await stage.emit(recorded(outcome, known[lead]))
            entry = entry.model_copy(update={"recorded": True})
        held = [*(held_entry(h) for h in early.get(lead, [])), entry]
        early[lead] = [h.model_dump(mode="json") for h in held]
        waits.set(lead, min(h.until for h in held))
        log.info("sla.feedback_held", lead_id=lead, outcome=outcome.outcome)

    async def apply(outcome: CrmOutcome) -> None:
        lead = str(outcome.lead_id)
        before = SlaClock.model_validate_json(clocks[lead])
        clock, released = apply_outcome(before, outcome)
        set_clock(lead, clock)
        log.info("sla.feedback", lead_id=lead, outcome=outcome.outcome, status=clock.status)
        await stage.emit(recorded(outcome, before.cycle, before))
        if released is not None:
            await stage.emit(released)

    async def qualified(event: LeadQualified, _: Received) -> None:
        """A lead is known from its qualification on: outcomes held for it are recorded."""
        lead = str(event.lead_id)
        known[lead] = event.payload.cycle
        if lead not in early:
            return
        held = [held_entry(h) for h in early[lead]]
        for entry in held:
            if not entry.recorded:
                await stage.emit(recorded(CrmOutcome.model_validate_json(entry.raw), known[lead]))
        early[lead] = [
            h.model_copy(update={"recorded": True}).model_dump(mode="json") for h in held
        ]

    async def wait_over(expired: OutcomeWaitExpired, _: Received) -> None:
        """Held outcomes whose wait ran out: rejected if their lead never became known."""
        lead = str(expired.lead_id)
        held = [held_entry(h) for h in early.get(lead, [])]
        kept, rejections = expire(held, expired.due_at, "crm-feedback")
        if kept:
            early[lead] = [h.model_dump(mode="json") for h in kept]
        elif lead in early:
            del early[lead]
        waits.set(lead, min((h.until for h in kept), default=None))
        for rejection in rejections:
            log.info("sla.feedback_unknown_lead", lead_id=lead, at=rejection.payload.offset)
            await stage.emit(rejection)

    async def release(released: LeadReleased, _: Received) -> None:
        name = released.payload.queue
        state = queue_state(name)
        queues[name] = state.release(released.payload.owner.rep_id).model_dump(mode="json")

    def route(handoff: LeadHandedOff) -> LeadRouted:
        """Checked by lead before the re-key by queue: a lead keeps the queue it was
        first routed to, so no other queue's partition can give it a second owner."""
        lead = str(handoff.lead_id)
        cycle = handoff.payload.qualification.cycle
        key = per_cycle(lead, cycle)  # each sales cycle routed afresh
        won_by = None
        if handoff.payload.deal == "upsell" and lead in clocks:  # co-partitioned by lead
            clock = SlaClock.model_validate_json(clocks[lead])
            won_by = clock.assigned.payload.owner.rep_id if clock.outcome == "won" else None
        routed = route_lead(handoff, rules, earlier_queue=lead_queues.get(key), won_by=won_by)
        if key not in lead_queues:
            lead_queues[key] = routed.payload.queue
        return routed

    stage.decoding_agent(stage.topics.handoff, "route", route)
    stage.decoding_agent(stage.topics.routing, "distribute", assign)
    stage.decoding_agent(stage.topics.claims, "claim", claim)
    consume(stage, stage.topics.sales_ready, "sla-start", LeadAssigned, start_clock)
    consume(stage, stage.topics.feedback, "crm-feedback", CrmOutcome, feedback)
    consume(stage, stage.topics.outcome_waits, "outcome-wait", OutcomeWaitExpired, wait_over)
    # nurture rejects what cannot be read of leads.qualified
    consume(stage, stage.topics.qualified, "known-lead", LeadQualified, qualified, rejects=False)
    consume(stage, stage.topics.releases, "release", LeadReleased, release)

    @stage.page("/v1/queues", needs_tables=True)
    class Queues(View):
        """Load, caps and availability per rep (the queues this worker owns)."""

        async def get(self, request: Request) -> Response:
            states = {q: QueueState.model_validate(v) for q, v in queues.items()}
            return self.json(queue_report(rules, states, utcnow()))

    claims = stage.channel(stage.topics.claims)

    @stage.page("/v1/queues/{queue}/claim", keys=claim_keys)
    class Claim(View):
        """Pull: a rep (identified by their X-Api-Key) claims the oldest waiting lead.

        202 once the claim is in Kafka; the lead arrives on leads.sales-ready
        with `assigned_by: claimed` (nothing, if no lead waits).
        """

        async def post(self, request: Request, queue: str) -> Response:
            rep_id = caller(request)
            if queue not in rules.queues:
                return self.json({"error": f"no queue {queue!r}"}, status=404)
            if rules.queues[queue].mode != "pull":
                return self.json({"error": f"queue {queue!r} assigns by push"}, status=409)
            if rep_id not in {r.id for r in rules.queues[queue].reps}:
                return self.json({"error": f"{rep_id} is no rep of {queue!r}"}, status=403)
            now = utcnow()
            key = request.headers.get("Idempotency-Key")
            claim_id = derive_id("claim", queue, rep_id, key) if key else uuid.uuid4()
            event = ClaimRequested(
                event_id=claim_id, occurred_at=now, emitted_at=now, queue=queue, rep_id=rep_id
            )
            await (await claims.send(key=event.key(), value=event.model_dump_json().encode()))
            return self.json({"claim_id": str(claim_id), "queue": queue}, status=202)

    async def breached(event: SlaBreached, _: Received) -> None:
        lead = str(event.lead_id)
        if lead not in clocks:
            return
        clock = SlaClock.model_validate_json(clocks[lead])
        clock, reassignment = record_breach(clock, event, rules, minute)
        set_clock(lead, clock)
        if reassignment is not None:
            log.info("sla.reassign", lead_id=lead, owner=event.payload.owner.rep_id)
            await stage.emit(reassignment)

    consume(stage, stage.topics.escalations, "sla-breached", SlaBreached, breached)


def decision_scope(event: LeadRouted | LeadAssigned) -> str:
    """What a routing decision is kept under: lead and queue, and the sales cycle after
    the first (a returning lead is decided afresh; within a cycle it keeps its owner)."""
    if isinstance(event, LeadRouted):
        queue, cycle = event.payload.queue, event.payload.handoff.qualification.cycle
    else:
        queue, cycle = event.payload.queue, event.payload.qualification.cycle
    return per_cycle(f"{event.lead_id}:{queue}", cycle)


def per_cycle(key: str, cycle: int) -> str:
    """A lead's state key for one sales cycle: the first keeps the key it always had
    (state written before cycles existed still applies), later ones are their own."""
    return key if cycle == 1 else f"{key}:c{cycle}"


@dataclass(frozen=True)
class Received:
    """The Kafka side of a consumed message: its key, bytes and position."""

    key: bytes | None
    raw: bytes
    at: Position


def consume(
    stage: Stage,
    source: TopicSpec,
    name: str,
    model: type[M],
    handle: Callable[[M, Received], Awaitable[None]],
    rejects: bool = True,
) -> None:
    """An agent that only updates state; what it cannot decode goes to leads.rejected
    (unless another agent on the topic rejects it: `rejects=False`)."""

    async def run(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            at = Position(message.topic, message.partition, message.offset)
            decoded = stage.decode(model, source, event.value, at, name)
            if isinstance(decoded, MessageRejected):
                if rejects:
                    await stage.emit(decoded)
            else:
                await handle(decoded, Received(message.key, event.value or b"", at))

    run.__name__ = name
    stage.app.agent(stage.channel(source), name=name)(run)
