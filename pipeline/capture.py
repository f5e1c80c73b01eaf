"""Capture: a raw inquiry becomes a lead, or a rejection with reasons."""

from __future__ import annotations

import uuid
from datetime import datetime

from email_validator import EmailNotValidError, validate_email

from pipeline.messages import Position, best_effort_source, decode, reject
from schemas.envelope import derive_id
from schemas.inquiry import Contact, Inquiry
from schemas.lead import LeadCaptured, LeadProfile
from schemas.rejected import MessageRejected, Reason

STAGE = "capture"
MAX_INQUIRY_BYTES = 256 * 1024
"""Far above any real form or mail; larger bodies are junk or an attack."""


def inquiry_key(inquiry: Inquiry, at: Position) -> str:
    """The inquiry's identity: the channel's own id if it sent one, else its place in Kafka."""
    if inquiry.inquiry_id:
        return f"{inquiry.source.channel}:{inquiry.inquiry_id}"
    return at.ref


def lead_id_for(key: str) -> uuid.UUID:
    return derive_id("lead", key)


def capture_inquiry(
    raw: bytes | None, at: Position, now: datetime
) -> LeadCaptured | MessageRejected:
    if raw is not None and len(raw) > MAX_INQUIRY_BYTES:
        too_large = Reason(
            code="too_large",
            message=f"{len(raw)} bytes; an inquiry may have at most {MAX_INQUIRY_BYTES}.",
        )
        return reject(raw, at, STAGE, [too_large], source=best_effort_source(raw))
    inquiry = decode(Inquiry, raw, at, STAGE)
    if isinstance(inquiry, MessageRejected):
        return inquiry
    contact, reasons = check_contact(inquiry.contact)
    if reasons:
        return reject(raw or b"", at, STAGE, reasons, source=inquiry.source)
    key = inquiry_key(inquiry, at)
    received = inquiry.received_at or now
    return LeadCaptured(
        event_id=derive_id("LeadCaptured", key),
        lead_id=lead_id_for(key),
        trace_id=derive_id("trace", key),
        source=inquiry.source,
        occurred_at=received,
        emitted_at=now,
        payload=LeadProfile(
            inquiry_id=inquiry.inquiry_id or key,
            received_at=received,
            contact=contact,
            message=inquiry.message,
            product_interest=inquiry.product_interest,
            answers=inquiry.answers,
            consent=inquiry.consent,
        ),
    )


def check_contact(contact: Contact) -> tuple[Contact, list[Reason]]:
    """Plausibility: a way to reach the person, and an e-mail address that can exist."""
    reasons: list[Reason] = []
    email = contact.email
    if email is not None:
        try:
            email = validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            reasons.append(Reason(code="email_invalid", message=str(exc), field="contact.email"))
    if contact.email is None and contact.phone is None:
        reasons.append(
            Reason(
                code="no_contact_channel",
                message="Neither e-mail nor phone: nobody could follow up this inquiry.",
                field="contact",
            )
        )
    return contact.model_copy(update={"email": email}), reasons
