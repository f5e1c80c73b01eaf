"""Reference CRM subscriber: `leads.sales-ready` → a CRM webhook over HTTP.

The pattern to adapt for Salesforce, HubSpot or Odoo. At-least-once: an
offset is committed only after its lead was delivered (or, refused for good,
put in `leads.rejected`), in order per partition. Every request carries
`Idempotency-Key: <event_id>`, so the CRM drops a repeat after a crash.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Literal

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import SecretStr

from pipeline.messages import Position, decode, reject
from pipeline.settings import Settings
from pipeline.topics import Topics
from schemas.lead import LeadAssigned
from schemas.rejected import MessageRejected, Reason

STAGE = "crm-bridge"
RETRYABLE = frozenset({408, 425, 429})
log = structlog.get_logger("leadflow.crm_bridge")

Verdict = Literal["delivered", "retry", "refused"]


def verdict(status: int | None) -> Verdict:
    """What an answer means: 2xx delivered; no answer, 5xx, 408/425/429 try again; else refused."""
    if status is None or status >= 500 or status in RETRYABLE:
        return "retry"
    return "delivered" if 200 <= status < 300 else "refused"


def backoff(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait before attempt `attempt + 1`: doubling from `base`, at most `cap`."""
    return float(min(cap, base * 2 ** max(attempt - 1, 0)))


@dataclass
class Tally:
    delivered: int = 0
    rejected: int = 0

    @property
    def handled(self) -> int:
        return self.delivered + self.rejected


class CrmBridge:
    def __init__(
        self,
        settings: Settings,
        topics: Topics,
        url: str,
        token: SecretStr | None = None,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
    ) -> None:
        self.settings, self.topics, self.url, self.token = settings, topics, url, token
        self.base_delay, self.max_delay = base_delay, max_delay
        self.tally = Tally()

    def _post(self, event: LeadAssigned) -> int | None:
        headers = {"Content-Type": "application/json", "Idempotency-Key": str(event.event_id)}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token.get_secret_value()}"
        body = event.model_dump_json().encode()
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except (OSError, TimeoutError):
            return None

    async def deliver(self, event: LeadAssigned) -> tuple[Verdict, int | None, int]:
        """Post until delivered or refused; transient failures back off and retry."""
        attempt = 0
        while True:
            attempt += 1
            status = await asyncio.to_thread(self._post, event)
            outcome = verdict(status)
            if outcome != "retry":
                return outcome, status, attempt
            await asyncio.sleep(backoff(attempt, self.base_delay, self.max_delay))

    async def run(
        self, max_messages: int | None = None, stop: asyncio.Event | None = None
    ) -> Tally:
        spec = self.topics.sales_ready
        consumer = AIOKafkaConsumer(
            spec.name,
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=f"{self.settings.app_id}-crm-bridge",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all")
        await consumer.start()
        await producer.start()
        try:
            while (max_messages is None or self.tally.handled < max_messages) and not (
                stop and stop.is_set()
            ):
                batches = await consumer.getmany(timeout_ms=500, max_records=100)
                for tp, records in batches.items():
                    for record in records:
                        at = Position(tp.topic, tp.partition, record.offset)
                        await self._handle(record.value, at, producer)
                        await consumer.commit(
                            {TopicPartition(tp.topic, tp.partition): at.offset + 1}
                        )
        finally:
            await producer.stop()
            await consumer.stop()
        return self.tally

    async def _handle(self, raw: bytes | None, at: Position, producer: AIOKafkaProducer) -> None:
        event = decode(LeadAssigned, raw, at, STAGE)
        if isinstance(event, LeadAssigned):
            outcome, status, attempts = await self.deliver(event)
            log.info(
                "crm.delivery",
                lead_id=str(event.lead_id),
                event_id=str(event.event_id),
                status=status,
                attempts=attempts,
                outcome=outcome,
            )
            if outcome == "delivered":
                self.tally.delivered += 1
                return
            reason = Reason(code=f"crm_refused_{status}", message=f"the CRM answered {status}")
            event = reject(raw or b"", at, STAGE, [reason], source=event.source)
        assert isinstance(event, MessageRejected)
        value = event.model_dump_json().encode()
        await producer.send_and_wait(self.topics.rejected.name, value)
        self.tally.rejected += 1
