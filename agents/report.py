"""Report: every event on every topic goes into the warehouse (`lead_events`).

The sink is its own consumer group with manual commits, in the order the
quix-streams sinks use: collect a batch (size or time), insert it, and only
after the insert succeeded commit the offsets. A failed insert is retried with
back-off and the offsets stay where they are, so nothing is skipped; repeats
after a crash carry the same `event_id` and are folded by the table engine.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import structlog
from aiohttp.web import HTTPBadRequest
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from faust.web import Request, Response, View
from mode import Service

from pipeline.app import Stage, tables_ready
from pipeline.dashboard import dashboard_data, render_dashboard
from pipeline.errors import BadRequest, WarehouseUnavailable
from pipeline.messages import Position
from pipeline.reporting import event_counts, event_row
from pipeline.reports import REPORTS, parse_params, report_inputs, run_report
from pipeline.settings import Settings
from pipeline.timeline import lead_captures, lead_timeline
from pipeline.topics import Topics
from pipeline.warehouse import EVENTS_TABLE, Warehouse, analyst_query, open_warehouse
from schemas.envelope import utcnow

log = structlog.get_logger("leadflow.report")
T = TypeVar("T")

FINAL_FLUSH_ATTEMPTS = 3


class WarehouseSink(Service):
    def __init__(self, settings: Settings, topics: Topics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.topics = topics
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warehouse")
        self._warehouse: Warehouse | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._rows: list[dict[str, Any]] = []
        self._offsets: dict[TopicPartition, int] = {}
        self._batch_started = 0.0
        self._flush_lock = asyncio.Lock()
        self.inserted = 0

    async def call(self, fn: Callable[[Warehouse], T]) -> T:
        """Run a warehouse call on the one thread that owns the warehouse."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._opened()))

    def _opened(self) -> Warehouse:
        if self._warehouse is None:
            self._warehouse = open_warehouse(self.settings)
        return self._warehouse

    async def on_start(self) -> None:
        await self.call(lambda w: None)  # open now: a bad warehouse fails the start
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=f"{self.settings.app_id}-warehouse",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=self.settings.sink_batch_size,
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
        await self.call(lambda w: w.close())
        self._executor.shutdown(wait=True)

    async def lag(self) -> dict[str, int]:
        """Messages on the subscribed topics not yet stored: unread plus buffered
        (-1 while the sink has no partitions yet)."""
        assert self._consumer is not None
        assigned = list(self._consumer.assignment())
        if not assigned:
            return {"lag": -1, "unread": -1, "buffered": len(self._rows)}
        ends = await self._consumer.end_offsets(assigned)
        unread = sum([ends[tp] - await self._consumer.position(tp) for tp in assigned])
        return {"lag": unread + len(self._rows), "unread": unread, "buffered": len(self._rows)}

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._poll()
            except Exception:
                log.exception("warehouse.poll_failed")
                await asyncio.sleep(1.0)

    async def _poll(self) -> None:
        assert self._consumer is not None
        batches = await self._consumer.getmany(
            timeout_ms=100, max_records=self.settings.sink_batch_size
        )
        if batches or self._rows:
            for tp, records in batches.items():
                spec = self.topics.by_name(tp.topic)
                if not self._rows:
                    self._batch_started = time.monotonic()
                self._rows.extend(
                    event_row(spec, r.value, Position(r.topic, r.partition, r.offset))
                    for r in records
                )
                self._offsets[tp] = records[-1].offset + 1
            due = time.monotonic() - self._batch_started >= self.settings.sink_flush_seconds
            if len(self._rows) >= self.settings.sink_batch_size or due:
                await self.flush()

    async def flush(self, attempts: int | None = None) -> bool:
        """Insert the batch, then commit its offsets; retry (forever by default)."""
        async with self._flush_lock:
            return await self._flush(attempts)

    async def _flush(self, attempts: int | None) -> bool:
        if not self._rows:
            return True
        rows, offsets = self._rows, dict(self._offsets)
        delay, attempt = 0.5, 0
        while True:
            attempt += 1
            try:
                await self.call(lambda w: w.insert(EVENTS_TABLE, rows))
                break
            except WarehouseUnavailable as exc:
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


_sinks: dict[int, WarehouseSink] = {}


def warehouse_sink(stage: Stage) -> WarehouseSink | None:
    """The app's one sink: the only way into the warehouse (its thread owns it);
    None where another process owns the warehouse (`LEADFLOW_WAREHOUSE_SINK=false`)."""
    if not stage.settings.warehouse_sink:
        return None
    key = id(stage.app)
    if key not in _sinks:
        _sinks[key] = WarehouseSink(stage.settings, stage.topics)
        stage.app.service(_sinks[key])  # type: ignore[arg-type]
    return _sinks[key]


def register(stage: Stage) -> None:
    sink = warehouse_sink(stage)

    @stage.page("/v1/health", keys=None)
    class Health(View):
        """Liveness: 200 while the process serves; `status` says whether its tables are
        recovered ("ok") or still being read from their changelogs ("recovering")."""

        async def get(self, request: Request) -> Response:
            stored = sink.inserted if sink is not None else None
            status = "ok" if tables_ready(stage.app) else "recovering"
            return self.json({"status": status, "warehouse_rows_inserted": stored})

    @stage.page("/v1/ready", keys=None, needs_tables=True)
    class Ready(View):
        """Readiness: 200 once the tables are recovered, 503 "recovering" before.

        Health stays 200 meanwhile: a liveness probe that killed a worker for a
        long recovery would only make it start the recovery over."""

        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    if sink is not None:  # else another process owns the warehouse
        serve_reports(stage, sink)


def _lead_id(text: str) -> uuid.UUID:
    """The lead id of a path, or a 400 answer (`Stage.page` lets aiohttp's answers through)."""
    try:
        return uuid.UUID(text)
    except ValueError:
        body = '{"error": "a lead id is a UUID"}'
        raise HTTPBadRequest(text=body, content_type="application/json") from None


def serve_reports(stage: Stage, sink: WarehouseSink) -> None:
    inputs = report_inputs(stage.rules, stage.settings.rules_dir, stage.topics.inquiries.name)

    @stage.page("/v1/reports")
    class Reports(View):
        async def get(self, request: Request) -> Response:
            return self.json(
                [{"name": r.name, "title": r.title, "by": r.by} for r in REPORTS.values()]
            )

    @stage.page("/v1/reports/{name}")
    class ReportView(View):
        async def get(self, request: Request, name: str) -> Response:
            try:
                params = parse_params(dict(request.query))
                rows = await sink.call(lambda w: run_report(w, name, params, inputs))
            except BadRequest as exc:
                return self.json({"error": str(exc)}, status=400)
            return self.json({"report": name, "rows": rows})

    @stage.page("/v1/sql")
    class Sql(View):
        """Read-only SQL for analysts: the body is one query; rows come back as JSON."""

        async def post(self, request: Request) -> Response:
            body = (await request.read()).decode("utf-8", errors="replace")
            try:
                rows = await sink.call(lambda w: analyst_query(w, body))
            except BadRequest as exc:
                return self.json({"error": str(exc)}, status=400)
            return self.json({"rows": rows})

    @stage.page("/dashboard")
    class Dashboard(View):
        async def get(self, request: Request) -> Response:
            try:
                params = parse_params(dict(request.query))
                data = await sink.call(lambda w: dashboard_data(w, params, inputs))
            except BadRequest as exc:
                return self.json({"error": str(exc)}, status=400)
            return self.html(render_dashboard(data, utcnow()))

    @stage.page("/v1/leads/{lead_id}/timeline")
    class Timeline(View):
        async def get(self, request: Request, lead_id: str) -> Response:
            lead = _lead_id(lead_id)
            return self.json(await sink.call(lambda w: lead_timeline(w, lead)))

    @stage.page("/v1/leads/{lead_id}/captures")
    class Captures(View):
        """The lead's inquiries as captured, for `leadflow lead split` / `lead merge`."""

        async def get(self, request: Request, lead_id: str) -> Response:
            lead = _lead_id(lead_id)
            captures = await sink.call(lambda w: lead_captures(w, lead))
            body = b"[" + b",".join(c.model_dump_json().encode() for c in captures) + b"]"
            return self.bytes(body, content_type="application/json")

    @stage.page("/v1/warehouse/events")
    class EventCounts(View):
        async def get(self, request: Request) -> Response:
            return self.json(await sink.call(event_counts))

    @stage.page("/v1/warehouse/lag")
    class Lag(View):
        async def get(self, request: Request) -> Response:
            return self.json({**await sink.lag(), "inserted": sink.inserted})
