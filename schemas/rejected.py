"""`leads.rejected`: bad input is kept here with its reasons, never dropped."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, Field

from schemas.envelope import FROZEN, EventBase, Source


class Reason(BaseModel):
    model_config = FROZEN

    code: str = Field(description="Machine-readable, e.g. email_invalid, not_json.")
    message: str = Field(description="What is wrong, for a person.")
    field: str | None = None


class Rejection(BaseModel):
    model_config = FROZEN

    stage: str
    topic: str
    partition: int
    offset: int
    reasons: list[Reason] = Field(min_length=1)
    original_b64: str = Field(
        description="The original message bytes, base64; only the first 256 KiB of a larger "
        "message (its full bytes stay at topic/partition/offset for the topic's retention)."
    )
    original_size: int | None = Field(default=None, description="Bytes of the original message.")
    original_truncated: bool = False


class MessageRejected(EventBase):
    """A message a stage could not process, with the original bytes."""

    event_type: Literal["MessageRejected"] = "MessageRejected"
    schema_version: str = "1.1"
    lead_id: uuid.UUID | None = None
    source: Source | None = None
    trace_id: uuid.UUID | None = None
    payload: Rejection
