"""Decoding at the edge: bytes become a model or a rejection, never a crash."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from schemas.envelope import Source, derive_id, utcnow
from schemas.rejected import MessageRejected, Reason, Rejection

M = TypeVar("M", bound=BaseModel)

MAX_ORIGINAL_BYTES = 256 * 1024
"""A rejection copies at most this much of the original, so it always fits in a
Kafka message (1 MB by default) and a poison message cannot block a stage."""


@dataclass(frozen=True)
class Position:
    """Where a message sits in Kafka: stable across redeliveries."""

    topic: str
    partition: int
    offset: int

    @property
    def ref(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


def decode(
    model: type[M],
    raw: bytes | None,
    at: Position,
    stage: str,
    max_bytes: int | None = None,
    oldest: datetime | None = None,
) -> M | MessageRejected:
    """The message as `model`, or its rejection; `max_bytes` limits what outside
    producers may send (a gzip-compressed batch passes the broker at any size), and
    an input that says it happened (`occurred_at`) before `oldest` is implausible."""
    if raw is None:
        return reject(
            b"", at, stage, [Reason(code="empty_message", message="The message has no value.")]
        )
    if max_bytes is not None and len(raw) > max_bytes:
        too_large = Reason(
            code="too_large",
            message=f"{len(raw)} bytes; a message on {at.topic} may have at most {max_bytes}.",
        )
        return reject(raw, at, stage, [too_large], source=best_effort_source(raw))
    try:
        decoded = model.model_validate_json(raw)
    except ValidationError as exc:
        return reject(raw, at, stage, reasons_from(exc), source=best_effort_source(raw))
    occurred = getattr(decoded, "occurred_at", None)
    if oldest is not None and isinstance(occurred, datetime) and occurred < oldest:
        implausible = Reason(
            code="occurred_at_implausible",
            message=f"Dated {occurred.isoformat()}, before {oldest.date().isoformat()}: a "
            "clock that is wrong, not a fact to measure reports by.",
            field="occurred_at",
        )
        return reject(raw, at, stage, [implausible])
    return decoded


def best_effort_source(raw: bytes | None) -> Source | None:
    """The channel of a message that is otherwise unreadable, so reports can still
    count the rejection against its channel."""
    try:
        data = orjson.loads(raw or b"")
        return Source.model_validate(data["source"]) if isinstance(data, dict) else None
    except (orjson.JSONDecodeError, KeyError, TypeError, ValidationError):
        return None


def reasons_from(exc: ValidationError) -> list[Reason]:
    reasons = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(p) for p in err["loc"]) or None
        code = "not_json" if err["type"] == "json_invalid" else f"invalid_{err['type']}"
        reasons.append(Reason(code=code, message=err["msg"], field=field))
    return reasons


def reject(
    raw: bytes,
    at: Position,
    stage: str,
    reasons: list[Reason],
    source: Source | None = None,
) -> MessageRejected:
    now = utcnow()
    return MessageRejected(
        event_id=derive_id("MessageRejected", stage, at.ref),
        occurred_at=now,
        emitted_at=now,
        source=source,
        payload=Rejection(
            stage=stage,
            topic=at.topic,
            partition=at.partition,
            offset=at.offset,
            reasons=reasons,
            original_b64=base64.b64encode(raw[:MAX_ORIGINAL_BYTES]).decode("ascii"),
            original_size=len(raw),
            original_truncated=len(raw) > MAX_ORIGINAL_BYTES,
        ),
    )
