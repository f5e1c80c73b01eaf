"""The warehouse sink against the real broker and the real embedded ClickHouse."""

import asyncio
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.adapters.kafka.admin import apply_topics
from pipeline.adapters.kafka.client import publish
from pipeline.adapters.warehouse.clickhouse import EVENTS_TABLE, load_migrations
from pipeline.config.settings import Settings
from pipeline.config.topics import Topics, load_topics
from pipeline.worker.sink import WarehouseSink
from tests.support.factories import captured
from tests.support.settings import isolated_settings

WAIT_S = 60.0


async def committed(settings: Settings, topics: Topics) -> int:
    """Sum of the sink group's committed offsets over the captured topic."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"{settings.app_id}-warehouse",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        parts = [TopicPartition(topics.captured.name, p) for p in range(topics.captured.partitions)]
        return sum([await consumer.committed(tp) or 0 for tp in parts])
    finally:
        await consumer.stop()


async def until(check, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + WAIT_S
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


def test_sink_stores_each_event_once_and_commits_only_after_the_insert(
    kafka: str, tmp_path: Path
) -> None:
    settings = isolated_settings(kafka, tmp_path)
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    leads = [captured(inquiry_id=f"sink-{n}") for n in range(20)]
    first = [lead.model_dump_json().encode() for lead in leads[:10]]
    repeats = first[:3]  # redelivered after a crash: same event ids
    later = [lead.model_dump_json().encode() for lead in leads[10:]]

    async def scenario() -> None:
        await apply_topics(kafka, topics.all())
        sink = WarehouseSink(settings, topics)
        await sink.start()
        try:
            await publish(kafka, topics.captured.name, [*first, *repeats, b"not json"])

            async def all_stored() -> bool:
                rows = await sink.call(
                    lambda w: w.query(f"SELECT count() AS n FROM {EVENTS_TABLE} FINAL")
                )
                return int(rows[0]["n"]) == 11

            await until(all_stored, "10 events + 1 unreadable message in the warehouse")
            await until(
                lambda: _eq(committed(settings, topics), 14), "offsets of all 14 messages committed"
            )

            # The warehouse goes away: the sink must hold its offsets, not skip.
            await sink.call(lambda w: w.execute(f"DROP TABLE {EVENTS_TABLE}"))
            await publish(kafka, topics.captured.name, later)
            await asyncio.sleep(3 * settings.sink_flush_seconds + 1.0)
            assert await committed(settings, topics) == 14

            # It comes back: the held batch is inserted, then committed.
            ddl = load_migrations()[0].statements()[0]
            await sink.call(lambda w: w.execute(ddl))
            await until(
                lambda: _eq(committed(settings, topics), 24), "offsets committed after recovery"
            )
            rows = await sink.call(
                lambda w: w.query(f"SELECT event_id FROM {EVENTS_TABLE} FINAL ORDER BY event_id")
            )
            assert sorted(r["event_id"] for r in rows) == sorted(
                str(x.event_id) for x in leads[10:]
            )
        finally:
            await sink.stop()

    asyncio.run(scenario())


async def _eq(value, expected: int) -> bool:  # type: ignore[no-untyped-def]
    return await value == expected


def test_a_batch_the_warehouse_refuses_halts_the_sink_and_is_stored_after_the_fix(
    kafka: str, tmp_path: Path
) -> None:
    """One event among good ones that the table refuses (a constraint added by hand):
    no retry loop, no commit past the batch, the sink says why it halted; fixed and
    restarted, it stores every event once."""
    settings = isolated_settings(kafka, tmp_path)
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    leads = [captured(inquiry_id=f"refused-{n}") for n in range(8)]
    refused = leads[5]
    values = [lead.model_dump_json().encode() for lead in leads]
    check = f"event_id != toUUID('{refused.event_id}')"

    async def stored(sink: WarehouseSink) -> list[str]:
        rows = await sink.call(lambda w: w.query(f"SELECT event_id FROM {EVENTS_TABLE} FINAL"))
        return sorted(r["event_id"] for r in rows)

    async def scenario() -> None:
        await apply_topics(kafka, topics.all())
        sink = WarehouseSink(settings, topics)
        await sink.start()
        try:
            await sink.call(
                lambda w: w.execute(f"ALTER TABLE {EVENTS_TABLE} ADD CONSTRAINT no_x CHECK {check}")
            )
            await publish(kafka, topics.captured.name, values)

            async def halted() -> bool:
                return (await sink.lag())["halted"] is not None

            await until(halted, "the sink halts on the refused batch")
            assert "VIOLATED_CONSTRAINT" in (await sink.lag())["halted"]
            inserted, held = sink.inserted, await committed(settings, topics)
            assert str(refused.event_id) not in await stored(sink)
            assert held < len(values)  # never past the refused batch
            # It reads no further and does not retry: more messages stay unread.
            await publish(kafka, topics.captured.name, values[:2])
            await asyncio.sleep(3 * settings.sink_flush_seconds + 1.0)
            assert (sink.inserted, await committed(settings, topics)) == (inserted, held)
            assert (await sink.lag())["unread"] >= 2

            # The operator drops the constraint and restarts.
            await sink.call(lambda w: w.execute(f"ALTER TABLE {EVENTS_TABLE} DROP CONSTRAINT no_x"))
        finally:
            await sink.stop()
        again = WarehouseSink(settings, topics)
        await again.start()
        try:
            total = len(values) + 2
            await until(lambda: _eq(committed(settings, topics), total), "all offsets committed")
            assert (await again.lag())["halted"] is None
            assert await stored(again) == sorted(str(lead.event_id) for lead in leads)
        finally:
            await again.stop()

    asyncio.run(scenario())
