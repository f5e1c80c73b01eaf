"""SLA: the lead-keyed half of distribution. A hand-off is routed to a queue, then the
SLA clock runs until the CRM reports contact; outcomes find their lead.

Every topic here is keyed by lead and co-partitioned, so one partition owns a
lead's routing memory and clock. `route` checks by lead before the re-key by
queue (a lead keeps the queue it was first routed to; an upsell goes to the rep
whose clock says they won it). `sla-start`, `crm-feedback` and `sla-breached`
share the clock table and the time each clock next asks for an alarm
(`sla-due`, `pipeline/worker/timers.py`); a timer scans those times, reads a
clock only once it is due, reminds owners before the deadline
(`leads.reminders`) and escalates overdue leads to the queue's manager
(`leads.escalations`); `sla-reminded` and `sla-breached` record both on the
clock, which moves its alarm on; after the second breach `sla-breached` sends
the lead back to its queue for another rep. Closing outcomes go on re-keyed by queue
(`leads.releases`) to `agents.distribute`. `crm-feedback` is the one reader of
crm.feedback: an outcome that overtook its lead's assignment is held for a
while (`sla-early-outcomes`, `sla-early-due`), recorded once the lead is known
(`known-lead`) and rejected if it never becomes known.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import structlog

from pipeline.domain.distribute.routing import RoutingRules, per_cycle, route_lead
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
from pipeline.worker.services import Services
from pipeline.worker.stage import Emitted, Outgoing, Received, Stage
from pipeline.worker.tables import TypedTable, json_text
from pipeline.worker.timers import DueTimers
from schemas.envelope import EventBase, utcnow
from schemas.inputs import CrmOutcome
from schemas.lead import (
    LeadAssigned,
    LeadHandedOff,
    LeadQualified,
    LeadRouted,
    OutcomeWaitExpired,
    SlaBreached,
    SlaReminderDue,
)

log = structlog.get_logger("leadflow.agent")
SCAN_SECONDS = 1.0


def register(stage: Stage, _services: Services) -> None:
    """`route`, `sla-start`, `crm-feedback`, `outcome-wait`, `known-lead`, `sla-breached`
    and the `sla-due` / `sla-early-due` timers."""
    minute = timedelta(seconds=stage.settings.sla_minute_seconds)
    topics = stage.topics
    lead_queues: TypedTable[str] = stage.table(  # lead (per cycle) → first queue
        "routing-lead-queue", str, topics.handoff.partitions
    )
    clocks: TypedTable[SlaClock] = stage.table(
        "sla-clock", json_text(SlaClock), topics.sales_ready.partitions
    )
    early: TypedTable[list[dict[str, Any] | str]] = stage.table(  # lead → held outcomes
        "sla-early-outcomes", list[dict[str, Any] | str], topics.feedback.partitions
    )
    known: TypedTable[int] = stage.table(  # lead → its sales cycle
        "sla-known-leads", int, topics.qualified.partitions
    )
    outcome_wait = timedelta(seconds=stage.settings.outcome_wait_seconds)
    waits = DueTimers(  # when the first held outcome of a lead has waited long enough
        stage,
        "sla-early-due",
        topics.feedback.partitions,
        SCAN_SECONDS,
        lambda lead, when, _tag, now: OutcomeWaitExpired.fired(uuid.UUID(lead), when, now),
    )

    def routing(lead: str) -> RoutingRules:
        """The lead's routing rules (its variant's while an experiment on routing runs)."""
        return stage.rules.for_lead(uuid.UUID(lead), utcnow()).routing

    def sla_alarm(lead: str, _when: datetime, _tag: str, now: datetime) -> EventBase | None:
        """The reminder or breach a due clock asks for (the timer fires each due time once).

        A repeat after a crash has the same event_id, so consumers can drop it;
        `sla-reminded` and `sla-breached` record them on the clock from their
        topics (a timer may not write to a table), which moves the alarm on.
        """
        clock = clocks.get(lead)
        return alarm(clock, now, routing(lead), minute) if clock else None

    alarms = DueTimers(stage, "sla-due", topics.sales_ready.partitions, SCAN_SECONDS, sla_alarm)

    def held_entries(lead: str) -> list[HeldOutcome]:
        return [held(h, utcnow(), outcome_wait) for h in early.get(lead) or []]

    def keep_held(lead: str, entries: list[HeldOutcome]) -> None:
        early[lead] = [h.model_dump(mode="json") for h in entries]

    def set_clock(lead: str, clock: SlaClock) -> None:
        clocks[lead] = clock
        alarms.set(lead, next_alarm(clock, routing(lead), minute))

    def route(handoff: LeadHandedOff) -> LeadRouted:
        """Checked by lead before the re-key by queue: a lead keeps the queue it was
        first routed to, so no other queue's partition can give it a second owner."""
        lead = str(handoff.lead_id)
        key = per_cycle(lead, handoff.payload.qualification.cycle)  # each cycle afresh
        won_by = None
        clock = clocks.get(lead) if handoff.payload.deal == "upsell" else None
        if clock is not None and clock.outcome == "won":
            won_by = clock.assigned.payload.owner.rep_id
        chosen = stage.rules.for_lead(handoff.lead_id, utcnow())
        routed = route_lead(
            handoff, chosen.routing, earlier_queue=lead_queues.get(key), won_by=won_by
        )
        if key not in lead_queues:
            lead_queues[key] = routed.payload.queue
        return chosen.stamp("routing", routed)

    def apply(outcome: CrmOutcome) -> list[EventBase]:
        lead = str(outcome.lead_id)
        before = clocks[lead]
        clock, released = apply_outcome(before, outcome)
        set_clock(lead, clock)
        log.info("sla.feedback", outcome=outcome.outcome, status=clock.status)
        return [recorded(outcome, before.cycle, before), *([released] if released else [])]

    def start_clock(assigned: LeadAssigned) -> Emitted:
        lead = str(assigned.lead_id)
        running = clocks.get(lead)
        if running is not None:
            if running.replaced_by(assigned):
                set_clock(lead, SlaClock(assigned=assigned))  # a new owner or cycle, a new clock
            return None
        set_clock(lead, SlaClock(assigned=assigned))
        entries = held_entries(lead)
        if not entries:
            return None
        del early[lead]
        waits.set(lead, None)
        # outcomes that overtook the assignment
        return [e for h in entries for e in apply(h.outcome)]

    def feedback(outcome: CrmOutcome, received: Received) -> Emitted:
        """The one consumer of crm.feedback: each outcome lands on its body's lead."""
        lead = str(outcome.lead_id)
        if misrouted(received.key, outcome):
            # In another lead's partition: sent again under its own lead's key.
            log.info("sla.feedback_rekeyed")
            return Outgoing(topics.feedback, lead.encode(), received.raw or b"")
        if lead in clocks:
            return apply(outcome)
        # The CRM was faster than `sla-start`, the lead was never handed to sales, or it
        # is unknown: held for the clock, for a while; recorded at once on a known lead.
        entry = hold(received.raw or b"", received.at, utcnow(), outcome_wait)
        cycle = known.get(lead)
        events = [] if cycle is None else [recorded(outcome, cycle)]
        if events:
            entry = entry.model_copy(update={"recorded": True})
        entries = [*held_entries(lead), entry]
        keep_held(lead, entries)
        waits.set(lead, min(h.until for h in entries))
        log.info("sla.feedback_held", outcome=outcome.outcome)
        return events

    def qualified(event: LeadQualified) -> Emitted:
        """A lead is known from its qualification on: outcomes held for it are recorded."""
        lead, cycle = str(event.lead_id), event.payload.cycle
        if known.get(lead) != cycle:  # a changelog record only for a change
            known[lead] = cycle
        entries = held_entries(lead)
        if not entries:
            return None
        keep_held(lead, [h.model_copy(update={"recorded": True}) for h in entries])
        return [recorded(h.outcome, cycle) for h in entries if not h.recorded]

    def wait_over(expired: OutcomeWaitExpired) -> Emitted:
        """Held outcomes whose wait ran out: rejected if their lead never became known."""
        lead = str(expired.lead_id)
        waits.fired(lead, expired.due_at)
        kept, rejections = expire(held_entries(lead), expired.due_at, "crm-feedback")
        if kept:
            keep_held(lead, kept)
        elif lead in early:
            del early[lead]
        waits.set(lead, min((h.until for h in kept), default=None))
        for rejection in rejections:
            log.info("sla.feedback_unknown_lead", offset=rejection.payload.offset)
        return rejections

    def reminded(event: SlaReminderDue) -> None:
        """A reminder went out: the clock's next alarm is its deadline."""
        lead = str(event.lead_id)
        clock = clocks.get(lead)
        if clock is None:
            alarms.set(lead, None)
            return
        set_clock(lead, clock.reminded(event.payload.sla_due_at))

    def breached(event: SlaBreached) -> Emitted:
        lead = str(event.lead_id)
        clock = clocks.get(lead)
        if clock is None:
            alarms.set(lead, None)
            return None
        chosen = stage.rules.for_lead(event.lead_id, utcnow())
        clock, reassignment = record_breach(clock, event, chosen.routing, minute)
        set_clock(lead, clock)
        if reassignment is None:
            return None
        log.info("sla.reassign", owner=event.payload.owner.rep_id)
        return chosen.stamp("routing", reassignment)

    stage.agent(topics.handoff, "route", route)
    stage.agent(topics.sales_ready, "sla-start", start_clock)
    stage.agent(topics.feedback, "crm-feedback", feedback, message=True)
    stage.agent(topics.outcome_waits, "outcome-wait", wait_over)
    # nurture rejects what cannot be read of leads.qualified
    stage.agent(topics.qualified, "known-lead", qualified, rejects=False)
    stage.agent(topics.escalations, "sla-breached", breached)
    stage.agent(topics.reminders, "sla-reminded", reminded)
