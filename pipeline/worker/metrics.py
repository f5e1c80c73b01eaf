"""The worker's Prometheus metrics (prometheus-client), served at `GET /metrics`.

Every metric object is defined here, once; the places that count make one small
call each: `Stage.process` (messages in, step latency) and the stage's sends
(`emitted`: emitted, rejected, SLA reminders and breaches), the warehouse sink
(`sink_batch`, `sink_failed`), the HTTP door (`http_request`). Consumer lag is
not counted but measured when Prometheus scrapes: `serve_metrics` asks every
`LagSource` (the stages' consumer group, the sink's group, each changelog
mirror) for the lag of its partitions and sets `leadflow_consumer_lag`.

Timers (`pipeline/worker/timers.py`) report through `timers(name, held=…, due=…)`:
call it from a timer's scan with the entries the table holds and those that fell
due at that scan.

Labels are names the code spells (stage, topic, route template, event type),
never a lead id or anything from a message, so the series stay few and hold no
personal data; that is why `/metrics` is public like `/v1/health`.

The metrics live in their own registry (`REGISTRY`, with the process collector:
CPU, memory, open files), not in prometheus-client's global one, so nothing a
library registers there leaks into the worker's page.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from pipeline.worker.table_store import memory_budget

if TYPE_CHECKING:
    from pipeline.worker.stage import Stage

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Latency buckets from half a millisecond (a pure domain step) to ten seconds."""

MESSAGES_IN = Counter(
    "leadflow_stage_messages_in",
    "Messages a stage's agent consumed (each through the one loop, Stage.process).",
    ["stage"],
    registry=REGISTRY,
)
MESSAGES_EMITTED = Counter(
    "leadflow_stage_messages_emitted",
    "Messages a stage sent, by the topic they went to (rejections included).",
    ["stage", "topic"],
    registry=REGISTRY,
)
MESSAGES_REJECTED = Counter(
    "leadflow_stage_messages_rejected",
    "Inputs a stage put on leads.rejected, by the first reason code.",
    ["stage", "reason"],
    registry=REGISTRY,
)
STEP_SECONDS = Histogram(
    "leadflow_stage_step_seconds",
    "Time of one message through a stage: decode, the domain step, the sends.",
    ["stage"],
    buckets=SECONDS,
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "leadflow_consumer_lag",
    "Messages on a partition not yet processed (stages: not committed; sink: not "
    "stored; mirrors: not read), measured at each scrape.",
    ["group", "topic", "partition"],
    registry=REGISTRY,
)
SINK_BATCH_ROWS = Histogram(
    "leadflow_sink_batch_rows",
    "Rows per batch the warehouse sink stored.",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 20000),
    registry=REGISTRY,
)
SINK_INSERT_SECONDS = Histogram(
    "leadflow_sink_insert_seconds",
    "Time of one successful warehouse insert of a batch.",
    buckets=SECONDS,
    registry=REGISTRY,
)
SINK_ROWS = Counter(
    "leadflow_sink_rows_inserted", "Rows the warehouse sink stored.", registry=REGISTRY
)
SINK_FAILURES = Counter(
    "leadflow_sink_insert_failures",
    "Failed warehouse inserts: outage (retried) or rejected (the sink halts).",
    ["kind"],
    registry=REGISTRY,
)
SINK_HALTED = Gauge(
    "leadflow_sink_halted",
    "1 while the sink has halted on a batch the warehouse refused, else 0.",
    registry=REGISTRY,
)
TIMERS_HELD = Gauge(
    "leadflow_timers_held",
    "Entries a durable timer's table holds (set by `timers`).",
    ["timer"],
    registry=REGISTRY,
)
TIMERS_DUE = Gauge(
    "leadflow_timers_due",
    "Entries that fell due at a durable timer's last scan (set by `timers`).",
    ["timer"],
    registry=REGISTRY,
)
TABLE_MEMORY = Gauge(
    "leadflow_table_memory_bytes",
    "Memory the worker's RocksDB table databases use together (blocks, index and "
    "filter blocks, memtables), out of LEADFLOW_TABLE_MEMORY_MIB.",
    registry=REGISTRY,
)
TABLE_MEMORY_LIMIT = Gauge(
    "leadflow_table_memory_limit_bytes",
    "The budget all RocksDB table databases of the worker share (LEADFLOW_TABLE_MEMORY_MIB).",
    registry=REGISTRY,
)
SLA_REMINDERS = Counter(
    "leadflow_sla_reminders",
    "SLA reminders sent to reps (SlaReminderDue).",
    registry=REGISTRY,
)
SLA_BREACHES = Counter(
    "leadflow_sla_breaches",
    "SLA deadlines missed (SlaBreached, on leads.escalations).",
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "leadflow_http_requests",
    "Requests to the worker's web server, by route template, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_SECONDS = Histogram(
    "leadflow_http_request_seconds",
    "Time to answer a request, by route template.",
    ["route"],
    buckets=SECONDS,
    registry=REGISTRY,
)

SLA_EVENTS = {"SlaReminderDue": SLA_REMINDERS, "SlaBreached": SLA_BREACHES}
"""Event types that are SLA signals of their own."""


@contextmanager
def step(stage: str) -> Iterator[None]:
    """Around one message through `stage`: counts it in and times it."""
    MESSAGES_IN.labels(stage).inc()
    started = time.perf_counter()
    try:
        yield
    finally:
        STEP_SECONDS.labels(stage).observe(time.perf_counter() - started)


def emitted(stage: str, topic: str, event_type: str | None, reasons: list[str]) -> None:
    """A message `stage` sent to `topic`: an event of `event_type` (None: forwarded
    as it came); `reasons` are a rejection's codes (empty for any other event)."""
    MESSAGES_EMITTED.labels(stage, topic).inc()
    if reasons:
        MESSAGES_REJECTED.labels(stage, reasons[0]).inc()
    counter = SLA_EVENTS.get(event_type or "")
    if counter is not None:
        counter.inc()


def sink_batch(rows: int, seconds: float) -> None:
    """A batch of `rows` the sink stored in `seconds`."""
    SINK_BATCH_ROWS.observe(rows)
    SINK_INSERT_SECONDS.observe(seconds)
    SINK_ROWS.inc(rows)


def sink_failed(kind: str) -> None:
    """An insert that failed: "outage" (retried) or "rejected" (the sink halts)."""
    SINK_FAILURES.labels(kind).inc()
    if kind == "rejected":
        SINK_HALTED.set(1)


def timers(name: str, *, held: int, due: int) -> None:
    """What a durable timer holds: call from its scan (`DueTimers`) with the entries
    its table holds and those that fell due at this scan."""
    TIMERS_HELD.labels(name).set(held)
    TIMERS_DUE.labels(name).set(due)


def http_request(route: str, method: str, status: int, seconds: float) -> None:
    """One answered request (`route` is the path template, e.g. /v1/leads/{lead_id})."""
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    HTTP_SECONDS.labels(route).observe(seconds)


PartitionLag = dict[tuple[str, int], int]
"""(topic, partition) → messages behind."""


@dataclass(frozen=True)
class LagSource:
    """A consumer whose lag the scrape measures: its group (a mirror, which has none,
    is named `mirror:<table>`) and how to ask it."""

    group: str
    measure: Callable[[], Awaitable[PartitionLag]]


async def measure_lag(sources: list[LagSource]) -> None:
    """Set `leadflow_consumer_lag` from every source; partitions a source no longer
    holds (a rebalance moved them) disappear from the page."""
    CONSUMER_LAG.clear()
    for source in sources:
        for (topic, partition), lag in (await source.measure()).items():
            CONSUMER_LAG.labels(source.group, topic, str(partition)).set(max(lag, 0))


def table_memory() -> None:
    """Set the table memory gauges from the shared budget (none: the memory store)."""
    budget = memory_budget()
    if budget is not None:
        TABLE_MEMORY.set(budget.used_bytes())
        TABLE_MEMORY_LIMIT.set(budget.limit_bytes)


def page() -> tuple[bytes, str]:
    """The metrics page in Prometheus' text format, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def faust_lag(app: Any, topics: set[str]) -> Callable[[], Awaitable[PartitionLag]]:
    """The stages' lag: per partition of `topics` assigned to this worker, its end
    (the last stable offset under transactions) less the offset Faust committed
    (what a restart would read from; nothing committed since the start: the
    consumer's position)."""

    async def measure() -> PartitionLag:
        assigned = [tp for tp in app.assignor.assigned_actives() if tp.topic in topics]
        if not assigned or not app.consumer.started:  # nothing to ask yet
            return {}
        ends = await app.consumer.highwaters(*assigned)
        committed = app.monitor.tp_committed_offsets
        lag: PartitionLag = {}
        for tp in assigned:
            done = committed.get(tp)
            if done is None:  # nothing committed since the start: where it reads from
                done = await app.consumer.position(tp)
            if tp in ends and done is not None:
                lag[tp.topic, tp.partition] = int(ends[tp]) - int(done)
        return lag

    return measure


def serve_metrics(stage: Stage) -> None:
    """`GET /metrics`: the page, with the lag of the stages' group, the sink and every
    mirror (`stage.lag_sources`) measured first. Public (no key), like health."""
    from faust.web import Request, Response, View

    @stage.page("/metrics", keys=None)
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            await measure_lag(stage.lag_sources)
            table_memory()
            body, content_type = page()
            return self.bytes(body, content_type=content_type.split(";")[0])
