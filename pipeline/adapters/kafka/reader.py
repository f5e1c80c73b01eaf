"""The one way Leadflow reads topics outside a Faust agent: a group-less consumer
over chosen partitions, with an isolation level every caller states.

Which level, and why:

- `read_committed` for topic data the worker produces transactionally
  (`processing_guarantee=exactly_once`): a record of an aborted transaction was
  never an event (the stage redid it, and the redo is what counts). Watchers of
  outcomes, corrections and erasure shares, the CLI's look-ups, tests reading a
  topic, and the mirror of a sharded table's changelog read this way. Faust's
  changelog writes under exactly_once are transactional too: a mirror reading
  uncommitted could show a value the table itself rolled back. Without
  transactions (at_least_once) every record is committed, so this level costs
  nothing there.
- `read_uncommitted` only where what is *on disk* matters, not what happened:
  erasure must find a person's data in aborted records too (they stay in the
  partition until it is truncated).

`read_to_end` reads from the start up to each partition's end as of now (under
read_committed: its last stable offset), for a scan that finishes; a
`KafkaReader` started from the end follows what is published after its start.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, Literal, TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from pipeline.adapters.kafka.connect import start_client
from pipeline.adapters.kafka.security import Broker, client_options
from pipeline.config.topics import TopicSpec

Isolation = Literal["read_committed", "read_uncommitted"]
Record: TypeAlias = "ConsumerRecord[bytes, bytes]"


def partitions_of(specs: Iterable[TopicSpec]) -> list[TopicPartition]:
    """Every partition of these topics, as the registry declares them."""
    return [TopicPartition(spec.name, p) for spec in specs for p in range(spec.partitions)]


QUIET_FETCH_WAIT_MS = 1500
"""How long the broker may hold a fetch that finds nothing (Faust's own consumer
uses the same): data is answered at once either way, but an idle worker's
long-lived readers (the warehouse sink, the shared-state mirrors) then send one
fetch per 1.5 s instead of two per second, each naming every partition they read."""


class KafkaReader:
    """A consumer without a group (it commits nothing) assigned to `partitions`,
    from their beginning or from their end.

    From the end, `start` resolves each partition's position before it returns,
    so nothing published after `start` can pass unseen: start it before
    publishing what you wait for. From the beginning the position is left to
    the first fetch (a topic that does not exist yet is then a fetch error for
    the caller to retry, not a hang at start). `options` go to the consumer as
    they are (e.g. `fetch_max_wait_ms`).
    """

    def __init__(
        self,
        bootstrap: Broker,
        partitions: Sequence[TopicPartition],
        isolation: Isolation,
        *,
        from_beginning: bool = False,
        **options: Any,
    ) -> None:
        self.bootstrap = bootstrap
        self.partitions = list(partitions)
        self.from_beginning = from_beginning
        self._options = {"isolation_level": isolation, **options}
        self._consumer: AIOKafkaConsumer

    async def start(self) -> None:
        # Made here, not in __init__: a consumer made and never started (a reader
        # not needed after all) warns "Unclosed AIOKafkaConsumer" at exit.
        self._consumer = AIOKafkaConsumer(
            **client_options(self.bootstrap),
            group_id=None,
            enable_auto_commit=False,
            **self._options,
        )
        await start_client(self._consumer, self.bootstrap)
        self._consumer.assign(self.partitions)
        if self.from_beginning:
            await self._consumer.seek_to_beginning(*self.partitions)
            return
        await self._consumer.seek_to_end(*self.partitions)
        for tp in self.partitions:
            await self._consumer.position(tp)

    async def poll(self, timeout_ms: int = 300) -> list[tuple[TopicPartition, Record]]:
        """What arrived within `timeout_ms` (possibly nothing), in partition order."""
        batches = await self._consumer.getmany(timeout_ms=timeout_ms)
        return [(tp, record) for tp, records in batches.items() for record in records]

    async def end_offsets(self) -> dict[TopicPartition, int]:
        """Each partition's end now (under read_committed: its last stable offset)."""
        ends = await self._consumer.end_offsets(self.partitions)
        return {tp: int(offset) for tp, offset in ends.items()}

    async def lag(self) -> dict[TopicPartition, int]:
        """Per partition, the records after the reader's position up to the end now."""
        ends = await self.end_offsets()
        return {tp: ends[tp] - await self._consumer.position(tp) for tp in self.partitions}

    async def until(
        self, ends: dict[TopicPartition, int]
    ) -> AsyncIterator[tuple[TopicPartition, Record]]:
        """Every record from the current positions up to `ends` (exclusive)."""
        while any([await self._consumer.position(tp) < ends[tp] for tp in self.partitions]):
            for tp, record in await self.poll(timeout_ms=500):
                if record.offset < ends[tp]:
                    yield tp, record

    async def stop(self) -> None:
        consumer = getattr(self, "_consumer", None)  # None: never started
        if consumer is not None:
            await consumer.stop()

    async def __aenter__(self) -> KafkaReader:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def read_to_end(
    bootstrap: Broker, partitions: Sequence[TopicPartition], isolation: Isolation
) -> AsyncIterator[tuple[TopicPartition, Record]]:
    """Every record on these partitions, from their start up to their end as the
    read began (records published meanwhile are left for the next read)."""
    if not partitions:
        return
    async with KafkaReader(bootstrap, partitions, isolation, from_beginning=True) as reader:
        async for tp, record in reader.until(await reader.end_offsets()):
            yield tp, record
