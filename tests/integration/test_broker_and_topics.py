import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pipeline.adapters.kafka.admin import apply_topics, remove_tenants
from pipeline.bootstrap import create_app
from pipeline.config.rules import load_rules
from pipeline.config.settings import load_settings
from pipeline.config.topics import ChangelogSpec, load_topics
from pipeline.dev.local_kafka import LocalKafka
from pipeline.errors import ConfigError
from pipeline.worker.faust_app import table_changelogs
from schemas.lead import LeadCaptured
from tests.support.factories import captured
from tests.support.processes import leadflow
from tests.support.settings import isolated_settings


def test_up_is_idempotent_and_keeps_data_in_the_state_dir(kafka: str) -> None:
    broker = LocalKafka(load_settings())
    first = broker.status()
    again = broker.up()
    assert first.running and again.running
    assert again.pid == first.pid
    assert f"log.dirs={broker.data}" in broker.properties.read_text()
    assert (broker.data / "meta.properties").exists()


def test_apply_creates_missing_topics_then_finds_them_unchanged(kafka: str, tmp_path: Path) -> None:
    settings = isolated_settings(kafka, tmp_path)
    specs = load_topics(settings.topics_file, settings.topic_prefix).all()
    first = asyncio.run(apply_topics(kafka, specs))
    assert sorted(first.created) == sorted(s.name for s in specs)
    second = asyncio.run(apply_topics(kafka, specs))
    assert second.created == [] and second.drift == {}
    assert sorted(second.unchanged) == sorted(s.name for s in specs)


def test_apply_reports_drift_and_leaves_the_live_topic_alone(kafka: str, tmp_path: Path) -> None:
    settings = isolated_settings(kafka, tmp_path)
    spec = load_topics(settings.topics_file, settings.topic_prefix).captured

    async def scenario() -> list[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
        await admin.start()
        await admin.create_topics(
            [NewTopic(spec.name, 2, 1, topic_configs={"retention.ms": "1000"})]
        )
        while not (await admin.describe_topics([spec.name]))[0]["partitions"]:
            await asyncio.sleep(0.1)  # until the new topic's metadata has propagated
        report = await apply_topics(kafka, [spec])
        live = await admin.describe_topics([spec.name])
        await admin.close()
        assert len(live[0]["partitions"]) == 2
        return report.drift[spec.name]

    problems = asyncio.run(scenario())
    assert any(p.startswith("partitions: live 2") for p in problems)
    assert any(p.startswith("retention.ms: live 1000") for p in problems)


def test_an_event_survives_the_round_trip_through_the_broker(kafka: str, tmp_path: Path) -> None:
    settings = isolated_settings(kafka, tmp_path)
    spec = load_topics(settings.topics_file, settings.topic_prefix).captured
    lead = captured()

    async def scenario() -> LeadCaptured:
        await apply_topics(kafka, [spec])
        producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
        await producer.start()
        await producer.send_and_wait(spec.name, lead.model_dump_json().encode(), key=lead.key())
        await producer.stop()
        consumer = AIOKafkaConsumer(
            spec.name, bootstrap_servers=kafka, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), timeout=30)
        finally:
            await consumer.stop()
        assert record.key == str(lead.lead_id).encode()
        return spec.model.model_validate_json(record.value)  # type: ignore[return-value]

    assert asyncio.run(scenario()) == lead


def test_apply_creates_every_tables_changelog_with_the_tables_partitions(
    kafka: str, tmp_path: Path
) -> None:
    """Before a worker subscribes: Faust would declare them only while it starts, and
    a table whose changelog a consumer had seen as missing failed its first write."""
    settings = isolated_settings(kafka, tmp_path)
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    app = create_app(settings, topics, load_rules(settings.rules_dir))
    changelogs = {c.name: c.partitions for c in table_changelogs(app)}
    assert f"{settings.app_id}-sla-due-changelog" in changelogs

    applied = leadflow(settings, "topics", "apply")
    assert applied.returncode == 0, applied.stderr

    async def live() -> dict[str, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
        await admin.start()
        try:
            described = await admin.describe_topics(sorted(changelogs))
            return {t["topic"]: len(t.get("partitions") or []) for t in described}
        finally:
            await admin.close()

    assert asyncio.run(live()) == changelogs
    again = leadflow(settings, "topics", "apply")
    assert "created" not in again.stdout and "drift" not in again.stdout


def test_removing_a_tenant_deletes_its_topics_and_groups_and_nothing_else(
    kafka: str, tmp_path: Path
) -> None:
    gone, kept = isolated_settings(kafka, tmp_path), isolated_settings(kafka, tmp_path)

    async def scenario() -> tuple[set[str], set[str], set[str]]:
        names = {}
        for settings in (gone, kept):
            spec = load_topics(settings.topics_file, settings.topic_prefix).captured
            changelog = ChangelogSpec(f"{settings.app_id}-some-table-changelog", 2)
            await apply_topics(kafka, [spec, changelog])
            consumer = AIOKafkaConsumer(
                spec.name, bootstrap_servers=kafka, group_id=f"{settings.app_id}-warehouse"
            )
            await consumer.start()
            await consumer.getmany(timeout_ms=2000)
            await consumer.commit({TopicPartition(spec.name, 0): 0})
            await consumer.stop()
            names[settings.app_id] = {spec.name, changelog.name}
        removed = await remove_tenants(kafka, [gone.topic_prefix, gone.app_id])
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
        await admin.start()
        topics = set(await admin.list_topics())
        groups = {g for g, *_ in await admin.list_consumer_groups()}
        await admin.close()
        assert set(removed.topics) == names[gone.app_id]
        assert removed.groups == [f"{gone.app_id}-warehouse"]
        return topics, groups, names[kept.app_id]

    topics, groups, still = asyncio.run(scenario())
    assert still <= topics and f"{kept.app_id}-warehouse" in groups
    assert not any(t.startswith((gone.topic_prefix, gone.app_id)) for t in topics)
    assert f"{gone.app_id}-warehouse" not in groups


def test_apply_creates_topics_with_the_settings_durability_and_reports_other_live_values(
    kafka: str, tmp_path: Path
) -> None:
    """Replication and min.insync.replicas come from the settings (issue 18 point 4):
    new topics get them, a live topic that differs is drift, never altered. One
    broker here, so one replica: the drift is shown by asking for more."""
    settings = isolated_settings(kafka, tmp_path)
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    specs = [topics.captured, topics.qualified]

    async def scenario() -> tuple[list[str], list[str], dict[str, list[str]]]:
        created = await apply_topics(kafka, specs[:1], 1, min_insync_replicas=1)
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
        await admin.start()
        made = specs[1]  # as topics.yaml has it, with the broker's default min ISR
        await admin.create_topics(
            [NewTopic(made.name, made.partitions, 1, topic_configs=made.kafka_config())]
        )
        await admin.close()
        same = await apply_topics(kafka, specs, 1, min_insync_replicas=1)
        stricter = await apply_topics(kafka, specs, 3, min_insync_replicas=2)
        return created.created, same.unchanged, stricter.drift

    created, unchanged, drift = asyncio.run(scenario())
    assert created == [specs[0].name]
    # the broker's default min.insync.replicas is 1 (pipeline/defaults/kafka/server.properties)
    assert sorted(unchanged) == sorted(s.name for s in specs)
    for spec in specs:
        assert "replication factor: live 1, settings 3" in drift[spec.name]
        assert "min.insync.replicas: live 1, settings 2" in drift[spec.name]


def test_more_replicas_in_sync_than_there_are_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="LEADFLOW_TOPIC_MIN_INSYNC_REPLICAS"):
        load_settings(topic_replication_factor=1, topic_min_insync_replicas=2)
    assert load_settings(topic_replication_factor=3, topic_min_insync_replicas=2)
