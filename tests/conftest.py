"""Fixtures shared by the integration and end-to-end tiers.

The broker is the real Apache Kafka that `leadflow kafka up` runs. It is
started once per test run if it is not running yet, and stopped again at the
end if this run started it. Each test module gets topics under its own prefix,
so tests never see each other's messages.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.kafka_admin import remove_tenants
from pipeline.local_kafka import LocalKafka
from pipeline.messages import Position
from pipeline.runtime import WorkerProcess, settings_env
from pipeline.settings import PROJECT_ROOT, Settings, load_settings
from pipeline.topics import Topics, TopicSpec, load_topics

TENANTS: list[str] = []
"""The topic prefixes and app ids this test run made topics and groups under."""


def tenant(settings: Settings) -> Settings:
    """Note a tenant's names, so the run deletes its topics, changelogs and groups."""
    TENANTS.extend([settings.topic_prefix, settings.app_id])  # changelogs: app id first
    return settings


@pytest.fixture(scope="session")
def kafka() -> Iterator[str]:
    broker = LocalKafka(load_settings())
    was_running = broker.status().running
    status = broker.up(log=print)
    yield status.bootstrap
    # leave nothing on a shared broker: every tenant's topics, changelogs and groups
    removed = asyncio.run(remove_tenants(status.bootstrap, TENANTS))
    print(f"\nremoved {len(removed.topics)} topics, {len(removed.groups)} groups of this run")
    if not was_running:
        broker.down()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def leadflow(
    settings: Settings, *args: str, timeout: float = 60.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`leadflow ARGS` as its own process (it configures logging, which must not leak
    into the test process), with these settings and any extra environment."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        cwd=PROJECT_ROOT,
        env={**settings_env(settings), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def isolated_settings(bootstrap: str, state_dir: Path) -> Settings:
    """Settings of a fresh tenant: own topics, consumer groups, state and port."""
    run = uuid.uuid4().hex[:8]
    settings = load_settings(
        kafka_bootstrap=bootstrap,
        topic_prefix=f"t{run}.",
        app_id=f"leadflow-test-{run}",
        state_dir=state_dir,
        web_port=free_port(),
        sink_flush_seconds=0.3,
        log_format="json",
        operator_keys={"tests": "test-operator-key"},
    )
    return tenant(settings)


@contextmanager
def started_worker(bootstrap: str, state: Path) -> Iterator[tuple[Settings, Topics, WorkerProcess]]:
    """A worker process of a fresh tenant (isolated settings), stopped on the way out."""
    settings = isolated_settings(bootstrap, state)
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    worker = WorkerProcess(settings, state / "worker.log")
    worker.start()
    try:
        yield settings, topics, worker
    finally:
        worker.stop()


async def read_topic(bootstrap: str, spec: TopicSpec) -> list[tuple[Position, bytes | None]]:
    """Everything on a topic now, from the beginning, with each message's position."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        parts = [TopicPartition(spec.name, p) for p in range(spec.partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        found: list[tuple[Position, bytes | None]] = []
        while any([await consumer.position(tp) < ends[tp] for tp in parts]):
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                found += [(Position(tp.topic, tp.partition, r.offset), r.value) for r in records]
        return found
    finally:
        await consumer.stop()
