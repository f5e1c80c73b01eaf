"""The envelope every pipeline event carries, and deterministic ids.

Event ids are derived from the event that caused them (uuid5), so a stage that
processes the same input twice after a restart emits the same ids and every
consumer can drop the repeat by `event_id`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)

LEADFLOW_NAMESPACE = uuid.UUID("6f1c1f5e-3b7a-4d3e-9a55-2f0c0de1ead5")

FROZEN = ConfigDict(frozen=True, strict=True, extra="ignore")
"""Emitted events: immutable, no silent coercion, unknown fields ignored."""


def derive_id(*parts: object) -> uuid.UUID:
    """A stable UUID for the same parts, whichever worker computes it."""
    return uuid.uuid5(LEADFLOW_NAMESPACE, "\x1f".join(str(p) for p in parts))


def utcnow() -> datetime:
    return datetime.now(UTC)


def _require_timezone(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp needs a time zone, e.g. 2026-11-22T10:00:00Z")
    return value.astimezone(UTC)


# The published JSON Schemas state what the validators enforce (a validator's rule
# is invisible to pydantic's schema): a time zone on every timestamp, text that is
# not blank, a channel name's pattern.
AwareDatetime = Annotated[
    datetime,
    AfterValidator(_require_timezone),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": r"^\d{4}-\d{2}-\d{2}[Tt _]\d{2}:\d{2}(:\d{2}([.,]\d+)?)?"
            r"([Zz]|[+-]\d{2}(:?\d{2})?)$",
            "description": "ISO 8601 with a time zone, e.g. 2026-11-22T10:00:00Z",
        }
    ),
]
ShortText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"\S"}),
]
"""Up to 200 characters, not blank (surrounding spaces are stripped)."""
CHANNEL_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"
ChannelName = Annotated[
    str,
    BeforeValidator(lambda v: v.strip().lower() if isinstance(v, str) else v),
    StringConstraints(pattern=CHANNEL_PATTERN),
    WithJsonSchema(  # what is accepted before the name is trimmed and lower-cased
        {"type": "string", "pattern": r"^\s*[A-Za-z0-9][A-Za-z0-9_-]{0,39}\s*$"}
    ),
]


class Source(BaseModel):
    """Where an inquiry came from: the key of every attribution report."""

    model_config = FROZEN

    channel: ChannelName = Field(
        description="web_form, email, phone, trade_fair, event, webinar, response_card, "
        "paid_ads, referral, third_party_list, chat, or a channel of your own",
    )
    campaign: ShortText | None = None
    event: ShortText | None = Field(default=None, description="Trade fair or event name.")
    utm_source: ShortText | None = None
    utm_medium: ShortText | None = None
    utm_campaign: ShortText | None = None
    utm_term: ShortText | None = None
    utm_content: ShortText | None = None


class EventBase(BaseModel):
    """Fields every emitted event has, lead-bound or not."""

    model_config = FROZEN

    event_id: uuid.UUID = Field(description="Idempotency key: a repeated event has the same id.")
    event_type: str
    schema_version: str = "1.0"
    occurred_at: AwareDatetime = Field(description="Business time of the fact.")
    emitted_at: AwareDatetime = Field(description="When the stage emitted the event.")

    def key(self) -> bytes | None:
        """The Kafka message key: the lead when there is one."""
        lead_id = getattr(self, "lead_id", None)
        return str(lead_id).encode() if lead_id is not None else None


class LeadEvent(EventBase):
    """A fact about one lead; keyed by `lead_id` on every topic."""

    lead_id: uuid.UUID
    source: Source
    trace_id: uuid.UUID = Field(description="Correlation id of the original inquiry.")

    def follow(self, event_type: str, **fields: Any) -> dict[str, Any]:
        """Envelope fields for an event this one causes (same lead, same trace)."""
        now = utcnow()
        return {
            "event_id": derive_id(event_type, self.event_id),
            "event_type": event_type,
            "lead_id": self.lead_id,
            "source": self.source,
            "trace_id": self.trace_id,
            "occurred_at": now,
            "emitted_at": now,
            **fields,
        }
