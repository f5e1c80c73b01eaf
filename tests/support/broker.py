"""Reading back what is on the real broker."""

from __future__ import annotations

from pipeline.adapters.kafka.reader import partitions_of, read_to_end
from pipeline.config.topics import TopicSpec
from pipeline.domain.messages import Position


async def read_topic(bootstrap: str, spec: TopicSpec) -> list[tuple[Position, bytes | None]]:
    """Everything on a topic now, from the beginning, with each message's position
    (committed records: what the worker's transactions published)."""
    return [
        (Position(tp.topic, tp.partition, r.offset), r.value)
        async for tp, r in read_to_end(bootstrap, partitions_of([spec]), "read_committed")
    ]
