"""Capture: raw inquiries from every channel become leads, answers to excluded
inquiries, or rejections."""

from __future__ import annotations

from datetime import timedelta

from pipeline.config.reference import postal_table
from pipeline.domain.capture.inquiry import capture_inquiry
from pipeline.domain.capture.plausibility import Plausibility
from pipeline.worker.services import Services
from pipeline.worker.stage import Emitted, Received, Stage
from schemas.envelope import utcnow


def register(stage: Stage, _services: Services) -> None:
    """`capture` on leads.inquiries: a lead, an answer to an excluded inquiry, or a rejection."""
    settings = stage.settings
    policy = Plausibility(
        settings.default_region,
        postal_table(),
        max_age=timedelta(days=settings.input_max_age_days),
        max_ahead=timedelta(minutes=settings.inquiry_max_ahead_minutes),
    )
    limit = settings.input_limit(stage.topics.inquiries)
    exclusions = stage.rules.exclusions

    def capture(received: Received) -> Emitted:
        return capture_inquiry(received.raw, received.at, utcnow(), policy, exclusions, limit)

    stage.raw_agent(stage.topics.inquiries, "capture", capture)
