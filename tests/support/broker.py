"""Reading back what is on the real broker."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.config.topics import TopicSpec
from pipeline.domain.messages import Position


async def read_topic(bootstrap: str, spec: TopicSpec) -> list[tuple[Position, bytes | None]]:
    """Everything on a topic now, from the beginning, with each message's position."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        parts = [TopicPartition(spec.name, p) for p in range(spec.partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        found: list[tuple[Position, bytes | None]] = []
        while any([await consumer.position(tp) < ends[tp] for tp in parts]):
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                found += [(Position(tp.topic, tp.partition, r.offset), r.value) for r in records]
        return found
    finally:
        await consumer.stop()
