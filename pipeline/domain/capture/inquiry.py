"""Capture: a raw inquiry becomes a lead, or a rejection with reasons."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from pipeline.domain.capture.exclusion import EXCLUDED, ExclusionPolicy, exclusion_for
from pipeline.domain.capture.plausibility import Plausibility, check_contact, check_received
from pipeline.domain.identify.identity import identity_keys
from pipeline.domain.messages import Position, decode, reject
from pipeline.domain.nurture.policy import recipient
from schemas.envelope import derive_id
from schemas.inquiry import Inquiry
from schemas.lead import InquiryAccepted, LeadProfile, Touch, TouchScheduled
from schemas.rejected import MessageRejected

STAGE = "capture"


def inquiry_key(inquiry: Inquiry, at: Position) -> str:
    """The inquiry's identity: the channel's own id if it sent one, else its place in Kafka."""
    if inquiry.inquiry_id:
        return f"{inquiry.source.channel}:{inquiry.inquiry_id}"
    return at.ref


def lead_id_for(key: str) -> uuid.UUID:
    return derive_id("lead", key)


def trace_id_for(key: str) -> uuid.UUID:
    """The inquiry's correlation id, carried by every event it causes."""
    return derive_id("trace", key)


def capture_inquiry(
    raw: bytes | None,
    at: Position,
    now: datetime,
    policy: Plausibility,
    exclusions: ExclusionPolicy,
    max_bytes: int | None = None,
) -> InquiryAccepted | TouchScheduled | MessageRejected:
    """A plausible inquiry goes on to identity resolution; an excluded one only gets
    its answer. `max_bytes` is the operator's limit (`LEADFLOW_INPUT_MAX_BYTES`, which
    the capture agent passes); None takes a message of any size."""
    inquiry = decode(Inquiry, raw, at, STAGE, max_bytes)
    if isinstance(inquiry, MessageRejected):
        return inquiry
    checked = check_contact(inquiry.contact, policy)
    if checked.blocking:
        return reject(raw or b"", at, STAGE, checked.blocking, source=inquiry.source)
    key = inquiry_key(inquiry, at)
    received, dated = check_received(inquiry.received_at, now, policy)
    inquiry = inquiry.model_copy(update={"contact": checked.contact})
    excluded = exclusion_for(inquiry, policy.default_region, exclusions)
    if excluded is not None:
        answer = exclusions.answer
        contact = checked.contact
        return TouchScheduled(
            event_id=derive_id("TouchScheduled", key),
            lead_id=lead_id_for(key),
            trace_id=trace_id_for(key),
            source=inquiry.source,
            occurred_at=received,
            emitted_at=now,
            payload=Touch(
                channel=answer.channel,
                content_id=answer.content,
                reason=f"{EXCLUDED}{excluded}",
                due_at=now + timedelta(minutes=answer.send_within_minutes),
                recipient=recipient(answer.channel, contact),
                purpose="fulfillment",
            ),
        )
    first, *then = identity_keys(checked.contact)  # plausibility: an e-mail or a phone
    return InquiryAccepted(
        event_id=derive_id("InquiryAccepted", key),
        identity=first,
        pending=then,
        lead_id=lead_id_for(key),
        trace_id=trace_id_for(key),
        source=inquiry.source,
        occurred_at=received,
        emitted_at=now,
        payload=LeadProfile(
            inquiry_id=inquiry.inquiry_id or key,
            received_at=received,
            contact=checked.contact,
            message=inquiry.message,
            product_interest=inquiry.product_interest,
            answers=inquiry.answers,
            consent=inquiry.consent,
            findings=[*checked.findings, *dated],
        ),
    )
