"""Fresh starts: a worker on a tenant the broker has never seen sets its SLA clocks.

Faust declares a table's changelog only while the worker starts; a consumer
that subscribed in between ignored the topic as missing, and `sla-start` then
failed at its first write with `PartitionsMismatch … 0 partitions`, two fresh
starts in three: no reminder, no escalation, ever. The worker now creates every
changelog before it subscribes. The starts run on a broker of their own, new
for this module, each as a new tenant (own topics, own app id, own changelogs).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import BaseModel

from pipeline.adapters.kafka.client import publish
from pipeline.bootstrap import create_app
from pipeline.config.rules import load_rules
from pipeline.config.settings import SHIPPED_RULES
from pipeline.config.topics import load_topics
from pipeline.dev.harness import WorkerProcess
from pipeline.dev.local_kafka import LocalKafka
from pipeline.domain.distribute.routing import RoutingRules
from pipeline.worker.faust_app import table_changelogs
from schemas.lead import LeadAssigned, LeadHandedOff, SlaReminderDue
from tests.support.distribute import ROUTING, SLA_MINUTE_S, Env, at_end, handoff
from tests.support.settings import isolated_settings

FRESH_STARTS = 5  # as the issue asked: five fresh starts in a row on a new broker


@pytest.fixture(scope="module")
def new_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    broker = LocalKafka.private(tmp_path_factory.mktemp("fresh-broker"))
    yield broker.up(log=print).bootstrap
    broker.down(purge=True)


async def first_for(env: Env, lead: LeadHandedOff, seconds: float) -> dict[type, BaseModel]:
    """`lead` handed to sales, then its first assignment and SLA reminder as they come."""
    consumers = {
        LeadAssigned: await at_end(env, env.topics.sales_ready),
        SlaReminderDue: await at_end(env, env.topics.reminders),
    }
    await publish(
        env.settings.kafka_bootstrap,
        env.topics.handoff.name,
        [lead.model_dump_json().encode()],
        key=str(lead.lead_id).encode(),
    )
    found: dict[type, BaseModel] = {}
    deadline = time.monotonic() + seconds
    try:
        while len(found) < len(consumers) and time.monotonic() < deadline:
            for model, consumer in consumers.items():
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for record in records:
                        event = model.model_validate_json(record.value or b"")
                        if getattr(event, "lead_id", None) == lead.lead_id:
                            found.setdefault(model, event)
    finally:
        for consumer in consumers.values():
            await consumer.stop()
    return found


async def changelog_partitions(bootstrap: str, names: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
        return {t["topic"]: len(t.get("partitions") or []) for t in described}
    finally:
        await admin.close()


@pytest.mark.parametrize("start", range(FRESH_STARTS))
def test_a_fresh_worker_sets_sla_clocks_from_its_first_assignment(
    new_broker: str, tmp_path: Path, start: int
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(SHIPPED_RULES, rules)
    (rules / "routing.yaml").write_text(ROUTING)
    RoutingRules.model_validate(yaml.safe_load(ROUTING))
    settings = isolated_settings(new_broker, tmp_path).model_copy(
        update={"rules_dir": rules, "sla_minute_seconds": SLA_MINUTE_S}
    )
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    env = Env(settings, topics)
    log = tmp_path / "worker.log"
    lead = handoff(40, country="CH")  # the `fast` queue: a 3 s SLA here
    with WorkerProcess(settings, log):  # on a tenant nobody has seen: nothing exists yet
        found = asyncio.run(first_for(env, lead, 60))
    expected = {
        c.name: c.partitions
        for c in table_changelogs(create_app(settings, topics, load_rules(settings.rules_dir)))
    }
    live = asyncio.run(changelog_partitions(new_broker, sorted(expected)))

    assert LeadAssigned in found, f"start {start}: not assigned; see {log}"
    assert SlaReminderDue in found, f"start {start}: the SLA clock never ran; see {log}"
    assert "PartitionsMismatch" not in log.read_text()
    assert live == expected  # every table's changelog, with its table's partitions
