"""Messages the broker lets through but no stage may pass on, against the running
worker: 5 MB activities, outcomes and inquiries sent gzip-compressed (the broker
checks the compressed batch), an activity whose event would be just over the
message limit, numbers that are not numbers, and an activity and an outcome
dated 1970. Each is in leads.rejected with its reason, the worker lives on, the
next inquiry is processed, and the warehouse holds no oversized content and no
1970 contact."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from pipeline.adapters.kafka.admin import apply_topics
from pipeline.adapters.warehouse.clickhouse import EVENTS_TABLE, open_warehouse
from pipeline.adapters.worker_api import wait_until_stored
from pipeline.config.topics import Topics, load_topics
from pipeline.dev.harness import OutcomeWatcher, WorkerProcess
from pipeline.domain.messages import Position
from schemas.envelope import utcnow
from schemas.rejected import MessageRejected
from tests.support.broker import read_topic
from tests.support.factories import inquiry
from tests.support.intake import KEY, Running, post
from tests.support.settings import isolated_settings

TIMEOUT_S = 120.0
LIMIT = 1_000_000
"""Input limit = message limit here, so an input just below it makes an event above it."""
FIVE_MB = "x" * 5_000_000


async def publish_gzip(bootstrap: str, topic: str, values: list[bytes]) -> list[Position]:
    """As a hostile or careless producer would: compressed, with a client limit of its own."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        compression_type="gzip",
        max_request_size=20_000_000,
    )
    await producer.start()
    try:
        records = [await (await producer.send(topic, value)) for value in values]
    finally:
        await producer.stop()
    return [Position(r.topic, r.partition, r.offset) for r in records]


NOW = utcnow().isoformat()
ZERO = "1970-01-01T00:00:00+00:00"


def activity(activity_id: str, occurred_at: str = NOW, **details: object) -> dict[str, object]:
    return {
        "activity_id": activity_id,
        "occurred_at": occurred_at,
        "activity_type": "page_view",
        "lead_id": str(uuid.uuid4()),
        "details": details,
    }


def just_below(limit: int) -> bytes:
    """An activity of `limit` bytes less a little: it may be read, but its
    ActivityRecorded (the activity plus an envelope) is over the message limit."""
    base = orjson.dumps(activity("edge", blob=""))
    raw = orjson.dumps(activity("edge", blob="x" * (limit - 64 - len(base))))
    assert limit - 100 < len(raw) <= limit
    return raw


def outcome(
    outcome_id: str, amount: bytes = b"1000.5", occurred_at: str = NOW, **extra: object
) -> bytes:
    body = {
        "outcome_id": outcome_id,
        "lead_id": str(uuid.uuid4()),
        "occurred_at": occurred_at,
        "outcome": "won",
        "amount_eur": 1000.5,
        **extra,
    }
    return orjson.dumps(body).replace(b"1000.5", amount)


async def wait_for(
    watcher: OutcomeWatcher, rejected: list[Position], good: tuple[bytes, Position]
) -> list[str]:
    deadline = time.monotonic() + TIMEOUT_S
    pending = [at.ref for at in rejected]
    while time.monotonic() < deadline:
        await watcher.poll()
        pending = [ref for ref in pending if ref not in watcher.outcomes.rejected_at]
        if not pending and watcher.outcomes.accounted(*good):
            return []
    return pending or [f"good inquiry {good[1].ref}"]


def rejections(bootstrap: str, topics: Topics) -> dict[str, list[tuple[str, str, str | None]]]:
    found: dict[str, list[tuple[str, str, str | None]]] = {}
    for _, raw in asyncio.run(read_topic(bootstrap, topics.rejected)):
        r = MessageRejected.model_validate_json(raw or b"").payload
        ref = Position(r.topic, r.partition, r.offset).ref
        found.setdefault(ref, []).extend((r.stage, x.code, x.field) for x in r.reasons)
    return found


def test_oversized_and_non_finite_input_is_rejected_and_the_worker_carries_on(
    kafka: str, tmp_path: Path
) -> None:
    settings = isolated_settings(kafka, tmp_path).model_copy(
        update={"intake_keys": {"web_form": SecretStr(KEY)}, "input_max_bytes": LIMIT}
    )
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    tag = uuid.uuid4().hex[:6]
    huge_inquiry = orjson.dumps(inquiry(inquiry_id=f"{tag}-huge", notes=FIVE_MB))
    infinite_volume = orjson.dumps(
        inquiry(inquiry_id=f"{tag}-inf", answers={"order_volume_eur": 12345.5})
    ).replace(b"12345.5", b"1e400")
    good = orjson.dumps(inquiry(inquiry_id=f"{tag}-after"))

    async def scenario() -> tuple[dict[str, Position], list[str]]:
        await apply_topics(kafka, topics.all())
        watcher = OutcomeWatcher(kafka, topics)
        await watcher.start()
        try:
            big_activity, edge, old_activity = await publish_gzip(
                kafka,
                topics.activity.name,
                [
                    orjson.dumps(activity("big", blob=FIVE_MB)),
                    just_below(LIMIT),
                    orjson.dumps(activity("old", occurred_at=ZERO)),
                ],
            )
            big_outcome, nan_outcome, old_outcome = await publish_gzip(
                kafka,
                topics.feedback.name,
                [
                    outcome("big-won", blob=FIVE_MB),
                    outcome("nan-won", amount=b"NaN"),
                    outcome("old-won", occurred_at=ZERO),
                ],
            )
            big_inquiry, infinite, after = await publish_gzip(
                kafka, topics.inquiries.name, [huge_inquiry, infinite_volume, good]
            )
            sent = {
                "big_activity": big_activity,
                "edge_activity": edge,
                "old_activity": old_activity,
                "big_outcome": big_outcome,
                "nan_outcome": nan_outcome,
                "old_outcome": old_outcome,
                "big_inquiry": big_inquiry,
                "infinite": infinite,
            }
            missing = await wait_for(watcher, list(sent.values()), (good, after))
            return sent, missing
        finally:
            await watcher.stop()

    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        sent, missing = asyncio.run(scenario())
        assert worker.process is not None and worker.process.poll() is None, "the worker died"
        status, text = post(Running(settings, topics, worker), infinite_volume, "application/json")
        asyncio.run(wait_until_stored(settings))
        assert worker.process.poll() is None, "the worker died"
    assert missing == []
    assert status == 422
    assert orjson.loads(text)["errors"] == [
        {
            "code": "invalid_finite_number",
            "message": "Input should be a finite number, not NaN or Infinity",
            "field": "answers.order_volume_eur",
        }
    ]

    found = rejections(kafka, topics)
    assert found[sent["big_activity"].ref] == [("attach-activity", "too_large", None)]
    assert found[sent["edge_activity"].ref] == [("attach-activity", "output_too_large", None)]
    assert found[sent["big_outcome"].ref] == [("crm-feedback", "too_large", None)]
    assert found[sent["nan_outcome"].ref] == [
        ("crm-feedback", "invalid_finite_number", "amount_eur")
    ]  # once: crm-feedback is the one reader of crm.feedback
    old = ("occurred_at_implausible", "occurred_at")
    assert found[sent["old_activity"].ref] == [("attach-activity", *old)]
    assert found[sent["old_outcome"].ref] == [("crm-feedback", *old)]
    assert found[sent["big_inquiry"].ref] == [("capture", "too_large", None)]
    assert found[sent["infinite"].ref] == [
        ("capture", "invalid_finite_number", "answers.order_volume_eur")
    ]

    warehouse = open_warehouse(settings)
    try:
        rows = warehouse.query(
            f"SELECT topic, partition, offset, event_type, length(payload) AS size "
            f"FROM {EVENTS_TABLE} FINAL"
        )
        outcomes = warehouse.query(
            f"SELECT count() AS n FROM {EVENTS_TABLE} FINAL "
            f"WHERE event_type = 'CrmOutcomeReported' "
            f"AND JSONExtractString(payload, 'outcome_id') = 'big-won'"
        )
    finally:
        warehouse.close()
    by_ref = {Position(r["topic"], r["partition"], r["offset"]).ref: r for r in rows}
    for name in ("big_activity", "big_outcome", "big_inquiry"):
        row = by_ref[sent[name].ref]
        assert (row["event_type"], row["size"] < 100) == ("Oversized", True), name
    for name in ("old_activity", "old_outcome"):
        assert by_ref[sent[name].ref]["event_type"] == "Implausible", name
    assert max(r["size"] for r in rows) <= LIMIT
    assert outcomes == [{"n": 0}]  # the 5 MB "won" is no win in the warehouse
