from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer

from pipeline.adapters.kafka.connect import start_client
from pipeline.adapters.kafka.reader import KafkaReader, partitions_of, read_to_end
from pipeline.adapters.kafka.security import Broker, client_options
from pipeline.config.topics import Topics, TopicSpec
from pipeline.domain.capture.exclusion import EXCLUDED
from pipeline.domain.messages import Position
from pipeline.errors import LeadflowError
from schemas.lead import (
    CorrectIdentity,
    IdentityCorrected,
    LeadCaptured,
    TouchScheduled,
)


async def publish(
    bootstrap: Broker, topic: str, values: Iterable[bytes], key: bytes | None = None
) -> list[Position]:
    """Produce with acks from all in-sync replicas; return each message's position."""
    return await publish_keyed(bootstrap, topic, ((key, value) for value in values))


async def publish_keyed(
    bootstrap: Broker, topic: str, messages: Iterable[tuple[bytes | None, bytes]]
) -> list[Position]:
    """`publish` with a key per message (key, value)."""
    producer = AIOKafkaProducer(**client_options(bootstrap), acks="all", linger_ms=5)
    await start_client(producer, bootstrap)
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in messages]
        records = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [Position(r.topic, r.partition, r.offset) for r in records]


class CaptureWatcher:
    """How identity resolution placed inquiries: reads `leads.captured` (and, for
    excluded inquiries, their answer on `leads.touches`) from the current end on.
    Start it before publishing, so nothing it waits for can pass unseen."""

    def __init__(self, bootstrap: Broker, topics: Topics) -> None:
        self.topics = topics
        self.placed: dict[str, LeadCaptured | None] = {}
        """trace id → its LeadCaptured, or None: excluded, answered without a lead."""
        self._reader = KafkaReader(
            bootstrap, partitions_of((topics.captured, topics.touches)), "read_committed"
        )

    async def start(self) -> None:
        await self._reader.start()

    async def wait(self, traces: set[str], timeout: float) -> dict[str, LeadCaptured | None]:
        """The placements of `traces` that arrived within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not traces <= self.placed.keys() and time.monotonic() < deadline:
            for tp, record in await self._reader.poll(timeout_ms=300):
                self._record(tp.topic, record.value or b"")
        return {t: self.placed[t] for t in traces if t in self.placed}

    def _record(self, topic: str, value: bytes) -> None:
        if topic == self.topics.captured.name:
            captured = LeadCaptured.model_validate_json(value)
            self.placed[str(captured.trace_id)] = captured
            return
        touch = TouchScheduled.model_validate_json(value)
        if touch.payload.purpose == "fulfillment" and touch.payload.reason.startswith(EXCLUDED):
            self.placed.setdefault(str(touch.trace_id), None)

    async def stop(self) -> None:
        await self._reader.stop()


async def correct_and_wait(
    bootstrap: Broker, topics: Topics, command: CorrectIdentity, timeout: float
) -> list[IdentityCorrected]:
    """Send an operator's correction and wait for what it did to both leads."""
    reader = KafkaReader(bootstrap, partitions_of([topics.identity_corrected]), "read_committed")
    async with reader:  # its end before the command
        value = command.model_dump_json().encode()
        await publish(bootstrap, topics.identity_corrections.name, [value], key=command.key())
        done: dict[str, IdentityCorrected] = {}
        deadline = time.monotonic() + timeout
        while len(done) < 2:
            if time.monotonic() > deadline:
                raise LeadflowError(
                    f"the correction {command.event_id} was not done within {timeout:.0f} s; "
                    "is the worker running? (it is done once a worker reads it)"
                )
            for _, record in await reader.poll(timeout_ms=300):
                fact = IdentityCorrected.model_validate_json(record.value or b"")
                if fact.command_id == command.event_id:
                    done[str(fact.lead_id)] = fact
        return list(done.values())


async def last_event_of(bootstrap: Broker, spec: TopicSpec, lead_id: str) -> bytes | None:
    """The newest message keyed by this lead on a topic (a full scan: for the CLI).
    Committed records only: the worker writes its topics in transactions, and an
    aborted one's record never happened."""
    newest: tuple[int, bytes] | None = None
    async for _, r in read_to_end(bootstrap, partitions_of([spec]), "read_committed"):
        if r.key == lead_id.encode() and (newest is None or r.timestamp >= newest[0]):
            newest = (r.timestamp, r.value or b"")
    return newest[1] if newest else None
