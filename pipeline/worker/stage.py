"""The Faust app: one worker process runs every stage agent and the warehouse sink.

Topics, rules and reference data are loaded before the app is built, so a bad
rule file stops the worker at start with a clear message, not mid-stream.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import faust
import structlog
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from faust.web import View
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
from pipeline.errors import EventTooLarge
from pipeline.worker.http import Keys, guard
from schemas.envelope import EventBase
from schemas.rejected import MessageRejected, Reason

log = structlog.get_logger("leadflow.agent")
EXIT_EMIT_FAILED = 70
M = TypeVar("M", bound=BaseModel)
Emitted = EventBase | Sequence[EventBase] | None
Handler = Callable[[bytes | None, Position], Emitted]
"""A stage's domain step: the raw message and its position in, the events it causes out."""


@dataclass(frozen=True)
class Outgoing:
    """An encoded event and the topic it goes to."""

    spec: TopicSpec
    key: bytes | None
    value: bytes


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

    def __post_init__(self) -> None:
        for spec in self.topics.all():
            if spec.model in self._by_model:
                raise ValueError(f"{spec.value} is the value of two topics in topics.yaml")
            self._by_model[spec.model] = spec
        self._limiter = RateLimiter(
            self.settings.http_requests_per_minute, self.settings.http_burst
        )

    def page(
        self, path: str, keys: Keys | None = operator_keys, needs_tables: bool = False
    ) -> Callable[[type[View]], type[View]]:
        """Serve a view on the worker's web server behind the door every endpoint
        shares (`pipeline.worker.http.guard`)."""
        return guard(self.app, self.settings, self._limiter, path, keys, needs_tables)

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
        """Send to the topic whose value model is the event's type."""
        await self.send(self.encode(event))

    def outgoing(
        self, result: Emitted, raw: bytes | None, at: Position, name: str
    ) -> list[tuple[EventBase, Outgoing]]:
        """What a step's result sends: every event measured before any is sent, so an
        event the broker would refuse makes the step's input a rejection (the input is
        what cannot be processed) instead of a failed send that stops the worker and
        meets the same message again after every restart."""
        events = [result] if isinstance(result, EventBase) else list(result or [])
        try:
            return [(event, self.encode(event)) for event in events]
        except EventTooLarge as exc:
            log.warning("stage.output_too_large", stage=name, at=at.ref, error=str(exc))
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

    def agent(self, source: TopicSpec, name: str, handle: Handler) -> None:
        """Consume `source`, call the domain step, emit what it returns.

        A step that raises is a bug, but it must not lose the message: the
        message goes to `leads.rejected` with the error, and the stage goes on.
        """

        async def run(stream: faust.StreamT[bytes]) -> None:
            async for event in stream.events():
                message = event.message
                at = Position(message.topic, message.partition, message.offset)
                try:
                    result = handle(event.value, at)
                except Exception as exc:
                    log.exception("stage.error", stage=name, at=at.ref)
                    reason = Reason(code="stage_error", message=f"{type(exc).__name__}: {exc}")
                    result = reject(event.value or b"", at, name, [reason])
                # None: the step recorded the message in its state only
                for emitted, outgoing in self.outgoing(result, event.value, at, name):
                    try:
                        await self.send(outgoing)
                    except Exception:
                        # Faust would ack this message anyway and commit past it. Dying
                        # before the next commit means it is read again after a restart.
                        log.critical("stage.emit_failed", stage=name, at=at.ref, exc_info=True)
                        os._exit(EXIT_EMIT_FAILED)
                    log_decision(name, emitted)

        run.__name__ = name
        self.app.agent(self.channel(source), name=name)(run)

    def decoding_agent(
        self,
        source: TopicSpec,
        name: str,
        step: Callable[[Any], Emitted],
        rejects: bool = True,
    ) -> None:
        """An agent whose step takes the source topic's value model, decoded.

        A second agent on a topic passes `rejects=False`: the topic's main
        consumer already puts bad bytes in `leads.rejected`, once.
        """
        model = source.model

        def handle(raw: bytes | None, at: Position) -> Emitted:
            decoded = self.decode(model, source, raw, at, name)
            if not isinstance(decoded, MessageRejected):
                return step(decoded)
            if rejects:
                return decoded
            log.info("stage.skipped_undecodable", stage=name, at=at.ref)
            return None

        self.agent(source, name, handle)


def log_decision(stage: str, event: EventBase) -> None:
    """One canonical line per decision."""
    fields: dict[str, Any] = {"stage": stage, "event_type": event.event_type}
    lead_id = getattr(event, "lead_id", None)
    if lead_id is not None:
        fields["lead_id"] = str(lead_id)
    if isinstance(event, MessageRejected):
        fields["reasons"] = [r.code for r in event.payload.reasons]
        log.info("stage.rejected", **fields)
    else:
        log.info("stage.emitted", **fields)
