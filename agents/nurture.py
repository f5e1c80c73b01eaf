"""Nurture: the gate; sales-ready leads pass on, the others get their first touch."""

from __future__ import annotations

from pipeline.app import Stage
from pipeline.nurture import nurture_gate
from schemas.envelope import utcnow


def register(stage: Stage) -> None:
    stage.decoding_agent(
        stage.topics.qualified,
        "nurture",
        lambda lead: nurture_gate(lead, stage.rules.nurture, utcnow()),
    )
