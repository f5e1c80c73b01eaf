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

from pipeline.adapters.kafka.admin import remove_tenants
from pipeline.adapters.kafka.reader import partitions_of, read_to_end
from pipeline.config.settings import PROJECT_ROOT, Settings, load_settings
from pipeline.config.topics import Topics, TopicSpec, load_topics
from pipeline.dev.harness import WorkerProcess, settings_env
from pipeline.dev.local_kafka import LocalKafka
from pipeline.domain.messages import Position

TENANTS: list[tuple[str, str]] = []
"""(broker, name prefix): the topic prefixes and app ids this run made topics,
changelogs and consumer groups under."""


def tenant(settings: Settings) -> Settings:
    """Note a tenant's names, so the run deletes its topics, changelogs and groups."""
    for prefix in (settings.topic_prefix, settings.app_id):  # changelogs: app id first
        TENANTS.append((settings.kafka_bootstrap, prefix))
    return settings


def remove(tenants: list[tuple[str, str]], bootstrap: str) -> None:
    """Delete what `tenants` made on the broker at `bootstrap` (a private broker the
    tests started is gone with its data already)."""
    prefixes = [prefix for broker, prefix in tenants if broker == bootstrap]
    removed = asyncio.run(remove_tenants(bootstrap, prefixes))
    if removed.topics or removed.groups:
        print(f"\nremoved {len(removed.topics)} topics, {len(removed.groups)} groups")


@pytest.fixture(scope="session")
def kafka() -> Iterator[str]:
    broker = LocalKafka(load_settings())
    was_running = broker.status().running
    status = broker.up(log=print)
    yield status.bootstrap
    remove(TENANTS, status.bootstrap)  # whatever a module's clean-up could not
    if not was_running:
        broker.down()


@pytest.fixture(scope="module", autouse=True)
def module_tenants() -> Iterator[None]:
    """Leave nothing on the shared broker once a module is done: its tenants'
    topics, changelogs and groups go (a broker holding every module's partitions at
    once runs out of open files). Set up first, so torn down after the module's
    workers stopped."""
    first = len(TENANTS)
    yield
    made, shared = TENANTS[first:], load_settings().kafka_bootstrap
    if any(broker == shared for broker, _ in made):
        remove(made, shared)


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
        [sys.executable, "-m", "pipeline.entrypoints.cli", *args],
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
    """Everything on a topic now, from the beginning, with each message's position
    (committed records: what the worker's transactions published)."""
    return [
        (Position(tp.topic, tp.partition, r.offset), r.value)
        async for tp, r in read_to_end(bootstrap, partitions_of([spec]), "read_committed")
    ]
