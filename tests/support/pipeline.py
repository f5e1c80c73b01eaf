"""A tenant's topics as the enrich-and-qualify tests drive them: inquiries, activities
and CRM outcomes sent, one lead's events read back until a condition holds."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import BaseModel

from pipeline.adapters.kafka.client import publish
from pipeline.adapters.kafka.security import client_options
from pipeline.config.settings import Settings
from pipeline.config.topics import Topics, TopicSpec
from pipeline.domain.capture.inquiry import inquiry_key, lead_id_for
from pipeline.domain.messages import Position
from schemas.envelope import utcnow
from schemas.inquiry import Inquiry

TIMEOUT_S = 60.0


class Pipeline:
    def __init__(self, settings: Settings, topics: Topics) -> None:
        self.settings, self.topics = settings, topics
        self.run = uuid.uuid4().hex[:6]

    def send(self, spec: TopicSpec, *bodies: dict[str, Any], key: bytes | None = None) -> None:
        values = [orjson.dumps(b) for b in bodies]
        asyncio.run(publish(self.settings.kafka, spec.name, values, key=key))

    def inquiry(self, n: str, **fields: Any) -> tuple[dict[str, Any], str]:
        body: dict[str, Any] = {
            "inquiry_id": f"{self.run}-{n}",
            "source": {"channel": "web_form", "campaign": "it"},
            "contact": {"first_name": "Eva", "last_name": "Roth", "email": f"eva.{n}@x.de"},
            "product_interest": ["crm-suite"],
            **fields,
        }
        at = Position("unused", 0, 0)
        return body, str(lead_id_for(inquiry_key(Inquiry.model_validate(body), at)))

    def wait_for(
        self,
        spec: TopicSpec,
        lead_id: str,
        until: Callable[[list[Any]], bool] = bool,
        timeout: float = TIMEOUT_S,
    ) -> list[Any]:
        """Every event of one lead on a topic, once `until` holds for them."""
        return asyncio.run(_read_lead(self.settings, spec, lead_id, until, timeout))


async def _read_lead(
    settings: Settings,
    spec: TopicSpec,
    lead_id: str,
    until: Callable[[list[Any]], bool],
    timeout: float,
) -> list[Any]:
    consumer = AIOKafkaConsumer(**client_options(settings.kafka), enable_auto_commit=False)
    await consumer.start()
    model: type[BaseModel] = spec.model
    found: list[Any] = []
    try:
        parts = [TopicPartition(spec.name, p) for p in range(spec.partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for r in records:
                    if r.key == lead_id.encode():
                        found.append(model.model_validate_json(r.value or b""))
            if until(found):
                return found
    finally:
        await consumer.stop()
    raise AssertionError(f"{spec.name}: condition not met for {lead_id}; saw {found}")


def crm_outcome(pipeline: Pipeline, lead: str, outcome: str, reason: str) -> dict[str, Any]:
    return {
        "outcome_id": f"{pipeline.run}-{lead[:8]}-{outcome}",
        "lead_id": lead,
        "occurred_at": utcnow().isoformat(),
        "outcome": outcome,
        "reason": reason,
    }
