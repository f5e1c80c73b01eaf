"""The response-time SLA of an assigned lead: reminder, escalation, reassignment.

Pure functions over `SlaClock`, one per lead: the distribute agents keep the
clocks in a table (durable through its changelog) and a timer asks `alarm`
what is due, so deadlines survive worker restarts. The ladder (seed 002
§6.6.1, §7.2): a reminder to the owner shortly before the deadline; at the
deadline an escalation to the queue's manager and a second window; when that
runs out too, the lead is reassigned to the next available rep.

CRM outcomes land on the lead's clock: an outcome under another lead's key is
re-keyed by its body's lead id (`misrouted`); one that finds its lead is
recorded (`recorded`, what qualification, nurture and the warehouse read) and
applied to the lead's clock; one that finds no clock is held (`hold`) until the
lead's owner is assigned, for a bounded wait: when it runs out, an outcome whose
lead never became known is rejected as `unknown_lead` (`expire`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.domain.distribute.routing import RoutingRules
from pipeline.domain.messages import Position, reject
from schemas.envelope import AwareDatetime, derive_id, utcnow
from schemas.inputs import CrmOutcome
from schemas.lead import (
    Handoff,
    LeadAssigned,
    LeadReleased,
    LeadRouted,
    OutcomeRecorded,
    RecordedOutcome,
    Release,
    Routed,
    SlaBreach,
    SlaBreached,
    SlaReminder,
    SlaReminderDue,
)
from schemas.rejected import MessageRejected, Reason

ClockStatus = Literal["running", "contacted", "breached", "closed"]
CONTACT = frozenset({"contacted", "accepted", "opportunity"})
"""Outcomes that show the owner reached the lead: the SLA is met."""
CLOSE = frozenset({"won", "lost", "returned"})
"""Outcomes that end the owner's work on the lead: its load is freed."""
REASSIGN_AFTER = 2
"""Breaches before the lead goes to another rep."""


class SlaClock(BaseModel):
    model_config = ConfigDict(frozen=True)

    assigned: LeadAssigned
    deadline: AwareDatetime | None = None
    """The current window's end; None: the assignment's `sla_due_at`."""
    breaches: int = 0
    contacted: bool = False
    closed: bool = False
    outcome: str | None = None
    """The closing outcome (won, lost, returned) once closed."""
    reminded_for: AwareDatetime | None = None
    """The deadline the owner was reminded of: one reminder per deadline."""

    @property
    def cycle(self) -> int:
        """The lead's sales cycle this clock belongs to."""
        return self.assigned.payload.qualification.cycle

    def replaced_by(self, assigned: LeadAssigned) -> bool:
        """A new owner (SLA reassignment) or a new sales cycle starts a new clock."""
        new = assigned.payload
        if new.qualification.cycle != self.cycle:
            return new.qualification.cycle > self.cycle
        return new.reassignment > self.assigned.payload.reassignment

    @property
    def due_at(self) -> datetime:
        return self.deadline or self.assigned.payload.sla_due_at

    @property
    def status(self) -> ClockStatus:
        if self.closed:
            return "closed"
        if self.breaches:
            return "breached"  # contact made later keeps the breach on record
        return "contacted" if self.contacted else "running"

    @property
    def running(self) -> bool:
        return not (self.contacted or self.closed) and self.breaches < REASSIGN_AFTER

    def due(self, now: datetime) -> bool:
        return self.running and self.due_at <= now

    def reminded(self, deadline: datetime) -> SlaClock:
        """The reminder for `deadline` went out (a reminder for an older one changes nothing)."""
        if deadline != self.due_at:
            return self
        return self.model_copy(update={"reminded_for": deadline})

    def after_breach(self, breach: int, next_deadline: datetime) -> SlaClock:
        """Record breach number `breach` (once) and open the next window."""
        if breach <= self.breaches:
            return self
        return self.model_copy(update={"breaches": breach, "deadline": next_deadline})


def alarm(
    clock: SlaClock, now: datetime, rules: RoutingRules, minute: timedelta
) -> SlaBreached | SlaReminderDue | None:
    """What the clock asks for now: a breach, a reminder before the first deadline, or nothing.

    The timer may fire the same alarm more than once; each has a stable id.
    """
    first = next_alarm(clock, rules, minute)
    if first is None or now < first:
        return None
    if clock.due(now):
        return breach(clock, rules)
    a = clock.assigned
    reminder = SlaReminder(owner=a.payload.owner, queue=a.payload.queue, sla_due_at=clock.due_at)
    return SlaReminderDue(**a.follow("SlaReminderDue", payload=reminder))


def next_alarm(clock: SlaClock, rules: RoutingRules, minute: timedelta) -> datetime | None:
    """When `alarm` first has something to say for this clock (the reminder, else the
    deadline); None: never again. The timer scans these times, not the clocks."""
    if not clock.running:
        return None
    before = rules.sla_reminder_minutes
    if clock.breaches == 0 and before and clock.reminded_for != clock.due_at:
        return clock.due_at - before * minute
    return clock.due_at


def breach(clock: SlaClock, rules: RoutingRules) -> SlaBreached:
    """Escalate to the queue's manager (or the queue itself when it has none)."""
    a = clock.assigned
    number = clock.breaches + 1
    manager = rules.queues[a.payload.queue].manager if a.payload.queue in rules.queues else None
    return SlaBreached(
        **a.follow(
            "SlaBreached",
            event_id=derive_id("SlaBreached", a.event_id, number),
            payload=SlaBreach(
                owner=a.payload.owner,
                queue=a.payload.queue,
                sla_due_at=clock.due_at,
                escalate_to=manager.id if manager else f"queue:{a.payload.queue}",
                breach=number,
            ),
        )
    )


def record_breach(
    clock: SlaClock, event: SlaBreached, rules: RoutingRules, minute: timedelta
) -> tuple[SlaClock, LeadRouted | None]:
    """The breach is on record and the next window open; the last breach reassigns."""
    n = event.payload.breach
    if n <= clock.breaches or event.event_id != breach(clock, rules).event_id:
        return clock, None  # a repeat, or a breach of an earlier owner's clock
    a = clock.assigned.payload
    window = rules.sla_window(a.queue, minute) if a.queue in rules.queues else timedelta(0)
    queue = rules.queues.get(a.queue)
    due = event.payload.sla_due_at
    after = clock.after_breach(n, queue.sla_deadline(due, window) if queue else due + window)
    if n < REASSIGN_AFTER:
        return after, None
    return after, reassign(clock)


def reassign(clock: SlaClock) -> LeadRouted:
    """Back to the queue, for anyone but the owner who let the lead wait."""
    a = clock.assigned
    routed = Routed(
        handoff=Handoff(
            qualification=a.payload.qualification,
            reason=f"SLA missed {REASSIGN_AFTER} times by {a.payload.owner.rep_id}: reassigned",
            contact_permissions=a.payload.contact_permissions,
            deal=a.payload.deal,
        ),
        queue=a.payload.queue,
        rule=a.payload.rule,
        reassign_from=a.payload.owner,
        reassignment=a.payload.reassignment + 1,
    )
    return LeadRouted(**a.follow("LeadRouted", payload=routed))


def apply_outcome(clock: SlaClock, outcome: CrmOutcome) -> tuple[SlaClock, LeadReleased | None]:
    """Contact stops the clock; a closing outcome also frees the owner's load, once."""
    if clock.closed:
        return clock, None
    if outcome.outcome in CONTACT:
        return clock.model_copy(update={"contacted": True}), None
    a = clock.assigned
    released = LeadReleased(
        **a.follow(
            "LeadReleased",
            payload=Release(
                owner=a.payload.owner,
                queue=a.payload.queue,
                outcome=outcome.outcome,
                outcome_id=outcome.outcome_id,
            ),
        )
    )
    return clock.model_copy(update={"closed": True, "outcome": outcome.outcome}), released


def recorded(outcome: CrmOutcome, cycle: int, clock: SlaClock | None = None) -> OutcomeRecorded:
    """The outcome as applied to its lead (and to the lead's current assignment, if it has
    one); same id when repeated. It happened when the CRM says, which the warehouse
    reports."""
    a = clock.assigned.payload if clock is not None else None
    return OutcomeRecorded(
        event_id=derive_id("OutcomeRecorded", outcome.lead_id, outcome.outcome_id),
        lead_id=outcome.lead_id,
        occurred_at=outcome.occurred_at,
        emitted_at=utcnow(),
        payload=RecordedOutcome(
            outcome=outcome,
            owner=a.owner if a else None,
            queue=a.queue if a else None,
            cycle=clock.cycle if clock is not None else cycle,
        ),
    )


def misrouted(key: bytes | None, outcome: CrmOutcome) -> bool:
    """`crm.feedback` is keyed by lead_id: under another key (or none) an outcome sits
    in another lead's partition, where its lead's clock is not; it must be re-keyed."""
    return key != str(outcome.lead_id).encode()


class HeldOutcome(BaseModel):
    """A CRM outcome whose lead has no owner yet (the CRM overtook the assignment, or
    the lead is unknown): kept until the lead's clock starts, or rejected at `until`."""

    model_config = ConfigDict(frozen=True)

    raw: str = Field(description="The message as the CRM published it.")
    topic: str
    partition: int
    offset: int
    until: AwareDatetime
    recorded: bool = Field(
        default=False, description="Its lead is known (qualified): recorded, waits for a clock."
    )

    @property
    def at(self) -> Position:
        return Position(self.topic, self.partition, self.offset)

    @property
    def outcome(self) -> CrmOutcome:
        return CrmOutcome.model_validate_json(self.raw)


def held(stored: dict[str, Any] | str, now: datetime, wait: timedelta) -> HeldOutcome:
    """A held outcome as stored. One stored by a version before the bounded wait (the bare
    `CrmOutcome` JSON, without its position) waits from now on and is then dropped, not
    rejected: where it sat in Kafka is not known."""
    if isinstance(stored, str):
        return HeldOutcome(
            raw=stored, topic="", partition=0, offset=0, until=now + wait, recorded=True
        )
    return HeldOutcome.model_validate(stored)


def hold(raw: bytes, at: Position, now: datetime, wait: timedelta) -> HeldOutcome:
    return HeldOutcome(
        raw=raw.decode(), topic=at.topic, partition=at.partition, offset=at.offset, until=now + wait
    )


def expire(
    held: list[HeldOutcome], due_at: datetime, stage: str
) -> tuple[list[HeldOutcome], list[MessageRejected]]:
    """The outcomes still waiting after `due_at`, and a rejection for each whose wait ran
    out before its lead was known (one the lead's clock never came for was recorded on
    the lead already: it is dropped)."""
    kept = [h for h in held if h.until > due_at]
    reason = Reason(
        code="unknown_lead",
        message="No lead with this lead_id was known in time.",
        field="lead_id",
    )
    rejected = [
        reject(h.raw.encode(), h.at, stage, [reason])
        for h in held
        if h.until <= due_at and not h.recorded
    ]
    return kept, rejected
