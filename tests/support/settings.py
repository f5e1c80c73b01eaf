"""A tenant of its own on the shared broker: settings with their own topic prefix,
app id, state and port, and the list of tenants a test run must clean up."""

from __future__ import annotations

import asyncio
import socket
import uuid
from pathlib import Path

from pipeline.adapters.kafka.admin import remove_tenants
from pipeline.config.settings import Settings, load_settings

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
