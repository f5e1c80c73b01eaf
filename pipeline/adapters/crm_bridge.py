"""Reference CRM subscriber: `leads.sales-ready` → a CRM webhook over HTTP.

The pattern to adapt for Salesforce, HubSpot or Odoo. At-least-once: an
offset is committed only after its lead was delivered (or, refused for good,
put in `leads.rejected`), in order per partition. Every request carries
`Idempotency-Key: <event_id>`, so the CRM drops a repeat after a crash or a
rebalance.

What an answer means and how long to wait are the pure functions `verdict`,
`retry_after_seconds` and `retry_delay`; `CrmBridge` only moves bytes.
"""

from __future__ import annotations

import asyncio
import http.client
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Literal

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from pydantic import SecretStr

from pipeline.adapters.kafka.security import client_options, connect_error, starting_quietly
from pipeline.config.settings import Settings
from pipeline.config.topics import Topics
from pipeline.domain.messages import Position, decode, reject
from pipeline.errors import ConfigError, KafkaUnavailable
from schemas.lead import LeadAssigned
from schemas.rejected import MessageRejected, Reason

STAGE = "crm-bridge"
RETRYABLE = frozenset({408, 429})
"""4xx answers that mean "not now": request timeout, too many requests."""

log = structlog.get_logger("leadflow.crm_bridge")

Verdict = Literal["delivered", "retry", "refused"]


# --- decisions (pure) ---------------------------------------------------------


def verdict(status: int | None) -> Verdict:
    """What an answer means.

    2xx: delivered. No answer (connection error, timeout), 5xx, 408, 429: try
    again. Anything else – another 4xx, or a redirect, which is not followed
    because a redirected POST may arrive as a GET without its body – is a
    refusal for good.
    """
    if status is None or status >= 500 or status in RETRYABLE:
        return "retry"
    return "delivered" if 200 <= status < 300 else "refused"


def retry_after_seconds(header: str | None) -> float | None:
    """A `Retry-After` header given in seconds; None if absent or an HTTP date."""
    if header is None or not header.strip().isdigit():
        return None
    return float(header.strip())


def retry_delay(attempt: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Seconds to wait after failed attempt `attempt` (1, 2, …): doubling from
    `base`, at least what the CRM asked for in `Retry-After`, never above `cap`."""
    doubling = base * 2 ** max(attempt - 1, 0)
    return float(min(cap, max(doubling, retry_after or 0.0)))


def refusal(raw: bytes, at: Position, event: LeadAssigned, status: int | None) -> MessageRejected:
    """The `leads.rejected` record of a lead the CRM refused, keyed by its lead."""
    reason = Reason(code=f"crm_refused_{status}", message=f"The CRM answered HTTP {status}.")
    rejected = reject(raw, at, STAGE, [reason], source=event.source)
    return rejected.model_copy(update={"lead_id": event.lead_id, "trace_id": event.trace_id})


def webhook_request(
    url: str, event: LeadAssigned, token: SecretStr | None
) -> urllib.request.Request:
    """The POST a CRM receives: the event as JSON, its id as the idempotency key."""
    headers = {"Content-Type": "application/json", "Idempotency-Key": str(event.event_id)}
    if token is not None:
        headers["Authorization"] = f"Bearer {token.get_secret_value()}"
    body = event.model_dump_json().encode()
    return urllib.request.Request(url, data=body, headers=headers, method="POST")


# --- moving bytes ---------------------------------------------------------------


@dataclass(frozen=True)
class CrmResponse:
    """How the CRM answered one delivery."""

    status: int | None
    """HTTP status, or None when no answer came (the error says why)."""
    retry_after: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class Delivery:
    outcome: Verdict | Literal["stopped"]
    status: int | None
    attempts: int


@dataclass
class Tally:
    delivered: int = 0
    rejected: int = 0

    @property
    def handled(self) -> int:
        return self.delivered + self.rejected


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # the 3xx becomes an HTTPError: a refusal, see `verdict`


class CrmBridge:
    """Consumes the sales-ready topic in its own group and POSTs each lead."""

    def __init__(
        self,
        settings: Settings,
        topics: Topics,
        url: str,
        token: SecretStr | None = None,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        timeout: float = 10.0,
    ) -> None:
        if not 0 < base_delay <= max_delay:
            raise ConfigError(
                f"retry delays: need 0 < base ≤ max, got base {base_delay} and max {max_delay} "
                "(e.g. base 0.5, max 30)"
            )
        self.settings, self.topics, self.url, self.token = settings, topics, url, token
        self.base_delay, self.max_delay, self.timeout = base_delay, max_delay, timeout
        self.group_id = f"{settings.app_id}-crm-bridge"
        self.tally = Tally()
        self._opener = urllib.request.build_opener(_NoRedirect)

    def _post(self, event: LeadAssigned) -> CrmResponse:
        """One attempt (blocking: runs in a thread)."""
        request = webhook_request(self.url, event, self.token)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return CrmResponse(int(response.status))
        except urllib.error.HTTPError as error:
            try:
                return CrmResponse(
                    error.code, retry_after_seconds(error.headers.get("Retry-After"))
                )
            finally:
                error.close()
        except (OSError, http.client.HTTPException) as error:  # refused, reset, timeout, garbage
            cause = getattr(error, "reason", None)  # URLError wraps the socket's error
            return CrmResponse(
                None, error=type(cause if isinstance(cause, Exception) else error).__name__
            )

    async def deliver(self, event: LeadAssigned, stop: asyncio.Event) -> Delivery:
        """POST until delivered or refused; a transient failure backs off and
        tries again, until `stop` is set (then the lead stays uncommitted)."""
        attempt = 0
        while True:
            attempt += 1
            answer = await asyncio.to_thread(self._post, event)
            outcome = verdict(answer.status)
            if outcome != "retry":
                return Delivery(outcome, answer.status, attempt)
            delay = retry_delay(attempt, self.base_delay, self.max_delay, answer.retry_after)
            log.warning(
                "crm.retry",
                stage=STAGE,
                lead_id=str(event.lead_id),
                event_id=str(event.event_id),
                status=answer.status,
                error=answer.error,
                attempts=attempt,
                delay=delay,
            )
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                continue
            return Delivery("stopped", answer.status, attempt)

    async def run(
        self, max_messages: int | None = None, stop: asyncio.Event | None = None
    ) -> Tally:
        """Deliver until `stop` is set or `max_messages` were handled."""
        stop = stop or asyncio.Event()
        consumer = AIOKafkaConsumer(
            **client_options(self.settings.kafka),
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        producer = AIOKafkaProducer(**client_options(self.settings.kafka), acks="all")
        try:
            with starting_quietly():
                await consumer.start()
                await producer.start()
            missing = {self.topics.sales_ready.name, self.topics.rejected.name}
            missing -= await consumer.topics()
        except KafkaError as exc:
            await producer.stop()
            await consumer.stop()
            raise await connect_error(self.settings.kafka) from exc
        if missing:
            await producer.stop()
            await consumer.stop()
            raise ConfigError(
                f"missing topics at {self.settings.kafka_bootstrap}: {', '.join(sorted(missing))}; "
                "create them with `leadflow topics apply`"
            )
        consumer.subscribe([self.topics.sales_ready.name])

        def done() -> bool:
            return stop.is_set() or (
                max_messages is not None and self.tally.handled >= max_messages
            )

        try:
            while not done():
                batches = await consumer.getmany(timeout_ms=500, max_records=100)
                for tp, records in batches.items():
                    for record in records:
                        if done() or not await self._handle(record, tp, producer, stop):
                            return self.tally  # the rest stays uncommitted
                        if not await self._commit(consumer, tp, record.offset + 1):
                            break  # partition moved: its new owner starts at the commit
        except KafkaError as exc:
            raise KafkaUnavailable(
                f"Kafka at {self.settings.kafka_bootstrap} failed ({exc}); leads not yet "
                "committed are delivered again after a restart (the CRM drops repeats by key)"
            ) from exc
        finally:
            await producer.stop()
            await consumer.stop()
        return self.tally

    async def _commit(self, consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> bool:
        try:
            await consumer.commit({tp: offset})
            return True
        except (CommitFailedError, IllegalStateError) as exc:
            # A rebalance (another bridge joined, or a CRM outage outlasted
            # max.poll.interval): the lead was delivered, the commit is lost, so
            # it may be delivered again – the CRM drops it by Idempotency-Key.
            log.warning(
                "crm.commit_lost",
                stage=STAGE,
                at=f"{tp.topic}/{tp.partition}/{offset}",
                error=type(exc).__name__,
            )
            return False

    async def _handle(
        self,
        record: ConsumerRecord[bytes, bytes],
        tp: TopicPartition,
        producer: AIOKafkaProducer,
        stop: asyncio.Event,
    ) -> bool:
        """Deliver or reject one message; False if stopped before either."""
        raw = record.value or b""
        at = Position(tp.topic, tp.partition, record.offset)
        event = decode(LeadAssigned, record.value, at, STAGE)
        if isinstance(event, MessageRejected):
            log.warning(
                "crm.undecodable",
                stage=STAGE,
                at=at.ref,
                reasons=[r.code for r in event.payload.reasons],
                outcome="rejected",
            )
            await self._reject(event, producer)
            return True
        delivery = await self.deliver(event, stop)
        (log.info if delivery.outcome == "delivered" else log.warning)(
            "crm.delivery",
            stage=STAGE,
            lead_id=str(event.lead_id),
            event_id=str(event.event_id),
            trace_id=str(event.trace_id),
            status=delivery.status,
            attempts=delivery.attempts,
            outcome=delivery.outcome,
        )
        if delivery.outcome == "stopped":
            return False
        if delivery.outcome == "delivered":
            self.tally.delivered += 1
        else:
            await self._reject(refusal(raw, at, event, delivery.status), producer)
        return True

    async def _reject(self, event: MessageRejected, producer: AIOKafkaProducer) -> None:
        value = event.model_dump_json().encode()
        await producer.send_and_wait(self.topics.rejected.name, value, key=event.key())
        self.tally.rejected += 1
