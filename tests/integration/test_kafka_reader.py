"""The one Kafka reader: its isolation level decides whether an aborted
transaction's records are read, a scan ends at the end as of its start, and a
reader started from the end sees what is published after its start only."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import cast

from aiokafka import AIOKafkaProducer
from faust.types import TableT

from pipeline.adapters.kafka.admin import apply_topics
from pipeline.adapters.kafka.client import last_event_of, publish
from pipeline.adapters.kafka.reader import Isolation, KafkaReader, partitions_of, read_to_end
from pipeline.config.topics import TopicSpec, load_topics
from pipeline.worker.shared_state import ChangelogMirror
from tests.support.settings import isolated_settings


async def transaction(
    bootstrap: str, topic: str, values: list[bytes], commit: bool, key: bytes | None = None
) -> None:
    """Write `values` to partition 0 in one transaction, then commit or abort it."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=f"{topic}-{commit}-{time.monotonic_ns()}"
    )
    await producer.start()
    try:
        await producer.begin_transaction()
        for value in values:
            await producer.send_and_wait(topic, value, key=key, partition=0)
        if commit:
            await producer.commit_transaction()
        else:
            await producer.abort_transaction()
    finally:
        await producer.stop()


async def values(bootstrap: str, spec: TopicSpec, isolation: Isolation) -> list[bytes]:
    return [
        r.value or b"" async for _, r in read_to_end(bootstrap, partitions_of([spec]), isolation)
    ]


def test_committed_readers_skip_aborted_records_uncommitted_ones_find_them(
    kafka: str, tmp_path: Path
) -> None:
    settings = isolated_settings(kafka, tmp_path)
    spec = load_topics(settings.topics_file, settings.topic_prefix).captured

    async def scenario() -> tuple[list[bytes], list[bytes]]:
        await apply_topics(kafka, [spec])
        await transaction(kafka, spec.name, [b"kept-1", b"kept-2"], commit=True)
        await transaction(kafka, spec.name, [b"aborted"], commit=False)  # a redone stage
        await transaction(kafka, spec.name, [b"kept-3"], commit=True)
        return (
            await values(kafka, spec, "read_committed"),
            await values(kafka, spec, "read_uncommitted"),
        )

    committed, on_disk = asyncio.run(scenario())
    assert committed == [b"kept-1", b"kept-2", b"kept-3"]
    assert on_disk == [b"kept-1", b"kept-2", b"aborted", b"kept-3"]  # what erasure must see


def test_a_reader_from_the_end_sees_only_what_came_after_its_start(
    kafka: str, tmp_path: Path
) -> None:
    settings = isolated_settings(kafka, tmp_path)
    spec = load_topics(settings.topics_file, settings.topic_prefix).captured

    async def scenario() -> list[bytes]:
        await apply_topics(kafka, [spec])
        await publish(kafka, spec.name, [b"before"], key=b"lead")
        seen: list[bytes] = []
        async with KafkaReader(kafka, partitions_of([spec]), "read_committed") as reader:
            await publish(kafka, spec.name, [b"after-1", b"after-2"], key=b"lead")
            deadline = time.monotonic() + 30
            while len(seen) < 2 and time.monotonic() < deadline:
                seen += [r.value or b"" for _, r in await reader.poll(timeout_ms=300)]
        return seen

    assert asyncio.run(scenario()) == [b"after-1", b"after-2"]


def test_a_scan_of_nothing_reads_nothing_and_an_empty_topic_ends(
    kafka: str, tmp_path: Path
) -> None:
    settings = isolated_settings(kafka, tmp_path)
    spec = load_topics(settings.topics_file, settings.topic_prefix).captured

    async def scenario() -> tuple[list[bytes], int]:
        await apply_topics(kafka, [spec])
        nothing = len([r async for r in read_to_end(kafka, [], "read_committed")])
        empty = await values(kafka, spec, "read_committed")
        return empty, nothing

    assert asyncio.run(scenario()) == ([], 0)


def test_the_clis_last_event_of_a_lead_is_its_newest_committed_one(
    kafka: str, tmp_path: Path
) -> None:
    """`rules explain` / `routing explain` read the topic when no worker answers: a
    qualification the worker wrote in a transaction it then aborted never happened."""
    settings = isolated_settings(kafka, tmp_path)
    spec = load_topics(settings.topics_file, settings.topic_prefix).qualified

    async def scenario() -> bytes | None:
        await apply_topics(kafka, [spec])
        await transaction(kafka, spec.name, [b"anna-1", b"anna-2"], commit=True, key=b"anna")
        await transaction(kafka, spec.name, [b"ben-1"], commit=True, key=b"ben")  # a namesake's
        await transaction(kafka, spec.name, [b"anna-aborted"], commit=False, key=b"anna")
        return await last_event_of(kafka, spec, "anna")

    assert asyncio.run(scenario()) == b"anna-2"


def test_the_shared_state_mirror_holds_committed_values_only(kafka: str, tmp_path: Path) -> None:
    """Under exactly_once Faust writes a changelog in the stage's transaction: a
    shard value of an aborted one (the stage redid the message) must not reach
    other workers through the mirror; the committed value after it does."""
    settings = isolated_settings(kafka, tmp_path)
    spec = load_topics(settings.topics_file, settings.topic_prefix).captured  # any topic
    table = cast(
        TableT, SimpleNamespace(changelog_topic=SimpleNamespace(get_topic_name=lambda: spec.name))
    )

    async def scenario() -> dict[bytes, bytes]:
        await apply_topics(kafka, [spec])
        await transaction(kafka, spec.name, [b"0.20"], commit=True, key=b"p0|win-model")
        await transaction(kafka, spec.name, [b"0.99"], commit=False, key=b"p0|win-model")
        await transaction(kafka, spec.name, [b"3"], commit=False, key=b"p0|gut.de")
        await transaction(kafka, spec.name, [b"0.25"], commit=True, key=b"p0|win-model")
        mirror = ChangelogMirror(kafka, table, spec.partitions, tmp_path / "mirror")
        await mirror.start()
        try:
            deadline = time.monotonic() + 30
            while mirror.values.get(b"p0|win-model") != b"0.25" and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            return dict(mirror.values.items())
        finally:
            await mirror.stop()

    assert asyncio.run(scenario()) == {b"p0|win-model": b"0.25"}
