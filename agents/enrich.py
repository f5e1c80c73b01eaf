"""Enrich: captured leads get their company profile from reference data."""

from __future__ import annotations

from pipeline.app import Stage
from pipeline.enrichment import enrich_lead


def register(stage: Stage) -> None:
    stage.decoding_agent(
        stage.topics.captured, "enrich", lambda lead: enrich_lead(lead, stage.reference)
    )
