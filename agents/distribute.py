"""Distribute: hand-offs are routed to a queue, then to exactly one rep.

Two agents: `route` picks the queue and re-keys the lead by it; `distribute`
consumes that queue-keyed topic, so one partition owns each queue's
round-robin pointer (a Faust table, durable through its changelog). A lead
seen again after a restart gets the pointer it had, hence the same rep.
"""

from __future__ import annotations

import faust

from pipeline.app import Stage
from pipeline.routing import assign_lead, route_lead
from schemas.envelope import utcnow
from schemas.lead import LeadAssigned, LeadRouted


def register(stage: Stage) -> None:
    partitions = stage.topics.routing.partitions
    json: faust.Schema = faust.Schema(key_serializer="json", value_serializer="json")
    pointers = stage.app.Table("routing-pointer", default=int, partitions=partitions, schema=json)
    assigned_at = stage.app.Table("routing-assigned-pointer", partitions=partitions, schema=json)

    def assign(routed: LeadRouted) -> LeadAssigned:
        lead = str(routed.lead_id)
        pointer = assigned_at.get(lead)
        if pointer is None:
            pointer = pointers[routed.payload.queue]
            pointers[routed.payload.queue] = pointer + 1
            assigned_at[lead] = pointer
        return assign_lead(routed, stage.rules.routing, pointer, utcnow())

    stage.decoding_agent(
        stage.topics.handoff, "route", lambda lead: route_lead(lead, stage.rules.routing)
    )
    stage.decoding_agent(stage.topics.routing, "distribute", assign)
