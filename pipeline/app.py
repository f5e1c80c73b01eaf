"""The Faust app: one worker process runs every stage agent and the warehouse sink.

Topics, rules and reference data are loaded before the app is built, so a bad
rule file stops the worker at start with a clear message, not mid-stream.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faust
import structlog

from pipeline.enrichment import ReferenceData
from pipeline.messages import Position, decode, reject
from pipeline.rules import Rules
from pipeline.settings import Settings
from pipeline.topics import Topics, TopicSpec
from schemas.envelope import EventBase
from schemas.rejected import MessageRejected, Reason

log = structlog.get_logger("leadflow.agent")
EXIT_EMIT_FAILED = 70

Handler = Callable[[bytes | None, Position], EventBase | None]
"""A stage's domain step: the raw message and its position in, one event (or none) out."""


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

    def __post_init__(self) -> None:
        for spec in self.topics.all():
            if spec.model in self._by_model:
                raise ValueError(f"{spec.value} is the value of two topics in topics.yaml")
            self._by_model[spec.model] = spec

    def channel(self, spec: TopicSpec) -> faust.TopicT:
        if spec.name not in self._channels:
            self._channels[spec.name] = self.app.topic(
                spec.name,
                partitions=spec.partitions,
                key_serializer="raw",
                value_serializer="raw",
            )
        return self._channels[spec.name]

    async def emit(self, event: EventBase) -> None:
        """Send to the topic whose value model is the event's type."""
        spec = self._by_model[type(event)]
        await self.channel(spec).send(key=event.key(), value=event.model_dump_json().encode())

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
                if result is None:  # the step recorded the message in its state only
                    continue
                try:
                    await self.emit(result)
                except Exception:
                    # Faust would ack this message anyway and commit past it. Dying
                    # before the next commit means it is read again after a restart.
                    log.critical("stage.emit_failed", stage=name, at=at.ref, exc_info=True)
                    os._exit(EXIT_EMIT_FAILED)
                log_decision(name, result)

        run.__name__ = name
        self.app.agent(self.channel(source), name=name)(run)

    def decoding_agent(
        self,
        source: TopicSpec,
        name: str,
        step: Callable[[Any], EventBase | None],
        rejects: bool = True,
    ) -> None:
        """An agent whose step takes the source topic's value model, decoded.

        A second agent on a topic passes `rejects=False`: the topic's main
        consumer already puts bad bytes in `leads.rejected`, once.
        """
        model = source.model

        def handle(raw: bytes | None, at: Position) -> EventBase | None:
            decoded = decode(model, raw, at, name)
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


def faust_app(settings: Settings, partitions: int) -> faust.App:
    """The Faust app with our transport settings (bench/passthrough.py measures them bare)."""
    return faust.App(
        settings.app_id,
        broker=[f"kafka://{server.strip()}" for server in settings.kafka_bootstrap.split(",")],
        store=settings.table_store,
        datadir=str(settings.state_dir / "worker"),
        key_serializer="raw",
        value_serializer="raw",
        web_host=settings.web_host,
        web_port=settings.web_port,
        topic_replication_factor=settings.topic_replication_factor,
        topic_partitions=partitions,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_interval=settings.commit_interval_seconds,
        producer_linger_ms=settings.producer_linger_ms,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=max(1.0, settings.session_timeout_seconds / 10),
        processing_guarantee=settings.processing_guarantee,
        autodiscover=False,
    )


def create_app(settings: Settings, topics: Topics, rules: Rules) -> faust.App:
    from agents import capture, distribute, enrich, identify, intake, nurture, qualify, report

    app = faust_app(settings, topics.routing.partitions)
    reference = ReferenceData.shipped(rules.enrichment.company_directory_file)
    stage = Stage(app, settings, topics, rules, reference)
    modules = (capture, identify, enrich, qualify, nurture, distribute, report, intake)
    for module in modules:
        module.register(stage)
    return app
