"""The Faust app: one worker process runs every stage agent and the warehouse sink.

Topics, rules and reference data are loaded before the app is built, so a bad
rule file stops the worker at start with a clear message, not mid-stream.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import faust
import structlog
from aiohttp import web as aiohttp_web
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from faust.web import Request, View
from pydantic import BaseModel, SecretStr

from pipeline.access import (
    RateLimiter,
    authenticate,
    ensure_local_key,
    operator_keys,
    presented_key,
)
from pipeline.enrichment import ReferenceData
from pipeline.errors import EventTooLarge
from pipeline.messages import Position, best_effort_source, decode, reject
from pipeline.rules import Rules
from pipeline.settings import Settings
from pipeline.topics import ChangelogSpec, Topics, TopicSpec
from schemas.envelope import EventBase
from schemas.rejected import MessageRejected, Reason

log = structlog.get_logger("leadflow.agent")
EXIT_EMIT_FAILED = 70
M = TypeVar("M", bound=BaseModel)
RECOVERING_RETRY_SECONDS = 2
"""What a view that reads worker tables tells callers to wait while they recover."""

Emitted = EventBase | Sequence[EventBase] | None
Handler = Callable[[bytes | None, Position], Emitted]
"""A stage's domain step: the raw message and its position in, the events it causes out."""
Keys = Callable[[Settings], Mapping[str, SecretStr]]
"""Whose keys open an endpoint: `operator_keys`, or e.g. the channels' intake keys."""
CALLER = aiohttp_web.RequestKey("leadflow.caller", str)


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
        """Serve a view on the worker's web server, behind the door every endpoint shares.

        A request needs a key of `keys` (`None`: public, for health and readiness), stays
        within its key's rate and the body limit, and never sees a stack trace:
        an error is logged and answered with a bare 500. The view reads who
        called with `caller(request)`. A view that reads worker tables
        (`needs_tables`) answers 503 `{"status": "recovering"}` with Retry-After
        until they are recovered: an empty table then is not yet the truth.
        """
        app, settings, limiter = self.app, self.settings, self._limiter

        def decorate(view: type[View]) -> type[View]:
            class Guarded(view):  # type: ignore[valid-type, misc]
                async def dispatch(self, request: Any) -> Any:
                    if keys is not None:
                        who = authenticate(keys(settings), presented_key(request.headers))
                        # Without a valid key the budget is the caller's address:
                        # guessing keys is rate-limited too.
                        wait = limiter.wait(
                            f"{keys.__name__}:{who}" if who else f"no-key:{request.remote}"
                        )
                        if wait:
                            retry = str(math.ceil(wait))
                            body = {"error": f"too many requests; retry after {retry} s"}
                            return self.json(body, status=429, headers={"Retry-After": retry})
                        if who is None:
                            return self.json(
                                {"error": "missing or invalid X-Api-Key"},
                                status=401,
                                headers={"WWW-Authenticate": 'Basic realm="leadflow"'},
                            )
                        request[CALLER] = who
                    declared = request.headers.get("Content-Length", "0")
                    if declared.isdigit() and int(declared) > settings.intake_max_body_bytes:
                        limit = settings.intake_max_body_bytes
                        return self.json({"error": f"body over {limit} bytes"}, status=413)
                    if needs_tables and not tables_ready(app):
                        recovering = {
                            "status": "recovering",
                            "error": "worker is recovering its state",
                            "retry_after": RECOVERING_RETRY_SECONDS,
                        }
                        retry_after = {"Retry-After": str(RECOVERING_RETRY_SECONDS)}
                        return self.json(recovering, status=503, headers=retry_after)
                    try:
                        return await super().dispatch(request)
                    except aiohttp_web.HTTPException:
                        raise  # aiohttp's own answers (e.g. 413 from its reader): no trace
                    except Exception:
                        log.exception("http.error", path=path)
                        return self.json({"error": "internal error"}, status=500)

            Guarded.__name__ = Guarded.__qualname__ = view.__name__
            Guarded.__doc__ = view.__doc__
            return self.app.page(path, name=view.__name__)(Guarded)

        return decorate

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


def tables_ready(app: faust.App) -> bool:
    """Do the worker's tables hold everything their changelogs hold?

    Faust clears `actives_ready` when a rebalance starts (and it starts
    cleared) and sets it once the active partitions' changelogs are read
    (`Recovery.on_recovery_completed`); until then a table answers from
    whatever it has read so far, e.g. no load for any rep.
    """
    return bool(app.tables.actives_ready)


def caller(request: Request) -> str:
    """Who called an endpoint: the name of the key presented (channel, rep, operator)."""
    return request[CALLER]  # type: ignore[index, no-any-return]


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
        web_bind=settings.web_host,  # Faust binds 0.0.0.0 unless told: only where configured
        web_port=settings.web_port,
        topic_replication_factor=settings.topic_replication_factor,
        topic_partitions=partitions,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_max_request_size=settings.max_message_bytes,
        broker_commit_interval=settings.commit_interval_seconds,
        producer_linger_ms=settings.producer_linger_ms,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=max(1.0, settings.session_timeout_seconds / 10),
        processing_guarantee=settings.processing_guarantee,
        autodiscover=False,
        # Faust's own endpoints would serve table contents (personal data) and
        # the cluster's layout to anyone: every endpoint is ours, behind `Stage.page`.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
    )


def table_changelogs(app: faust.App) -> list[ChangelogSpec]:
    """Every table's changelog topic with the table's partition count, for
    `apply_topics` to create before the worker subscribes (see `ChangelogSpec`)."""
    return [
        ChangelogSpec(
            table.changelog_topic.get_topic_name(),
            table.partitions or app.conf.topic_partitions,
        )
        for table in app.tables.values()
    ]


class Worker(faust.Worker):
    """Faust's worker without its terminal spinner.

    The spinner turns the root logger to DEBUG so that every record moves it:
    aiokafka then builds (and our masking formats) a debug record for every
    fetch and produce request, a fifth of the worker's CPU under load.
    """

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None


def run_worker(
    app: faust.App, settings: Settings, loop: asyncio.AbstractEventLoop | None = None
) -> None:
    """Run `app` until SIGTERM / Ctrl-C; Faust's own log at `faust_log_level`."""
    Worker(
        app, loglevel=settings.faust_log_level.upper(), loop=loop, quiet=True
    ).execute_from_commandline()


def create_app(settings: Settings, topics: Topics, rules: Rules) -> faust.App:
    from agents import (
        capture,
        distribute,
        enrich,
        identify,
        intake,
        nurture,
        privacy,
        qualify,
        report,
    )

    app = faust_app(settings, topics.routing.partitions)
    ensure_local_key(settings)
    reference = ReferenceData.shipped(rules.enrichment.company_directory_file)
    stage = Stage(app, settings, topics, rules, reference)
    modules = (capture, identify, enrich, qualify, nurture, distribute, report, intake, privacy)
    for module in modules:
        module.register(stage)
    return app
