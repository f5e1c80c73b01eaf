"""The response-time SLA of an assigned lead and what CRM feedback does to it.

Pure functions over `SlaClock`, one per lead: the distribute agents keep the
clocks in a table (durable through its changelog) and a timer scans it, so a
deadline survives worker restarts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from pipeline.routing import RoutingRules
from schemas.inputs import CrmOutcome
from schemas.lead import LeadAssigned, LeadReleased, Release, SlaBreach, SlaBreached

ClockStatus = Literal["running", "contacted", "breached", "closed"]
CONTACT = frozenset({"contacted", "accepted", "opportunity"})
"""Outcomes that show the owner reached the lead: the SLA is met."""
CLOSE = frozenset({"won", "lost", "returned"})
"""Outcomes that end the owner's work on the lead: its load is freed."""


class SlaClock(BaseModel):
    model_config = ConfigDict(frozen=True)

    assigned: LeadAssigned
    status: ClockStatus = "running"

    def due(self, now: datetime) -> bool:
        return self.status == "running" and self.assigned.payload.sla_due_at <= now

    def breached(self) -> SlaClock:
        """The escalation was recorded; contact made meanwhile keeps its status."""
        return self.model_copy(update={"status": "breached"}) if self.status == "running" else self


def breach(clock: SlaClock, rules: RoutingRules) -> SlaBreached:
    """Escalate to the queue's manager (or the queue itself when it has none)."""
    a = clock.assigned
    manager = rules.queues[a.payload.queue].manager if a.payload.queue in rules.queues else None
    return SlaBreached(
        **a.follow(
            "SlaBreached",
            payload=SlaBreach(
                owner=a.payload.owner,
                queue=a.payload.queue,
                sla_due_at=a.payload.sla_due_at,
                escalate_to=manager.id if manager else f"queue:{a.payload.queue}",
            ),
        )
    )


def apply_outcome(clock: SlaClock, outcome: CrmOutcome) -> tuple[SlaClock, LeadReleased | None]:
    """Contact stops the clock; a closing outcome also frees the owner's load, once."""
    if clock.status == "closed":
        return clock, None
    if outcome.outcome in CONTACT:
        status: ClockStatus = "breached" if clock.status == "breached" else "contacted"
        return clock.model_copy(update={"status": status}), None
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
    return clock.model_copy(update={"status": "closed"}), released
