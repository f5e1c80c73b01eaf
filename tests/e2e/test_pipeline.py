"""The worker process running against the real broker: inquiries in, every one
accounted for in the output topics, and exactly one warehouse row per event."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.adapters.kafka.client import publish
from pipeline.adapters.warehouse.clickhouse import EVENTS_TABLE, open_warehouse
from pipeline.adapters.worker_api import get_json, wait_until_stored
from pipeline.config.settings import Settings
from pipeline.config.topics import Topics
from pipeline.config.yaml_model import load_yaml_model
from pipeline.dev.harness import Outcomes, OutcomeWatcher, WorkerProcess
from pipeline.dev.traffic import DemoMessage, demo_inquiries
from pipeline.domain.distribute.routing import RoutingRules
from pipeline.domain.messages import Position
from pipeline.reporting.events import event_row, funnel_by_channel
from schemas.rejected import MessageRejected
from tests.support.broker import read_topic
from tests.support.processes import started_worker

INQUIRIES = 150
TIMEOUT_S = 180.0


class Run:
    def __init__(self, settings: Settings, topics: Topics, worker: WorkerProcess) -> None:
        self.settings, self.topics, self.worker = settings, topics, worker
        self.messages: list[DemoMessage] = []
        self.positions: list[Position] = []
        self.garbage: list[Position] = []
        self.outcomes = Outcomes()


@pytest.fixture(scope="module")
def run(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    with started_worker(kafka, tmp_path_factory.mktemp("e2e")) as (settings, topics, worker):
        result = Run(settings, topics, worker)
        asyncio.run(_feed(result))
        yield result


async def _feed(run: Run) -> None:
    run.messages = demo_inquiries(INQUIRIES, seed=11, run=f"{uuid.uuid4().hex[:6]}-")
    watcher = OutcomeWatcher(run.settings.kafka_bootstrap, run.topics)
    await watcher.start()
    try:
        values = [m.value for m in run.messages]
        bootstrap = run.settings.kafka_bootstrap
        run.positions = await publish(bootstrap, run.topics.inquiries.name, values)
        # Bad bytes in the middle of the pipeline must not stop a stage either.
        run.garbage = await publish(bootstrap, run.topics.enriched.name, [b"{"])
        deadline = time.monotonic() + TIMEOUT_S
        pending = list(zip([*values, b"{"], [*run.positions, *run.garbage], strict=True))
        while pending and time.monotonic() < deadline:
            await watcher.poll()
            pending = [(v, at) for v, at in pending if not watcher.outcomes.accounted(v, at)]
    finally:
        await watcher.stop()
    run.outcomes = watcher.outcomes


def test_every_inquiry_is_processed_or_rejected(run: Run) -> None:
    missing = [
        at.ref
        for m, at in zip(run.messages, run.positions, strict=True)
        if not run.outcomes.accounted(m.value, at)
    ]
    assert missing == []


def test_invalid_inquiries_are_rejected_with_their_original_bytes(run: Run) -> None:
    invalid = {
        at.ref: m.value
        for m, at in zip(run.messages, run.positions, strict=True)
        if m.kind == "invalid"
    }
    assert invalid, "the demo mix should contain invalid inquiries"
    assert set(invalid) <= run.outcomes.rejected_at
    valid_refs = {
        at.ref for m, at in zip(run.messages, run.positions, strict=True) if m.kind != "invalid"
    }
    assert not (valid_refs & run.outcomes.rejected_at)
    rejections = asyncio.run(_read_all(run, run.topics.rejected.name))
    for raw in rejections:
        rejection = MessageRejected.model_validate_json(raw).payload
        if rejection.stage != "capture":
            continue
        at = Position(rejection.topic, rejection.partition, rejection.offset).ref
        assert base64.b64decode(rejection.original_b64) == invalid[at]
        assert rejection.stage == "capture" and rejection.reasons


def test_bad_bytes_mid_pipeline_are_rejected_by_that_stage(run: Run) -> None:
    assert run.garbage[0].ref in run.outcomes.rejected_at
    stages = {
        MessageRejected.model_validate_json(raw).payload.stage
        for raw in asyncio.run(_read_all(run, run.topics.rejected.name))
    }
    assert stages == {"capture", "qualify"}


def test_each_sales_ready_lead_has_exactly_one_owner_from_its_queue(run: Run) -> None:
    routing = load_yaml_model(run.settings.rules_dir / "routing.yaml", RoutingRules)
    assert run.outcomes.sales_ready, "the demo mix should produce sales-ready leads"
    for events in run.outcomes.sales_ready.values():
        owners = {(e.payload.queue, e.payload.owner.rep_id) for e in events}
        assert len(owners) == 1
        queue, rep = owners.pop()
        assert rep in {r.id for r in routing.queues[queue].reps}
    assert not (set(run.outcomes.sales_ready) & run.outcomes.nurtured)


def test_re_sent_inquiries_do_not_become_second_leads(run: Run) -> None:
    distinct_valid = {m.value for m in run.messages if m.kind != "invalid"}
    leads = set(run.outcomes.sales_ready) | run.outcomes.nurtured
    assert len(leads) == len(distinct_valid)
    assert any(m.kind == "duplicate" for m in run.messages)


def test_the_warehouse_holds_exactly_one_row_per_event(run: Run) -> None:
    asyncio.run(wait_until_stored(run.settings))
    expected: set[str] = set()
    for spec in run.topics.all():
        for at, raw in asyncio.run(_read_all_with_position(run, spec.name)):
            expected.add(event_row(spec, raw, at)["event_id"])
    counts = get_json(run.settings, "/v1/warehouse/events")
    assert sum(counts.values()) == len(expected)
    funnel = get_json(run.settings, "/v1/reports/pipeline")["rows"]
    distinct = sum(m.kind != "duplicate" for m in run.messages)  # a re-send is the same event
    assert sum(row["inquiries"] for row in funnel) == distinct

    run.worker.stop()  # the embedded warehouse is the worker's until it stops
    warehouse = open_warehouse(run.settings)
    try:
        rows = warehouse.query(f"SELECT toString(event_id) AS id FROM {EVENTS_TABLE} FINAL")
        stored = [row["id"] for row in rows]
    finally:
        warehouse.close()
    assert len(stored) == len(set(stored))
    assert set(stored) == expected


def test_the_funnel_is_consistent_per_channel(run: Run) -> None:
    # Runs after the worker stopped: read the warehouse directly, as `leadflow report` does.
    warehouse = open_warehouse(run.settings)
    try:
        rows = funnel_by_channel(warehouse, run.topics.inquiries.name)
    finally:
        warehouse.close()
    for row in rows:
        if row["channel"] != "(unknown)":
            assert row["captured"] == row["qualified"] == row["nurtured"] + row["sales_ready"]
            assert row["answered"] == row["inquiries"] - row["rejected"]  # every one answered
            # demo inquiries say they arrived weeks ago (received_at), so most are late
            assert row["answered_in_target"] <= row["answered"]
    assert sum(r["sales_ready"] for r in rows) == len(run.outcomes.sales_ready)


async def _read_all_with_position(run: Run, topic: str) -> list[tuple[Position, bytes | None]]:
    return await read_topic(run.settings.kafka_bootstrap, run.topics.by_name(topic))


async def _read_all(run: Run, topic: str) -> list[bytes]:
    return [raw or b"" for _, raw in await _read_all_with_position(run, topic)]


def test_worker_log_lines_are_json_without_personal_data(run: Run) -> None:
    log = Path(run.worker.log_file).read_text()
    assert '"event": "stage.emitted"' in log
    assert "@nordlicht-software.de" not in log or "***@" in log
    for m in run.messages[:20]:
        if m.kind == "valid":
            email = m.value.split(b'"email":"')[1].split(b'"')[0].decode()
            assert email not in log
