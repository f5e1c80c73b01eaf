"""Create missing topics and report drift, through the Kafka admin API."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.protocol.admin import DeleteGroupsRequest

from pipeline.adapters.kafka.connect import start_client
from pipeline.adapters.kafka.security import Broker, client_options
from pipeline.config.topics import Declared
from pipeline.errors import KafkaUnavailable


@dataclass
class ApplyReport:
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    drift: dict[str, list[str]] = field(default_factory=dict)


async def apply_topics(
    bootstrap: Broker,
    specs: Sequence[Declared],
    replication_factor: int = 1,
    min_insync_replicas: int | None = None,
) -> ApplyReport:
    """Create what is missing; never alter a live topic, only report how it differs
    from topics.yaml (partitions, retention, clean-up) and from the settings
    (replication factor, min.insync.replicas when set).
    The worker's first call to Kafka at start: a broker that cannot be reached or
    refuses the credentials is one line that says why (`start_client`)."""
    durability = Durability(replication_factor, min_insync_replicas)
    admin = AIOKafkaAdminClient(**client_options(bootstrap), request_timeout_ms=15000)
    await start_client(admin, bootstrap)
    report = ApplyReport()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        present = [s for s in specs if s.name in existing]
        if missing:
            answer = await admin.create_topics(
                [
                    NewTopic(
                        s.name,
                        s.partitions,
                        replication_factor,
                        topic_configs=s.kafka_config() | durability.config(),
                    )
                    for s in missing
                ]
            )
            # a topic another client made a moment ago may be missing from the broker's
            # metadata still: the controller says it exists, so it is checked, not counted new
            there = {e[0] for e in answer.topic_errors if e[1] == TopicAlreadyExistsError.errno}
            made = [s for s in missing if s.name not in there]
            present += [s for s in missing if s.name in there]
            report.created = [s.name for s in made]
            if made:
                await _await_leaders(admin, made)
        if present:
            await _find_drift(admin, present, durability, report)
    except TopicAlreadyExistsError:
        pass  # another process created it between list and create
    finally:
        await admin.close()
    return report


async def _await_leaders(
    admin: AIOKafkaAdminClient, specs: Sequence[Declared], timeout: float = 30.0
) -> None:
    """Wait until every partition of the new topics has a leader: a consumer that
    subscribes earlier ignores the topic as missing and never reads it."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        described = await admin.describe_topics([s.name for s in specs])
        ready = {
            t["topic"]
            for t in described
            if t.get("error_code") == 0
            and t.get("partitions")
            and all(p.get("leader", -1) >= 0 for p in t["partitions"])
        }
        if all(s.name in ready for s in specs):
            return
        await asyncio.sleep(0.2)
    raise KafkaUnavailable(f"new topics got no partition leaders within {timeout:.0f} s")


@dataclass(frozen=True)
class Durability:
    """How many brokers hold each topic and must have a write before it counts
    (LEADFLOW_TOPIC_REPLICATION_FACTOR, LEADFLOW_TOPIC_MIN_INSYNC_REPLICAS)."""

    replication_factor: int
    min_insync_replicas: int | None

    def config(self) -> dict[str, str]:
        isr = self.min_insync_replicas
        return {} if isr is None else {"min.insync.replicas": str(isr)}

    def drift(self, partitions: list[dict[str, Any]], live: dict[str, str]) -> list[str]:
        problems = []
        replicas = {len(p.get("replicas", [])) for p in partitions}
        if partitions and replicas != {self.replication_factor}:
            shown = ", ".join(str(n) for n in sorted(replicas))
            problems.append(f"replication factor: live {shown}, settings {self.replication_factor}")
        for key, wanted in self.config().items():
            if live.get(key) != wanted:
                problems.append(f"{key}: live {live.get(key)}, settings {wanted}")
        return problems


async def _find_drift(
    admin: AIOKafkaAdminClient,
    specs: Sequence[Declared],
    durability: Durability,
    report: ApplyReport,
) -> None:
    described = {t["topic"]: t for t in await admin.describe_topics([s.name for s in specs])}
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, s.name) for s in specs]
    )
    live_configs: dict[str, dict[str, str]] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            live_configs[resource["resource_name"]] = {
                entry["config_names"]: entry["config_value"] for entry in resource["config_entries"]
            }
    for spec in specs:
        problems = []
        partitions = described.get(spec.name, {}).get("partitions", [])
        if len(partitions) != spec.partitions:
            problems.append(f"partitions: live {len(partitions)}, topics.yaml {spec.partitions}")
        live = live_configs.get(spec.name, {})
        for key, wanted in spec.kafka_config().items():
            if live.get(key) != wanted:
                problems.append(f"{key}: live {live.get(key)}, topics.yaml {wanted}")
        problems += durability.drift(partitions, live)
        if problems:
            report.drift[spec.name] = problems
        else:
            report.unchanged.append(spec.name)


@dataclass
class Removed:
    topics: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)


GROUP_NOT_EMPTY = 68


async def remove_tenants(
    bootstrap: Broker, prefixes: Sequence[str], group_wait: float = 30.0
) -> Removed:
    """Delete every topic and consumer group whose name starts with one of `prefixes`
    (a tenant's topic prefix and app id: its topics, table changelogs and groups).

    For what a test run or a demo tenant made on a shared broker. A group that still
    has members is tried again for `group_wait` seconds (a consumer that stopped
    without leaving stays a member until its session times out), then left.
    """
    if not prefixes:
        return Removed()
    admin = AIOKafkaAdminClient(**client_options(bootstrap), request_timeout_ms=30000)
    await start_client(admin, bootstrap)
    try:
        ours = tuple(prefixes)
        removed = Removed(topics=[t for t in await admin.list_topics() if t.startswith(ours)])
        if removed.topics:
            await admin.delete_topics(removed.topics)
        groups = [g for g, *_ in await admin.list_consumer_groups() if g.startswith(ours)]
        deadline = asyncio.get_running_loop().time() + group_wait
        while groups:
            for group in list(groups):
                node = await admin.find_coordinator(group)
                response = await admin._send_request_to_node(node, DeleteGroupsRequest([group]))
                if all(code != GROUP_NOT_EMPTY for _, code in response.results):
                    groups.remove(group)
                    removed.groups.append(group)
            if asyncio.get_running_loop().time() > deadline:
                break
            if groups:  # a member that left without a goodbye times out on its own
                await asyncio.sleep(1.0)
        return removed
    finally:
        await admin.close()
