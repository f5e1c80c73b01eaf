"""Capture: raw inquiries from every channel become leads, answers to excluded
inquiries, or rejections."""

from __future__ import annotations

from pipeline.app import Stage
from pipeline.capture import capture_inquiry
from pipeline.plausibility import Plausibility, PostalTable
from schemas.envelope import utcnow


def register(stage: Stage) -> None:
    policy = Plausibility(stage.settings.default_region, PostalTable.shipped())
    stage.agent(
        stage.topics.inquiries,
        "capture",
        lambda raw, at: capture_inquiry(raw, at, utcnow(), policy, stage.rules.exclusions),
    )
