"""Fixtures shared by the integration and end-to-end tiers (their helpers are in
tests/support/).

The broker is the real Apache Kafka that `leadflow kafka up` runs. It is
started once per test run if it is not running yet, and stopped again at the
end if this run started it. Each test module gets topics under its own prefix,
so tests never see each other's messages.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipeline.config.settings import load_settings
from pipeline.dev.local_kafka import LocalKafka
from tests.support.settings import TENANTS, remove


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
