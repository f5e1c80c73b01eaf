"""Qualify: leads are scored when enriched and re-qualified on every new datum.

Three inputs, all keyed by lead_id and co-partitioned, so one partition owns a
lead's `LeadState` (a Faust table, durable through its changelog): enriched
leads, activities attached to their lead, and CRM outcomes. A fourth agent
attaches tracked activities that name their lead (the others wait in
`leads.activity` for identity resolution).
"""

from __future__ import annotations

import uuid

import structlog

from pipeline.app import Stage
from pipeline.requalify import Change, LeadState, from_activity, from_enriched, from_outcome
from pipeline.requalify import requalify as requalify_lead
from schemas.envelope import derive_id, utcnow
from schemas.inputs import Activity, CrmOutcome
from schemas.lead import ActivityRecorded, LeadEnriched, LeadQualified

log = structlog.get_logger("leadflow.qualify")


def attach(activity: Activity) -> ActivityRecorded | None:
    if activity.lead_id is None:
        log.info("activity.unresolved", activity_id=activity.activity_id)
        return None
    now = utcnow()
    return ActivityRecorded(
        event_id=derive_id("ActivityRecorded", activity.activity_id),
        lead_id=activity.lead_id,
        occurred_at=activity.occurred_at,
        emitted_at=now,
        payload=activity,
    )


def register(stage: Stage) -> None:
    states = stage.app.Table(
        "qualify-leads",
        partitions=stage.topics.enriched.partitions,
        key_type=bytes,
        value_type=bytes,
    )
    model = stage.rules.scoring

    def run(lead_id: uuid.UUID, change: Change) -> LeadQualified | None:
        key = str(lead_id).encode()
        stored = states.get(key)
        state = LeadState.model_validate_json(stored) if stored else LeadState()
        state, event = requalify_lead(lead_id, state, change, model, utcnow())
        states[key] = state.model_dump_json().encode()
        return event

    def enriched(lead: LeadEnriched) -> LeadQualified | None:
        return run(lead.lead_id, from_enriched(lead))

    def activity(recorded: ActivityRecorded) -> LeadQualified | None:
        return run(recorded.lead_id, from_activity(recorded, model))

    def outcome(crm: CrmOutcome) -> LeadQualified | None:
        return run(crm.lead_id, from_outcome(crm))

    stage.decoding_agent(stage.topics.activity, "attach-activity", attach)
    stage.decoding_agent(stage.topics.enriched, "qualify", enriched)
    stage.decoding_agent(stage.topics.lead_activity, "requalify-activity", activity)
    stage.decoding_agent(stage.topics.feedback, "requalify-feedback", outcome)
