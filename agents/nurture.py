"""Nurture: every inquiry is answered; the gate passes sales-ready leads on and
gives the others their first nurture touch."""

from __future__ import annotations

from pipeline.app import Stage
from pipeline.nurture import fulfill_inquiry, nurture_gate
from schemas.envelope import utcnow


def register(stage: Stage) -> None:
    policy = stage.rules.nurture
    stage.decoding_agent(  # beside qualify, which rejects what cannot be read
        stage.topics.enriched,
        "fulfill",
        lambda lead: fulfill_inquiry(lead, policy, utcnow()),
        rejects=False,
    )
    stage.decoding_agent(
        stage.topics.qualified, "nurture", lambda lead: nurture_gate(lead, policy, utcnow())
    )
