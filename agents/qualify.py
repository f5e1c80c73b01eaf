"""Qualify: enriched leads are scored, classed and given a decision."""

from __future__ import annotations

from pipeline.app import Stage
from pipeline.scoring import qualify_lead


def register(stage: Stage) -> None:
    stage.decoding_agent(
        stage.topics.enriched, "qualify", lambda lead: qualify_lead(lead, stage.rules.scoring)
    )
