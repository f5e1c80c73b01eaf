"""Fault tests: the worker is killed (SIGKILL) again and again while inquiries
flow, and restarted each time.

Afterwards every inquiry is accounted for in the terminal topics as a
read_committed consumer sees them, no lead has two owners, and the warehouse
holds each event exactly once. With Kafka transactions (exactly_once) no
terminal event may arrive twice either; with at_least_once a repeat is allowed
(it carries the same event_id, so a CRM drops it) and is printed.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.adapters.kafka.admin import apply_topics
from pipeline.adapters.kafka.client import publish
from pipeline.adapters.warehouse.clickhouse import EVENTS_TABLE, open_warehouse
from pipeline.adapters.worker_api import get_json, wait_until_stored
from pipeline.config.topics import TopicSpec, load_topics
from pipeline.dev.harness import Outcomes, OutcomeWatcher, WorkerProcess
from pipeline.dev.local_kafka import LocalKafka
from pipeline.dev.traffic import demo_inquiries
from pipeline.domain.messages import Position
from tests.support.settings import isolated_settings

CHUNKS = 4
PER_CHUNK = 200
TIMEOUT_S = 300.0


GUARANTEE = os.environ.get("LEADFLOW_FAULT_GUARANTEE", "at_least_once")
"""The guarantee under test; the README says why at_least_once is the default."""


@pytest.mark.timeout(600)  # four kills and restarts on a 2-core machine shared with the broker
def test_sigkill_while_inquiries_flow_loses_nothing(kafka: str, tmp_path: Path) -> None:
    guarantee = GUARANTEE
    settings = isolated_settings(kafka, tmp_path).model_copy(
        update={"session_timeout_seconds": 6.0, "processing_guarantee": guarantee}
    )
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    # No re-sent duplicates here: every repeat seen downstream is the crash's doing.
    messages = demo_inquiries(
        CHUNKS * PER_CHUNK, seed=5, run=f"{uuid.uuid4().hex[:6]}-", duplicate_share=0.0
    )
    rng = random.Random(5)

    async def scenario() -> tuple[Outcomes, list[str]]:
        await apply_topics(kafka, topics.all())
        watcher = OutcomeWatcher(kafka, topics)
        await watcher.start()
        pending = []
        worker.start()
        try:
            for chunk in range(CHUNKS):
                values = [m.value for m in messages[chunk * PER_CHUNK : (chunk + 1) * PER_CHUNK]]
                positions = await publish(kafka, topics.inquiries.name, values)
                chunk_messages = list(zip(values, positions, strict=True))
                pending += chunk_messages
                # Pull the plug mid-stream: once part of this chunk came out the other end.
                kill_after = rng.randint(5, PER_CHUNK // 2)
                deadline = time.monotonic() + TIMEOUT_S
                while time.monotonic() < deadline:
                    await watcher.poll(timeout_ms=20)
                    done = sum(watcher.outcomes.accounted(v, at) for v, at in chunk_messages)
                    if done >= kill_after:
                        break
                worker.kill()
                worker.start()
            deadline = time.monotonic() + TIMEOUT_S
            while pending and time.monotonic() < deadline:
                await watcher.poll()
                pending = [(v, at) for v, at in pending if not watcher.outcomes.accounted(v, at)]
        finally:
            await watcher.stop()
        return watcher.outcomes, [at.ref for _, at in pending]

    try:
        outcomes, missing = asyncio.run(scenario())
        asyncio.run(wait_until_stored(settings))
    finally:
        worker.stop()

    print(f"{guarantee}: {CHUNKS} kills, {outcomes.repeats} repeated terminal events")
    assert missing == [], f"{len(missing)} inquiries not accounted for"
    for lead, events in outcomes.sales_ready.items():
        owners = {e.payload.owner.rep_id for e in events}
        assert len(owners) == 1, f"lead {lead} has owners {owners}"
    if guarantee == "exactly_once":
        assert outcomes.repeats == 0
    warehouse = open_warehouse(settings)
    try:
        rows = warehouse.query(
            f"SELECT count() AS n, uniqExact(event_id) AS ids FROM {EVENTS_TABLE} FINAL"
        )
    finally:
        warehouse.close()
    assert rows[0]["n"] == rows[0]["ids"] > 0


def test_sigterm_stores_what_the_worker_has_read(kafka: str, tmp_path: Path) -> None:
    """A clean stop flushes the warehouse batch and commits, without waiting for lag 0."""
    settings = isolated_settings(kafka, tmp_path).model_copy(
        update={"sink_flush_seconds": 30.0}  # only size or stop would flush
    )
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    messages = demo_inquiries(80, seed=9, run=f"{uuid.uuid4().hex[:6]}-")

    async def scenario() -> None:
        await apply_topics(kafka, topics.all())
        watcher = OutcomeWatcher(kafka, topics)
        await watcher.start()
        values = [m.value for m in messages]
        pending = list(
            zip(values, await publish(kafka, topics.inquiries.name, values), strict=True)
        )
        deadline = time.monotonic() + TIMEOUT_S
        while pending and time.monotonic() < deadline:
            await watcher.poll()
            pending = [(v, at) for v, at in pending if not watcher.outcomes.accounted(v, at)]
        await watcher.stop()
        assert pending == []

    worker.start()
    try:
        asyncio.run(scenario())
        deadline = time.monotonic() + TIMEOUT_S
        while (lag := get_json(settings, "/v1/warehouse/lag"))["unread"] != 0:
            assert time.monotonic() < deadline, lag
            time.sleep(0.2)
        assert lag["buffered"] > 0  # read, not yet stored: only the stop can flush it
    finally:
        code = worker.stop()
    assert code == 0
    # Every inquiry was processed before the stop, so its offset is committed:
    # a restart reads none of them again.
    assert (
        asyncio.run(uncommitted(settings.kafka_bootstrap, settings.app_id, topics.inquiries)) == 0
    )
    warehouse = open_warehouse(settings)
    try:
        counts = warehouse.query(
            "SELECT concat(event_type, if(event_type = 'TouchScheduled', concat(':', "
            "JSONExtractString(payload, 'payload', 'purpose')), '')) AS kind, "
            f"count() AS n FROM {EVENTS_TABLE} FINAL GROUP BY kind"
        )
    finally:
        warehouse.close()
    stored = {row["kind"]: int(row["n"]) for row in counts}
    distinct = sum(m.kind != "duplicate" for m in messages)
    assert stored["InquiryReceived"] + stored.get("Unreadable", 0) == distinct
    nurtured = stored.get("LeadNurtured", 0)
    assert stored.get("LeadAssigned", 0) + nurtured == stored["LeadCaptured"]
    assert stored["TouchScheduled:fulfillment"] == stored["LeadCaptured"]  # every one answered


async def uncommitted(bootstrap: str, group: str, spec: TopicSpec) -> int:
    """Messages on `spec` beyond the group's committed offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        parts = [TopicPartition(spec.name, p) for p in range(spec.partitions)]
        ends = await consumer.end_offsets(parts)
        return sum([ends[tp] - (await consumer.committed(tp) or 0) for tp in parts])
    finally:
        await consumer.stop()


@pytest.mark.timeout(600)  # a broker restart, worker restarts and 300 inquiries on 2 cores
def test_broker_restart_mid_stream_loses_nothing(kafka: str, tmp_path: Path) -> None:
    """The broker goes down while inquiries flow and comes back.

    A worker may exit when the broker is gone (Faust gives up on a node that
    is not ready); like systemd with Restart=on-failure, the test starts it
    again. Nothing may be lost either way.
    """
    broker = LocalKafka.private(tmp_path / "broker")  # stopped and started: not the shared one
    kafka = broker.up(log=print).bootstrap
    settings = isolated_settings(kafka, tmp_path)
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    values = [m.value for m in demo_inquiries(300, seed=13, run=f"{uuid.uuid4().hex[:6]}-")]
    restarts = 0

    async def first_half() -> list[tuple[bytes, Position]]:
        """Publish half, and return once the worker is busy with it."""
        await apply_topics(kafka, topics.all())
        positions = await publish(kafka, topics.inquiries.name, values[:150])
        watcher = OutcomeWatcher(kafka, topics, from_beginning=True)
        await watcher.start()
        deadline = time.monotonic() + TIMEOUT_S
        while len(watcher.outcomes.deliveries) < 20 and time.monotonic() < deadline:
            await watcher.poll(timeout_ms=20)
        await watcher.stop()
        return list(zip(values[:150], positions, strict=True))

    async def second_half(sent: list[tuple[bytes, Position]]) -> list[str]:
        nonlocal restarts
        watcher = OutcomeWatcher(kafka, topics, from_beginning=True)
        await watcher.start()
        positions = await publish(kafka, topics.inquiries.name, values[150:])
        pending = sent + list(zip(values[150:], positions, strict=True))
        deadline = time.monotonic() + TIMEOUT_S
        while pending and time.monotonic() < deadline:
            if worker.process is not None and worker.process.poll() is not None:
                restarts += 1
                worker.start()
            await watcher.poll()
            pending = [(v, at) for v, at in pending if not watcher.outcomes.accounted(v, at)]
        await watcher.stop()
        return [at.ref for _, at in pending]

    worker.start()
    try:
        sent = asyncio.run(first_half())
        broker.down()  # mid-stream: the worker is still working through the first half
        time.sleep(3.0)
        broker.up()
        missing = asyncio.run(second_half(sent))
    finally:
        worker.stop()
        broker.down()
    print(f"broker restart: the worker was restarted {restarts} time(s)")
    assert missing == []
