"""The warehouse sink: every event on every topic goes into the warehouse (`lead_events`).

The sink is its own consumer group with manual commits, in the order the
quix-streams sinks use: collect a batch (size or time), insert it, and only
after the insert succeeded commit the offsets. An insert the warehouse could not
take (`WarehouseUnavailable`: no connection, the table detached, overloaded) is
retried with back-off and the offsets stay where they are, so nothing is
skipped; repeats after a crash carry the same `event_id` and are folded by the
table engine.

A batch the warehouse refuses (`WarehouseRejected`: a row the table does not
take, a violated constraint, a schema that no longer fits) would get the same
answer on every retry, so the sink does not loop on it; skipping it would lose
its events, and there is no place to park it as durable as the topic it came
from (a dead-letter topic would be stored by this same sink). Nothing lost means
never committing past it, so the sink *halts*: it logs `warehouse.batch_rejected`
once (an error with the ClickHouse code, the first and last offset of each
partition in the batch and what to do; not the rows, which hold personal data),
reads no further and says so in `lag()` (`halted`, served at
`GET /v1/warehouse/lag`). The routing stages go on; only the warehouse falls
behind. Once the operator fixed the cause (a migration, a dropped constraint), a
restart of the worker reads the batch again from the last commit. `event_row`
makes a row of any message, even an undecodable one, so a refusal points at the
warehouse's schema more often than at a row.

It is also the only way into the warehouse: its one thread owns the
connection, and the read side's endpoints and the erasure go through `call`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from mode import Service

from pipeline.adapters.kafka.reader import QUIET_FETCH_WAIT_MS
from pipeline.adapters.kafka.security import client_options
from pipeline.adapters.warehouse.clickhouse import (
    EVENTS_TABLE,
    Warehouse,
    connect,
    open_warehouse,
)
from pipeline.config.settings import Settings
from pipeline.config.topics import Topics
from pipeline.domain.messages import Position
from pipeline.errors import WarehouseRejected, WarehouseUnavailable
from pipeline.reporting.events import event_row
from pipeline.worker import metrics

log = structlog.get_logger("leadflow.sink")
T = TypeVar("T")
FINAL_FLUSH_ATTEMPTS = 3


class WarehouseSink(Service):
    """Batches of events into the warehouse, offsets committed after each insert."""

    def __init__(self, settings: Settings, topics: Topics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.topics = topics
        self.group_id = f"{settings.app_id}-warehouse"
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warehouse")
        self._warehouse: Warehouse | None = None
        self._analyst_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="analyst")
        self._analyst: Warehouse | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._rows: list[dict[str, Any]] = []
        self._offsets: dict[TopicPartition, int] = {}
        self._batch_started = 0.0
        self._flush_lock = asyncio.Lock()
        self.inserted = 0
        self.halted: str | None = None
        """Why the sink stopped storing (a refused batch), None while it stores."""

    async def call(self, fn: Callable[[Warehouse], T]) -> T:
        """Run a warehouse call on the one thread that owns the warehouse."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._opened()))

    def _opened(self) -> Warehouse:
        if self._warehouse is None:
            self._warehouse = open_warehouse(self.settings)
        return self._warehouse

    async def analyst_call(self, fn: Callable[[Warehouse], T]) -> T:
        """Run an analyst's query on a thread and warehouse session of their own, so a
        query that runs to its limit (`AnalystLimits`) delays no report and no insert;
        analysts' queries wait for each other only. The session is opened at the first
        query, after the sink's own session has brought the schema up to date."""

        def run() -> T:
            if self._analyst is None:
                self._analyst = connect(self.settings)
            return fn(self._analyst)

        if self._analyst is None:
            await self.call(lambda w: None)  # the schema is up to date first
        return await asyncio.get_running_loop().run_in_executor(self._analyst_executor, run)

    async def on_start(self) -> None:
        await self.call(lambda w: None)  # open now: a bad warehouse fails the start
        self._consumer = AIOKafkaConsumer(
            **client_options(self.settings.kafka),
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=self.settings.sink_batch_size,
            fetch_max_wait_ms=QUIET_FETCH_WAIT_MS,
        )
        # Erasure commands name the person: they are not events to keep.
        stored = [spec.name for spec in self.topics.all() if spec != self.topics.erasure]
        self._consumer.subscribe(stored, listener=_FlushOnRevoke(self))
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())

    async def on_stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            await self._task
        if self._consumer is not None:
            await self.flush(attempts=FINAL_FLUSH_ATTEMPTS)
            await self._consumer.stop()
        await self.close()

    async def close(self) -> None:
        """Close both warehouse sessions (the embedded directory stays locked while one
        is open) and their threads."""
        loop = asyncio.get_running_loop()
        if self._analyst is not None:
            analyst = self._analyst
            await loop.run_in_executor(self._analyst_executor, analyst.close)
            self._analyst = None
        self._analyst_executor.shutdown(wait=True)
        await self.call(lambda w: w.close())
        self._executor.shutdown(wait=True)

    async def lag(self) -> dict[str, int | str | None]:
        """Messages on the subscribed topics not yet stored: unread plus buffered
        (-1 while the sink has no partitions yet), and why it halted (None while it
        stores)."""
        assert self._consumer is not None
        assigned = list(self._consumer.assignment())
        if not assigned:
            return {"lag": -1, "unread": -1, "buffered": len(self._rows), "halted": self.halted}
        ends = await self._consumer.end_offsets(assigned)
        unread = sum([ends[tp] - await self._consumer.position(tp) for tp in assigned])
        lag = unread + len(self._rows)
        return {"lag": lag, "unread": unread, "buffered": len(self._rows), "halted": self.halted}

    async def partition_lag(self) -> metrics.PartitionLag:
        """Per assigned partition, messages not yet stored: unread plus buffered."""
        if self._consumer is None:
            return {}
        assigned = list(self._consumer.assignment())
        if not assigned:
            return {}
        ends = await self._consumer.end_offsets(assigned)
        lag = {
            (tp.topic, tp.partition): ends[tp] - await self._consumer.position(tp)
            for tp in assigned
        }
        for row in self._rows:
            key = (row["topic"], row["partition"])
            lag[key] = lag.get(key, 0) + 1
        return lag

    async def _run(self) -> None:
        while not self._stopping and self.halted is None:
            try:
                await self._poll()
            except Exception:
                log.exception("warehouse.poll_failed")
                await asyncio.sleep(1.0)

    async def _poll(self) -> None:
        assert self._consumer is not None
        # while a batch fills, wake often enough to flush it on time; with nothing
        # buffered, wait longer (records still come back the moment they arrive)
        wait_ms = 100 if self._rows else 1000
        batches = await self._consumer.getmany(
            timeout_ms=wait_ms, max_records=self.settings.sink_batch_size
        )
        if batches or self._rows:
            for tp, records in batches.items():
                spec = self.topics.by_name(tp.topic)
                if not self._rows:
                    self._batch_started = time.monotonic()
                limit, oldest = self.settings.input_limit(spec), self.settings.oldest_input(spec)
                self._rows.extend(
                    event_row(
                        spec, r.value, Position(r.topic, r.partition, r.offset), limit, oldest
                    )
                    for r in records
                )
                self._offsets[tp] = records[-1].offset + 1
            due = time.monotonic() - self._batch_started >= self.settings.sink_flush_seconds
            if len(self._rows) >= self.settings.sink_batch_size or due:
                await self.flush()

    async def flush(self, attempts: int | None = None) -> bool:
        """Insert the batch, then commit its offsets; retry an outage (forever by
        default). False when the batch is not stored: attempts used up, the sink
        stopping, or the warehouse refused the batch (then the sink halts)."""
        async with self._flush_lock:
            return await self._flush(attempts)

    async def _flush(self, attempts: int | None) -> bool:
        if not self._rows:
            return True
        if self.halted is not None:
            return False  # refused once, refused again: wait for the restart
        rows, offsets = self._rows, dict(self._offsets)
        delay, attempt = 0.5, 0
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                await self.call(lambda w: w.insert(EVENTS_TABLE, rows))
                metrics.sink_batch(len(rows), time.perf_counter() - started)
                break
            except WarehouseRejected as exc:
                metrics.sink_failed("rejected")
                self._halt(exc, rows)
                return False  # offsets not committed: the batch is read again after a restart
            except WarehouseUnavailable as exc:
                metrics.sink_failed("outage")
                log.warning(
                    "warehouse.insert_failed", rows=len(rows), attempt=attempt, error=str(exc)
                )
                if (attempts is not None and attempt >= attempts) or (
                    attempts is None and self._stopping
                ):
                    return False  # offsets not committed: the batch is read again
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.sink_retry_max_seconds)
        assert self._consumer is not None
        await self._consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()})
        self.inserted += len(rows)
        log.info("warehouse.flushed", rows=len(rows))
        self._rows, self._offsets = [], {}
        return True

    def _halt(self, exc: WarehouseRejected, rows: list[dict[str, Any]]) -> None:
        """Stop storing, once, with what the operator needs to find and fix the cause."""
        offsets: dict[str, list[int]] = {}
        for row in rows:
            offsets.setdefault(f"{row['topic']}/{row['partition']}", []).append(row["offset"])
        batch = {part: f"{min(found)}-{max(found)}" for part, found in offsets.items()}
        self.halted = (
            f"the warehouse refused a batch of {len(rows)} events ({exc.reason}); the sink "
            "stores nothing until the cause is fixed and the worker restarted"
        )
        log.error(
            "warehouse.batch_rejected",
            rows=len(rows),
            reason=exc.reason,
            batch=batch,
            action="nothing is committed past this batch; fix the warehouse (the code says "
            "what it refused: a migration, a constraint), then restart the worker, which "
            "reads the batch again",
        )

    def forget(self) -> None:
        """Drop the unflushed batch; the partitions' next owner reads it again."""
        self._rows, self._offsets = [], {}


class _FlushOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, sink: WarehouseSink) -> None:
        self.sink = sink

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        if not await self.sink.flush(attempts=FINAL_FLUSH_ATTEMPTS):
            self.sink.forget()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        return None
