"""Fault test: the warehouse fails while inquiries flow, then comes back.

The failure is ClickHouse's own: the sink's `lead_events` table is detached
(`DETACH TABLE`, as an operator or a broken disk would take it away), so every
insert fails with UNKNOWN_TABLE until it is attached again. The worker routes
(its `warehouse_sink` is off) while the sink runs here, on this test's event
loop, beside the consumer that watches the terminal topics: routing goes on
during the outage, the watcher is never held up by the failing sink, the sink
holds its offsets, and it catches up afterwards with each event stored once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from pipeline.adapters.kafka.admin import apply_topics
from pipeline.adapters.kafka.client import publish
from pipeline.adapters.warehouse.clickhouse import EVENTS_TABLE
from pipeline.config.topics import Topics, load_topics
from pipeline.dev.harness import OutcomeWatcher, WorkerProcess
from pipeline.dev.traffic import demo_inquiries
from pipeline.domain.messages import Position
from pipeline.worker.sink import WarehouseSink
from tests.support.settings import isolated_settings

PER_PHASE = 60
TIMEOUT_S = 240.0


async def accounted(watcher: OutcomeWatcher, sent: list[tuple[bytes, Position]]) -> list[str]:
    """Poll until every inquiry sent is accounted for; the refs of those that are not."""
    return await watcher.unaccounted(sent, TIMEOUT_S)


async def caught_up(sink: WarehouseSink) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while (await sink.lag())["lag"] != 0:
        assert time.monotonic() < deadline, await sink.lag()
        await asyncio.sleep(0.3)


async def stored_ids(sink: WarehouseSink, final: bool = True) -> tuple[int, set[str]]:
    rows = await sink.call(
        lambda w: w.query(f"SELECT event_id FROM {EVENTS_TABLE} {'FINAL' if final else ''}")
    )
    return len(rows), {r["event_id"] for r in rows}


def test_a_warehouse_outage_does_not_stop_routing_and_the_sink_catches_up(
    kafka: str, tmp_path: Path
) -> None:
    settings = isolated_settings(kafka, tmp_path)
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    router = settings.model_copy(update={"warehouse_sink": False})
    worker = WorkerProcess(router, tmp_path / "worker.log")
    values = [
        m.value for m in demo_inquiries(2 * PER_PHASE, seed=21, run=f"{uuid.uuid4().hex[:6]}-")
    ]

    async def scenario() -> None:
        await apply_topics(kafka, topics.all())
        watcher = OutcomeWatcher(kafka, topics)
        await watcher.start()
        sink = WarehouseSink(settings, topics)
        await sink.start()
        try:
            await outage(sink, watcher, topics)
            count, ids = await stored_ids(sink)
        finally:
            await sink.stop()
            await watcher.stop()
        # Everything the terminal topics hold is stored, each event once, and no
        # lead has two owners.
        assert count == len(ids)
        assert set(watcher.outcomes.deliveries) <= ids
        for lead, events in watcher.outcomes.sales_ready.items():
            assert len({e.payload.owner.rep_id for e in events}) == 1, lead
        await replay_is_harmless(count, ids)

    async def outage(sink: WarehouseSink, watcher: OutcomeWatcher, topics: Topics) -> None:
        before = await publish(kafka, topics.inquiries.name, values[:PER_PHASE])
        assert await accounted(watcher, list(zip(values, before, strict=False))) == []
        await caught_up(sink)
        stored_before = sink.inserted

        await sink.call(lambda w: w.execute(f"DETACH TABLE {EVENTS_TABLE}"))
        during = await publish(kafka, topics.inquiries.name, values[PER_PHASE:])
        sent = list(zip(values[PER_PHASE:], during, strict=True))
        assert await accounted(watcher, sent) == []  # routed and answered without the warehouse
        assert sink.inserted == stored_before  # nothing stored meanwhile …
        assert (await sink.lag())["lag"] > 0  # … and nothing committed past it: the sink lags

        await sink.call(lambda w: w.execute(f"ATTACH TABLE {EVENTS_TABLE}"))
        await caught_up(sink)
        assert sink.inserted > stored_before

    async def replay_is_harmless(count: int, ids: set[str]) -> None:
        """A full replay into the same warehouse (a sink whose commits were all
        lost) changes nothing: merged, the table holds one row per event."""
        again = settings.model_copy(update={"app_id": f"{settings.app_id}-replay"})
        replay = WarehouseSink(again, topics)
        await replay.start()
        try:
            await caught_up(replay)
            await replay.call(lambda w: w.execute(f"OPTIMIZE TABLE {EVENTS_TABLE} FINAL"))
            assert await stored_ids(replay, final=False) == (count, ids)
        finally:
            await replay.stop()

    worker.start()
    try:
        asyncio.run(scenario())
        assert worker.process is not None and worker.process.poll() is None
    finally:
        worker.stop()
