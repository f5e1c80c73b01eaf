"""State every worker reads in full, written shard by shard.

The win model and the company history are written by whichever partition saw
the outcome or the inquiry, but read by every lead. Faust's GlobalTable would
be the tool, but with more than one worker it stops syncing the other
workers' partitions (faust-streaming issue #283; seen here with two workers:
the win probability never appeared). So the writers use an ordinary table with
one key per partition shard (`p<partition>|…`), and every worker mirrors that
table's changelog with its own group-less consumer, all partitions from the
start. Reads are eventually consistent: a write shows up after its round trip
through Kafka. The mirror keeps its copy in a RocksDB database of its own under
the state directory (made anew at each start), not in memory: a company
history grows with every company ever seen.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any, Generic, TypeVar

import structlog
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from faust import current_event
from faust.types import TableT
from mode import Service
from pydantic import BaseModel
from rocksdict import Rdict

from pipeline.adapters.kafka.reader import QUIET_FETCH_WAIT_MS, KafkaReader
from pipeline.adapters.kafka.security import Broker
from pipeline.worker.metrics import LagSource, PartitionLag
from pipeline.worker.stage import Stage
from pipeline.worker.table_store import BudgetedOptions
from pipeline.worker.tables import TABLE_STORE_OPTIONS

log = structlog.get_logger("leadflow.shared_state")
M = TypeVar("M", bound=BaseModel)


class ShardedTable(Generic[M]):
    """Write: this partition's shard of a key. Read: every shard, from the mirror.
    Values are models of one type, stored as JSON bytes."""

    def __init__(self, stage: Stage, name: str, partitions: int, model: type[M]) -> None:
        self.partitions, self.model = partitions, model
        self.table: TableT = stage.faust_table(name, partitions, "bytes")
        self.mirror = ChangelogMirror(
            stage.settings.kafka,
            self.table,
            partitions,
            stage.settings.state_dir / "worker" / "mirrors" / name,
        )
        stage.app.service(self.mirror)  # type: ignore[arg-type]
        stage.lag_sources.append(LagSource(f"mirror:{name}", self.mirror.lag))

    def write(self, key: str, value: M) -> None:
        """Set this partition's shard of `key` (inside an agent, for the current message)."""
        partition = current_event().message.partition  # type: ignore[union-attr]
        self.table[f"p{partition}|{key}".encode()] = value.model_dump_json().encode()

    def mine(self, key: str) -> M | None:
        """This partition's shard, as written here (no round trip)."""
        partition = current_event().message.partition  # type: ignore[union-attr]
        found: bytes | None = self.table.get(f"p{partition}|{key}".encode())
        return self.model.model_validate_json(found) if found else None

    def shards(self, key: str) -> list[M]:
        """Every partition's shard of `key` the mirror has seen."""
        found = (self.mirror.values.get(f"p{p}|{key}".encode()) for p in range(self.partitions))
        return [self.model.model_validate_json(value) for value in found if value]


class ChangelogMirror(Service):
    """All partitions of a table's changelog, latest value per key, in `directory`.

    Reads committed records only: under exactly_once Faust writes a changelog in
    the same transaction as the stage's output and offsets, so an uncommitted
    value may still be rolled back (the table itself never shows it after a
    restart); the mirror shows what the table will hold, a commit later."""

    def __init__(
        self, bootstrap: Broker, table: TableT, partitions: int, directory: Path, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.bootstrap, self.table, self.partitions = bootstrap, table, partitions
        self.directory = directory
        self.values: dict[bytes, bytes] | Rdict = {}  # the database, from the start on
        self._reader: KafkaReader | None = None
        self._task: asyncio.Task[None] | None = None

    async def on_start(self) -> None:
        self.values = _fresh_db(self.directory)
        topic = self.table.changelog_topic.get_topic_name()
        parts = [TopicPartition(topic, p) for p in range(self.partitions)]
        self._reader = KafkaReader(
            self.bootstrap,
            parts,
            "read_committed",
            from_beginning=True,
            fetch_max_wait_ms=QUIET_FETCH_WAIT_MS,
        )
        await self._reader.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self._reader is not None
        while True:
            try:
                arrived = await self._reader.poll(timeout_ms=500)
            except KafkaError:  # the changelog topic may not exist yet at start
                log.warning("mirror.fetch_failed", exc_info=True)
                await asyncio.sleep(1.0)
                continue
            for _, record in arrived:
                if record.key is not None:
                    self.values[record.key] = record.value or b""

    async def lag(self) -> PartitionLag:
        """Per changelog partition, the records not read into `values` yet (none
        while the changelog does not exist yet)."""
        if self._reader is None:
            return {}
        try:
            return {(tp.topic, tp.partition): n for tp, n in (await self._reader.lag()).items()}
        except KafkaError:
            return {}

    async def on_stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._reader is not None:
            await self._reader.stop()
        if isinstance(self.values, Rdict):
            self.values.close()


def _fresh_db(directory: Path) -> Rdict:
    """An empty database (what an earlier run left is read again from the changelog)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.parent.mkdir(parents=True, exist_ok=True)
    options = BudgetedOptions(**TABLE_STORE_OPTIONS, use_rocksdict=True)  # the tables' budget
    return Rdict(str(directory), options.as_options())
