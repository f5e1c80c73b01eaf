"""Hostile and broken messages against the running worker: no crash, each bad
message in leads.rejected with a reason, good messages after them still flow,
and injection strings stay data all the way into the warehouse."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import orjson

from pipeline.kafka_admin import apply_topics
from pipeline.messages import Position
from pipeline.runtime import OutcomeWatcher, WorkerProcess, publish, wait_until_stored
from pipeline.topics import load_topics
from pipeline.warehouse import EVENTS_TABLE, open_warehouse
from tests.conftest import isolated_settings
from tests.unit.factories import inquiry

TIMEOUT_S = 120.0
SNEAKY = "'); DROP TABLE leadflow.lead_events; -- <script>alert(1)</script> =cmd|'/c calc'!A1"

BROKEN = [
    b"\xff\xfe\x00\x01 not utf-8",
    b"",
    b"[]",
    b"42",
    b"null",
    b'{"a":' * 3000 + b"1" + b"}" * 3000,
    orjson.dumps(inquiry(contact=["not", "an", "object"])),
    orjson.dumps(inquiry(contact={"email": "x" * 300_000 + "@firma.de"})),
    orjson.dumps(inquiry(contact={"email": "anna@firma.de\r\nBcc: all@firma.de"})),
    b'{"source": {"channel": "web_form"}, "source": {"channel": "!!"}, "contact": {}}',
    orjson.dumps(
        {"source": {"channel": "web_form"}, "contact": {"email": "a@b.de"}} | {"x": "y" * 900_000}
    ),
]


def test_hostile_messages_are_rejected_and_the_stream_goes_on(kafka: str, tmp_path: Path) -> None:
    settings = isolated_settings(kafka, tmp_path)
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    tag = uuid.uuid4().hex[:6]
    good = [
        orjson.dumps(inquiry(inquiry_id=f"{tag}-sneaky", message=SNEAKY,
                             contact={"email": "sneaky@firma.de", "company": SNEAKY})),
        orjson.dumps(inquiry(inquiry_id=f"{tag}-after")),
    ]  # fmt: skip
    worker = WorkerProcess(settings, tmp_path / "worker.log")

    async def scenario() -> tuple[list[str], set[str]]:
        await apply_topics(kafka, topics.all())
        watcher = OutcomeWatcher(kafka, topics)
        await watcher.start()
        sent: list[tuple[bytes, Position]] = []
        for spec in (topics.activity, topics.feedback):
            positions = await publish(kafka, spec.name, BROKEN[:6])
            sent += list(zip(BROKEN[:6], positions, strict=True))
        positions = await publish(kafka, topics.inquiries.name, [*BROKEN, *good])
        inquiries = list(zip([*BROKEN, *good], positions, strict=True))
        pending = sent + inquiries
        deadline = time.monotonic() + TIMEOUT_S
        while pending and time.monotonic() < deadline:
            await watcher.poll()
            pending = [(v, at) for v, at in pending if not watcher.outcomes.accounted(v, at)]
        await watcher.stop()
        broken_refs = {at.ref for v, at in inquiries if v in BROKEN}
        return [at.ref for _, at in pending], broken_refs - watcher.outcomes.rejected_at

    worker.start()
    try:
        missing, not_rejected = asyncio.run(scenario())
        assert worker.process is not None and worker.process.poll() is None, "the worker died"
        asyncio.run(wait_until_stored(settings))
    finally:
        worker.stop()
    assert missing == []
    assert not_rejected == set()
    warehouse = open_warehouse(settings)
    try:
        rows = warehouse.query(
            f"SELECT JSONExtractString(payload, 'payload', 'message') AS message "
            f"FROM {EVENTS_TABLE} FINAL WHERE event_type = 'LeadCaptured'"
        )
    finally:
        warehouse.close()
    assert [row["message"] for row in rows if row["message"]] == [SNEAKY]
