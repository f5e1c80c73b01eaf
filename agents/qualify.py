"""Qualify: leads are scored when enriched and re-qualified on every new datum.

Three inputs, all keyed by lead_id and co-partitioned, so one partition owns a
lead's `LeadState` (a Faust table, durable through its changelog): enriched
leads, activities attached to their lead (by `agents.identify`), and CRM
outcomes once they found their lead (`leads.outcomes`, from `agents.distribute`,
the one reader of `crm.feedback`). A new inquiry on a won or lost lead starts
its next sales cycle.

Each lead is scored by its rules: the directory's scoring.yaml, or its variant's
while an experiment on scoring runs (`Rules.for_lead`); every qualification
records which (`rules`, `experiments`). Won and lost outcomes teach the win
model. Its counts live in a sharded table every worker reads in full
(`pipeline.worker.shared_state`): each partition writes only its own shard
`p<partition>|model`, and a read sums them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

import structlog

from pipeline.domain.enrich.enrichment import CompanyRecord
from pipeline.domain.qualify.predictive import WinCounts
from pipeline.domain.qualify.requalify import (
    Change,
    LeadState,
    due,
    from_activity,
    from_enriched,
    from_outcome,
    from_timer,
    next_requalification,
)
from pipeline.domain.qualify.requalify import requalify as requalify_lead
from pipeline.domain.qualify.scoring import ScoringModel, lead_features
from pipeline.worker.services import Services
from pipeline.worker.shared_state import ShardedTable
from pipeline.worker.stage import Stage
from pipeline.worker.tables import TypedTable
from pipeline.worker.timers import DueTimers
from schemas.envelope import utcnow
from schemas.lead import (
    ActivityRecorded,
    LeadEnriched,
    LeadProfile,
    LeadQualified,
    OutcomeRecorded,
    RequalificationDue,
)

log = structlog.get_logger("leadflow.qualify")


def register(stage: Stage, services: Services) -> None:
    """Qualify, and re-qualify on activities, outcomes and the interval timer."""
    states: TypedTable[LeadState] = stage.table(
        "qualify-leads", LeadState, stage.topics.enriched.partitions, stored="bytes"
    )
    timers = DueTimers(  # small index the timer scans, apart from the big states
        stage,
        "qualify-due",
        stage.topics.enriched.partitions,
        stage.settings.requalify_scan_seconds,
        lambda key, when, _tag, now: due(uuid.UUID(key), when, now),
    )
    wins = ShardedTable(stage, "qualify-win-counts", stage.topics.enriched.partitions, WinCounts)

    def counts() -> WinCounts:
        return WinCounts.total(wins.shards("model"))

    def predictor(model: ScoringModel) -> Callable[[LeadProfile], float | None]:
        return lambda profile: counts().win_probability(
            lead_features(profile, model), model.predictive
        )

    def run(
        lead_id: uuid.UUID, change: Change, fired_at: datetime | None = None
    ) -> LeadQualified | None:
        now = utcnow()
        chosen = stage.rules.for_lead(lead_id, now)  # its experiment variant's, if any
        model = chosen.scoring
        before = states.get(str(lead_id)) or LeadState()
        state, event = requalify_lead(lead_id, before, change, model, now, predictor(model))
        if state != before:  # a changelog record only for a change
            states[str(lead_id)] = state
        if fired_at is not None or state.due_at != before.due_at:
            timers.set(str(lead_id), next_requalification(state.due_at, fired_at))
        if before.outcome is None and state.outcome is not None and state.profile is not None:
            learn(state.profile, model, won=state.outcome == "won")
            domain = state.profile.company.domain if state.profile.company else None
            if state.outcome == "won" and domain:
                services.companies.record(
                    services.companies.CUSTOMER, domain, CompanyRecord(customer=True)
                )
        return None if event is None else chosen.stamp("scoring", event)

    def learn(profile: LeadProfile, model: ScoringModel, won: bool) -> None:
        mine = wins.mine("model") or WinCounts()
        wins.write("model", mine.learn(lead_features(profile, model), won))

    def enriched(lead: LeadEnriched) -> LeadQualified | None:
        return run(lead.lead_id, from_enriched(lead))

    def activity(recorded: ActivityRecorded) -> LeadQualified | None:
        model = stage.rules.for_lead(recorded.lead_id, utcnow()).scoring
        return run(recorded.lead_id, from_activity(recorded, model))

    def outcome(recorded: OutcomeRecorded) -> LeadQualified | None:
        applied = recorded.payload
        return run(recorded.lead_id, from_outcome(applied.outcome, applied.cycle))

    stage.lead_page(  # the latest qualification, as this worker holds it
        "/v1/leads/{lead_id}/qualification",
        states,
        lambda state: state.model_dump_json(include={"last", "iteration", "outcome"}).encode(),
    )

    def timer(fired: RequalificationDue) -> LeadQualified | None:
        timers.fired(str(fired.lead_id), fired.due_at)  # then the next interval, if any
        return run(fired.lead_id, from_timer(fired), fired_at=fired.due_at)

    stage.agent(stage.topics.requalify, "requalify-interval", timer)
    stage.agent(stage.topics.enriched, "qualify", enriched)
    stage.agent(stage.topics.lead_activity, "requalify-activity", activity)
    stage.agent(stage.topics.outcomes, "requalify-feedback", outcome)
