"""The Faust app: one worker process runs every stage agent and the warehouse sink.

Topics, rules and reference data are loaded before the app is built, so a bad
rule file stops the worker at start with a clear message, not mid-stream.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import faust
import structlog
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from faust.types import TableT
from faust.web import Request, Response, View
from pydantic import BaseModel

from pipeline.config.access import (
    RateLimiter,
    operator_keys,
)
from pipeline.config.rules import Rules
from pipeline.config.settings import Settings
from pipeline.config.topics import Topics, TopicSpec
from pipeline.domain.enrich.enrichment import ReferenceData
from pipeline.domain.messages import Position, best_effort_source, decode, reject
from pipeline.errors import ConfigError, EventTooLarge, LeadflowError
from pipeline.worker import metrics
from pipeline.worker.http import Keys, guard
from pipeline.worker.openapi import Page
from pipeline.worker.tables import JSON_SCHEMA, TABLE_STORE_OPTIONS, Stored, TypedTable
from schemas.envelope import EventBase
from schemas.rejected import MessageRejected, Reason

log = structlog.get_logger("leadflow.agent")
EXIT_EMIT_FAILED = 70
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


@dataclass(frozen=True)
class Outgoing:
    """An encoded event and the topic it goes to."""

    spec: TopicSpec
    key: bytes | None
    value: bytes


Emitted = EventBase | Outgoing | Sequence[EventBase | Outgoing] | None
"""What a step causes: events (each to the topic of its type) or ready messages."""
Result = Emitted | Awaitable[Emitted]
"""A step may await (a claim's answer, an erasure's stores); the loop awaits it."""


@dataclass(frozen=True)
class Received:
    """The Kafka side of a consumed message: its key, bytes and position."""

    key: bytes | None
    raw: bytes | None
    at: Position


RawStep = Callable[[Received], Result]
"""A step that reads the message's bytes itself."""


@dataclass
class Stage:
    """What every agent needs: the app, the topic registry, rules, and `emit`."""

    app: faust.App
    settings: Settings
    topics: Topics
    rules: Rules
    reference: ReferenceData
    _channels: dict[str, faust.TopicT] = field(default_factory=dict)
    _by_model: dict[type, TopicSpec] = field(default_factory=dict)
    _limiter: RateLimiter = field(init=False)
    steps: dict[str, RawStep] = field(default_factory=dict)
    """Every agent's step by agent name: each runs through `process`, the one loop."""
    timer_reports: dict[str, Callable[[], dict[str, Any]]] = field(default_factory=dict)
    """Each durable timer's report by name (`GET /v1/timers/{name}`, `worker/timers.py`)."""
    stop: Callable[[int], None] = field(default=lambda code: os._exit(code))
    """How a failed send ends the worker (before Faust commits past the message)."""
    pages: list[Page] = field(default_factory=list)
    """Every endpoint served, as registered (the OpenAPI document is made of them)."""
    lag_sources: list[metrics.LagSource] = field(default_factory=list)
    """Consumers besides the stages' whose lag `/metrics` measures (sink, mirrors)."""

    def __post_init__(self) -> None:
        for spec in self.topics.all():
            if spec.model in self._by_model:
                raise ConfigError(
                    f"topics.yaml: {spec.value} is the value of two topics; each event type "
                    "goes to one topic (the stage sends an event by its type)"
                )
            self._by_model[spec.model] = spec
        self._limiter = RateLimiter(
            self.settings.http_requests_per_minute, self.settings.http_burst
        )

    def page(
        self, path: str, keys: Keys | None = operator_keys, needs_tables: bool = False
    ) -> Callable[[type[View]], type[View]]:
        """Serve a view on the worker's web server behind the door every endpoint
        shares (`pipeline.worker.http.guard`), noted for the OpenAPI document."""
        guarded = guard(self.app, self.settings, self._limiter, path, keys, needs_tables)

        def register(view: type[View]) -> type[View]:
            self.pages.append(Page(path, view, keys, needs_tables))
            return guarded(view)

        return register

    def table(self, name: str, type_: Any, partitions: int, stored: Stored = "json") -> Any:
        """A typed table of `type_` (see `pipeline.worker.tables` for `stored`)."""
        return TypedTable(self.faust_table(name, partitions, stored), type_, stored)

    def faust_table(self, name: str, partitions: int, stored: Stored) -> TableT[Any, Any]:
        """Every table of the worker is made here, with the same small RocksDB sizes."""
        options = dict(TABLE_STORE_OPTIONS)  # Faust's store takes keys out of the dict
        if stored == "bytes":
            return self.app.Table(
                name, partitions=partitions, key_type=bytes, value_type=bytes, options=options
            )
        return self.app.Table(name, partitions=partitions, schema=JSON_SCHEMA, options=options)

    def lead_page(self, path: str, table: TypedTable[T], answer: Callable[[T], bytes]) -> None:
        """`GET path` (with `{lead_id}`): `answer` of the lead's entry in `table`, or 404
        "lead not held by this worker" (another worker's partitions hold it, or none)."""

        class LeadView(View):
            async def get(self, request: Request, lead_id: str) -> Response:
                found = table.get(lead_id)
                if found is None:
                    return self.json({"error": "lead not held by this worker"}, status=404)
                return self.bytes(answer(found), content_type="application/json")

        LeadView.__name__ = "Lead" + path.rsplit("/", 1)[-1].title()  # a page's unique name
        self.page(path, needs_tables=True)(LeadView)

    def channel(self, spec: TopicSpec) -> faust.TopicT:
        if spec.name not in self._channels:
            self._channels[spec.name] = self.app.topic(
                spec.name,
                partitions=spec.partitions,
                key_serializer="raw",
                value_serializer="raw",
            )
        return self._channels[spec.name]

    def encode(self, event: EventBase) -> Outgoing:
        """The event as the message for the topic whose value model is its type, measured
        as the producer measures it: larger than `max_message_bytes` is `EventTooLarge`."""
        spec = self._by_model[type(event)]
        key, value = event.key(), event.model_dump_json().encode()
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, [])
        limit = self.settings.max_message_bytes
        if size > limit:
            raise EventTooLarge(
                f"{event.event_type} would be {size} bytes on {spec.name}; "
                f"a message may have at most {limit}."
            )
        return Outgoing(spec, key, value)

    async def send(self, message: Outgoing) -> None:
        await self.channel(message.spec).send(key=message.key, value=message.value)

    async def emit(self, event: EventBase) -> None:
        """Send to the topic whose value model is the event's type (timers do)."""
        message = self.encode(event)
        await self.send(message)
        count_sent("timers", event, message)

    def outgoing(
        self, result: Emitted, raw: bytes | None, at: Position, name: str
    ) -> list[tuple[EventBase | Outgoing, Outgoing]]:
        """What a step's result sends: every event measured before any is sent, so an
        event the broker would refuse makes the step's input a rejection (the input is
        what cannot be processed) instead of a failed send that stops the worker and
        meets the same message again after every restart. A ready `Outgoing` (a
        message forwarded as it came) goes as it is."""
        items = [result] if isinstance(result, EventBase | Outgoing) else list(result or [])
        try:
            return [(i, i if isinstance(i, Outgoing) else self.encode(i)) for i in items]
        except EventTooLarge as exc:
            log.warning("stage.output_too_large", error=str(exc))
            reason = Reason(code="output_too_large", message=str(exc))
            rejection = reject(raw or b"", at, name, [reason], best_effort_source(raw))
            return [(rejection, self.encode(rejection))]

    def decode(
        self, model: type[M], source: TopicSpec, raw: bytes | None, at: Position, name: str
    ) -> M | MessageRejected:
        """`decode` at the edge, held to what `source` allows: an outside producer's
        topic has a size limit and an earliest plausible date (`Settings.input_limit`,
        `Settings.oldest_input`)."""
        limit, oldest = self.settings.input_limit(source), self.settings.oldest_input(source)
        return decode(model, raw, at, name, limit, oldest)

    def raw_agent(self, source: TopicSpec, name: str, step: RawStep) -> None:
        """An agent whose step reads the message's bytes itself (capture decodes an
        inquiry its own way, keeping what it can of a bad one)."""
        self._register(source, name, step)

    def agent(
        self,
        source: TopicSpec,
        name: str,
        step: Callable[..., Result],
        rejects: bool = True,
        message: bool = False,
    ) -> None:
        """An agent whose step takes the source topic's value model, decoded at the
        edge (and, with `message`, the `Received` message too).

        What cannot be decoded is a rejection; a second agent on a topic passes
        `rejects=False`: the topic's main consumer already puts bad bytes in
        `leads.rejected`, once.
        """
        model = source.model

        def handle(received: Received) -> Result:
            decoded = self.decode(model, source, received.raw, received.at, name)
            if isinstance(decoded, MessageRejected):
                if rejects:
                    return decoded
                log.info("stage.skipped_undecodable")
                return None
            lead_id = getattr(decoded, "lead_id", None)
            if lead_id is not None:
                structlog.contextvars.bind_contextvars(lead_id=str(lead_id))
            return step(decoded, received) if message else step(decoded)

        self._register(source, name, handle)

    def _register(self, source: TopicSpec, name: str, handle: RawStep) -> None:
        """The one loop every agent runs: each message of `source` through `process`."""
        if name in self.steps:
            raise LeadflowError(f"two agents are named {name!r}: each name is its own consumer")
        self.steps[name] = handle

        async def run(stream: faust.StreamT[bytes]) -> None:
            async for event in stream.events():
                message = event.message
                at = Position(message.topic, message.partition, message.offset)
                await self.process(name, Received(message.key, event.value, at))

        run.__name__ = name
        self.app.agent(self.channel(source), name=name)(run)

    async def process(self, name: str, received: Received) -> None:
        """One message through agent `name`'s step, under the one failure policy.

        Decode at the edge, the pure domain step, emit 0..n events. A step that
        raises is a bug, but it must not lose the message: the message goes to
        `leads.rejected` once, with the stage and the error, and the stage goes on.
        A send that fails ends the worker before its next commit: Faust would ack
        the message anyway and commit past it, so it is read again after a restart.
        The log context (stage, position, lead id) is bound here, once.
        """
        with (
            structlog.contextvars.bound_contextvars(stage=name, at=received.at.ref),
            metrics.step(name),
        ):
            try:
                await self._process(name, received)
            finally:
                structlog.contextvars.unbind_contextvars("lead_id")  # bound by `agent`

    async def _process(self, name: str, received: Received) -> None:
        raw, at = received.raw, received.at
        try:
            result = self.steps[name](received)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            log.exception("stage.error")
            reason = Reason(code="stage_error", message=f"{type(exc).__name__}: {exc}")
            result = reject(raw or b"", at, name, [reason])
        # None: the step recorded the message in its state only
        for emitted, outgoing in self.outgoing(result, raw, at, name):
            try:
                await self.send(outgoing)
            except Exception:
                log.critical("stage.emit_failed", exc_info=True)
                self.stop(EXIT_EMIT_FAILED)
                return
            log_decision(name, emitted)
            count_sent(name, emitted, outgoing)


def count_sent(stage: str, event: EventBase | Outgoing, message: Outgoing) -> None:
    """The metrics of one sent message (`pipeline.worker.metrics.emitted`)."""
    if isinstance(event, Outgoing):
        metrics.emitted(stage, message.spec.name, None, [])
        return
    reasons = [r.code for r in event.payload.reasons] if isinstance(event, MessageRejected) else []
    metrics.emitted(stage, message.spec.name, event.event_type, reasons)


def log_decision(stage: str, event: EventBase | Outgoing) -> None:
    """One canonical line per decision."""
    if isinstance(event, Outgoing):
        log.info("stage.forwarded", stage=stage, topic=event.spec.name)
        return
    fields: dict[str, Any] = {"stage": stage, "event_type": event.event_type}
    lead_id = getattr(event, "lead_id", None)
    if lead_id is not None:
        fields["lead_id"] = str(lead_id)
    if isinstance(event, MessageRejected):
        fields["reasons"] = [r.code for r in event.payload.reasons]
        log.info("stage.rejected", **fields)
    else:
        log.info("stage.emitted", **fields)
