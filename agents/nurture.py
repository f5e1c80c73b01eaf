"""Nurture: every inquiry is answered; the gate passes sales-ready leads on and
keeps the others warm in their segment's programs.

Four agents share one `NurtureState` per lead (a Faust table, durable through
its changelog); their topics are keyed by lead_id and co-partitioned, so one
partition owns a lead: the gate (`leads.qualified`), activities
(`leads.lead-activity`: touch results, unsubscribes, replies, meetings), CRM
outcomes (`leads.outcomes`, the CRM outcomes that found their lead: recycling
and win-back) and due program steps
(`leads.nurture-steps`, fed by durable timers). `GET /v1/leads/{id}/nurture`
shows the state to `leadflow nurture status`. Each lead runs on its rules: the
directory's nurture.yaml, or its variant's while an experiment on nurture runs;
every answer, touch, nurture change and hand-off records which.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from pipeline.config.topics import TopicSpec
from pipeline.domain.nurture.policy import NurturePolicy, fulfill_inquiry
from pipeline.domain.nurture.programs import (
    NurtureState,
    Output,
    due_step,
    gate,
    input_id,
    nurture_status,
    on_activity,
    on_outcome,
    once,
    run_step,
)
from pipeline.worker.services import Services
from pipeline.worker.stage import Stage
from pipeline.worker.tables import TypedTable
from pipeline.worker.timers import DueTimers
from schemas.envelope import utcnow
from schemas.lead import (
    ActivityRecorded,
    LeadEnriched,
    LeadQualified,
    NurtureStepDue,
    OutcomeRecorded,
    TouchScheduled,
)

In = TypeVar("In", LeadQualified, ActivityRecorded, OutcomeRecorded, NurtureStepDue)
Step = Callable[
    [In, NurtureState, NurturePolicy, datetime, timedelta], tuple[NurtureState, Output | None]
]


def register(stage: Stage, _services: Services) -> None:
    """Fulfilment, the nurture gate, activities, outcomes and due program steps."""
    policy = stage.rules.nurture
    day = timedelta(seconds=stage.settings.nurture_day_seconds)
    partitions = stage.topics.qualified.partitions
    states: TypedTable[NurtureState] = stage.table(
        "nurture-leads", NurtureState, partitions, stored="bytes"
    )
    timers = DueTimers(
        stage,
        "nurture-due",
        partitions,
        stage.settings.nurture_scan_seconds,
        lambda key, when, tag, now: due_step(uuid.UUID(key), when, tag, now),
    )

    def agent(
        source: TopicSpec,
        name: str,
        step: Step[In],
        rejects: bool = False,
    ) -> None:
        """Load the lead's state, apply the input once, store the state and its next due step."""

        def handle(message: In) -> Output | None:
            lead_id = message.lead_id
            now = utcnow()
            chosen = stage.rules.for_lead(lead_id, now)  # its experiment variant's, if any
            before = states.get(str(lead_id)) or NurtureState()
            state, event = once(
                before, input_id(message), lambda s: step(message, s, chosen.nurture, now, day)
            )
            fired = isinstance(message, NurtureStepDue)
            if isinstance(message, NurtureStepDue):
                timers.fired(str(lead_id), message.due_at)  # then the next step, if any
            if state != before:
                states[str(lead_id)] = state
            if fired or state != before:
                pending = state.next_due
                if pending is None:
                    timers.set(str(lead_id), None)
                else:
                    timers.set(str(lead_id), pending.due_at, pending.key)
            return None if event is None else chosen.stamp("nurture", event)

        stage.agent(source, name, handle, rejects)

    def fulfill(lead: LeadEnriched) -> TouchScheduled:
        now = utcnow()
        chosen = stage.rules.for_lead(lead.lead_id, now)
        return chosen.stamp("nurture", fulfill_inquiry(lead, chosen.nurture, now))

    # beside qualify, which rejects what cannot be read
    stage.agent(stage.topics.enriched, "fulfill", fulfill, rejects=False)
    # nurture alone reads leads.qualified and leads.nurture-steps; qualify already puts
    # what it cannot read of leads.lead-activity and leads.outcomes in leads.rejected
    agent(stage.topics.qualified, "nurture", gate, rejects=True)
    agent(stage.topics.lead_activity, "nurture-activity", on_activity)
    agent(stage.topics.outcomes, "nurture-feedback", on_outcome)
    agent(stage.topics.nurture_steps, "nurture-step", run_step, rejects=True)

    stage.lead_page(  # segments, programs, next step and history
        "/v1/leads/{lead_id}/nurture",
        states,
        lambda state: nurture_status(state, policy).model_dump_json().encode(),
    )
