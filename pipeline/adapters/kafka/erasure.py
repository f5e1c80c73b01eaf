"""Erasure and export against the real stores: Kafka topics, table changelogs, the warehouse.

Kafka cannot delete one record from a partition; it can only drop a
partition's head (DeleteRecords). So a person's records are removed by
truncating each partition that holds one, up to just after it, once every
consumer group has processed that far (nothing unprocessed is ever dropped;
the warehouse keeps every event). Table changelogs are first rewritten with
the current value of every other key, so the head dropped there only held
superseded values. See docs/privacy.md for the whole design and its limits.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal

import structlog
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import PolicyViolationError

from pipeline.adapters.kafka.connect import start_client
from pipeline.adapters.kafka.reader import (
    Isolation,
    KafkaReader,
    partitions_of,
    read_to_end,
)
from pipeline.adapters.kafka.security import Broker, client_options
from pipeline.config.topics import Topics
from pipeline.domain.privacy.person import (
    Person,
    TableScan,
)
from pipeline.errors import KafkaUnavailable, LeadflowError
from schemas.privacy import EraseLead, LeadErased

log = structlog.get_logger("leadflow.privacy")
POLICY_CHANGE_S = 30.0
"""How long a changed cleanup policy may take to reach a topic's partitions."""


async def read_partition(
    bootstrap: Broker, tp: TopicPartition, person: Person
) -> tuple[TableScan, int]:
    """The latest value per key of one (changelog) partition, and its end offset;
    the scan also notes whether any record, superseded or deleted ones too,
    mentions the person (a compacted changelog keeps them until compaction).
    Uncommitted: an aborted transaction's records are still on disk, so the
    person's data in them is found too, and the end is the partition's last offset."""
    scan = TableScan(person)
    async with KafkaReader(bootstrap, [tp], "read_uncommitted", from_beginning=True) as reader:
        end = (await reader.end_offsets())[tp]
        async for _, r in reader.until({tp: end}):
            scan.apply(r.key, r.value)
    return scan, end


async def topic_partitions(admin: AIOKafkaAdminClient, names: list[str]) -> list[TopicPartition]:
    """Every partition of these topics (those that exist)."""
    described = await admin.describe_topics(names)
    return [
        TopicPartition(t["topic"], p["partition"])
        for t in described
        if t.get("error_code") == 0
        for p in t["partitions"]
    ]


async def find_in_topics(
    bootstrap: Broker,
    parts: list[TopicPartition],
    person: Person,
    isolation: Isolation = "read_uncommitted",
) -> dict[TopicPartition, int]:
    """The last offset per partition whose message is the person's (its key names
    their lead or key, its value is their record) or mentions one of their keys
    (also inside the original a rejection carries). Uncommitted by default: an
    aborted transaction's records are still on disk, and hold the person too."""
    hits: dict[TopicPartition, int] = {}
    async for tp, r in read_to_end(bootstrap, parts, isolation):
        if person.owns_key(r.key) or person.found_in(r.value):
            hits[tp] = max(hits.get(tp, -1), r.offset)
    return hits


class KafkaEraser:
    """Truncates partitions and rewrites changelogs through the admin API."""

    def __init__(self, bootstrap: Broker) -> None:
        self.bootstrap = bootstrap
        self.admin = AIOKafkaAdminClient(**client_options(bootstrap), request_timeout_ms=30000)

    async def __aenter__(self) -> KafkaEraser:
        await start_client(self.admin, self.bootstrap)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.admin.close()

    async def processed_up_to(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """Per partition, the lowest offset any consumer group has committed
        (partitions no group reads are missing)."""
        wanted = set(tps)
        floor: dict[TopicPartition, int] = {}
        for group_id, *_ in await self.admin.list_consumer_groups():
            offsets = await self.admin.list_consumer_group_offsets(
                group_id, partitions=sorted(wanted)
            )
            for tp, meta in offsets.items():
                if tp in wanted and meta.offset >= 0:
                    floor[tp] = min(floor.get(tp, meta.offset), meta.offset)
        return floor

    async def truncate_processed(self, hits: dict[TopicPartition, int]) -> tuple[int, list[str]]:
        """Drop each partition's head up to just after the person's last record,
        where every consumer group is past it; the rest is returned as pending."""
        floor = await self.processed_up_to(hits)
        ready = {
            tp: RecordsToDelete(last + 1)
            for tp, last in hits.items()
            if tp not in floor or floor[tp] > last
        }
        if ready:
            await self.admin.delete_records(ready)
        pending = sorted(f"{tp.topic}/{tp.partition}" for tp in hits if tp not in ready)
        return len(ready), pending

    async def erase_from_topics(
        self, topics: list[str], person: Person, timeout: float
    ) -> tuple[int, list[str]]:
        """Repeat find → truncate until no record mentions the person (records
        still in flight through the pipeline are caught by the next round)."""
        deadline = time.monotonic() + timeout
        truncated: set[str] = set()
        parts = await topic_partitions(self.admin, topics)
        if len(parts) < len(topics):
            raise LeadflowError(f"not every topic of {topics} exists; run `leadflow topics apply`")
        while True:
            hits = await find_in_topics(self.bootstrap, parts, person)
            if not hits:
                return len(truncated), []
            _, pending = await self.truncate_processed(hits)
            truncated |= {f"{tp.topic}/{tp.partition}" for tp in hits} - set(pending)
            if time.monotonic() > deadline:
                return len(truncated), pending or sorted(f"{t.topic}/{t.partition}" for t in hits)
            await asyncio.sleep(0.5 if not pending else 1.0)

    async def make_deletable(self, topic: str) -> None:
        """Changelogs are compacted; DeleteRecords needs `compact,delete`, and
        retention.ms=-1 keeps time-based deletion from ever dropping table state."""
        resource = ConfigResource(ConfigResourceType.TOPIC, topic)
        described = await self.admin.describe_configs([resource])
        current: dict[str, str] = {}
        for response in described:
            for *_, entries in response.resources:
                for name, value, _read_only, source, *_ in entries:
                    if source == 1:  # DYNAMIC_TOPIC_CONFIG: set on this topic
                        current[name] = value
        wanted = {**current, "cleanup.policy": "compact,delete", "retention.ms": "-1"}
        if wanted != current:
            await self.admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic, wanted)]
            )

    async def end_offset(self, tp: TopicPartition) -> int:
        """The partition's last offset + 1, open transactions included (uncommitted:
        what is dropped before it is what is on disk)."""
        reader = KafkaReader(self.bootstrap, [tp], "read_uncommitted", from_beginning=True)
        async with reader:
            return (await reader.end_offsets())[tp]

    async def delete_before(self, tp: TopicPartition, offset: int) -> None:
        """Drop the partition's records before `offset`. Right after `make_deletable`
        the broker may still hold the topic's old `compact` policy and refuse
        (PolicyViolation): the new one takes a moment to reach the partition."""
        deadline = time.monotonic() + POLICY_CHANGE_S
        while True:
            try:
                await self.admin.delete_records({tp: RecordsToDelete(offset)})
                return
            except PolicyViolationError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)


async def request_erasure(
    bootstrap: Broker, topics: Topics, subject: str, person: Person, timeout: float
) -> list[LeadErased]:
    """Send phase `tables` to every partition, wait for all shares, then phase
    `stores` once; return every share's audit record.

    Two rounds (each command its own id): the stores phase waits until every
    record about the person has been processed, so the second round's tables
    phase removes entries that records still in flight wrote after the first,
    and its stores phase anything emitted from those entries meanwhile."""
    # Committed shares only: the worker answers inside its transaction, and a share
    # of an aborted one was redone (a share counts once the worker committed it).
    watcher = KafkaReader(bootstrap, partitions_of([topics.erased]), "read_committed")
    producer = AIOKafkaProducer(**client_options(bootstrap), acks="all")
    await watcher.start()
    try:
        await start_client(producer, bootstrap)
    except KafkaUnavailable:
        await watcher.stop()
        raise
    try:
        done: list[LeadErased] = []
        deadline = time.monotonic() + timeout
        phases: list[tuple[Literal["tables", "stores"], list[int]]] = [
            ("tables", list(range(topics.erasure.partitions))),
            ("stores", [0]),
        ]
        for phase, partitions in phases * 2:
            erasure_id, now = uuid.uuid4(), datetime.now(UTC)
            command = EraseLead(
                event_id=erasure_id,
                occurred_at=now,
                emitted_at=now,
                subject=subject,
                phase=phase,
                **person.command_fields(),
            )
            for p in partitions:
                value = command.model_dump_json().encode()
                await producer.send_and_wait(topics.erasure.name, value, partition=p)
            shares: list[LeadErased] = []
            while len(shares) < len(partitions):
                if time.monotonic() > deadline:
                    raise LeadflowError(
                        f"erasure {erasure_id}: {len(shares)} of {len(partitions)} shares of "
                        f"phase {phase} answered within {timeout:.0f} s; is the worker running?"
                    )
                for _, r in await watcher.poll(timeout_ms=500):
                    share = LeadErased.model_validate_json(r.value or b"")
                    if share.erasure_id == erasure_id and share.phase == phase:
                        shares.append(share)
            done += shares
        return done
    finally:
        await producer.stop()
        await watcher.stop()
