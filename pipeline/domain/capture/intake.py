"""HTTP intake for web forms and webhooks, without the web server: what body
becomes which inquiry (who is calling: `pipeline.access`)."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from email import policy as email_policy
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qs

import orjson
import pydantic_core
from pydantic import ValidationError

from pipeline.domain.capture.plausibility import email_problem
from pipeline.domain.messages import Position, reasons_from
from schemas.inquiry import FINITE_NUMBER, Inquiry, non_finite_at
from schemas.rejected import Reason

CONTACT_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "company",
    "job_title",
    "postal_code",
    "city",
    "country",
    "language",
)
SOURCE_FIELDS = (
    "campaign",
    "event",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
)


@dataclass(frozen=True)
class Accepted:
    inquiry_id: str
    value: bytes


HONEYPOT = "honeypot"
"""The reason code of a submission whose hidden trap field a person never fills."""


def is_form(content_type: str) -> bool:
    """A body as a plain HTML `<form>` posts it (urlencoded or multipart)."""
    return content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data"))


def parse_submission(
    body: bytes,
    content_type: str,
    channel: str,
    idempotency_key: str | None,
    honeypot: str | None = None,
) -> Accepted | list[Reason]:
    """The body as an inquiry of `channel`, or the reasons it cannot be one.

    The key decides the channel; a retry with the same idempotency key (header
    or `inquiry_id`) carries the same inquiry id, so capture makes no second lead.
    A form's `honeypot` field (hidden from people, filled by bots) that holds
    anything makes the reason `HONEYPOT`.
    """
    if is_form(content_type):
        fields = (
            multipart_fields(body, content_type)
            if content_type.startswith("multipart/form-data")
            else parse_qs(body.decode("utf-8", errors="replace"))
        )
        if fields is None:
            return [Reason(code="not_form_data", message="The multipart body cannot be read.")]
        if honeypot is not None and any(v.strip() for v in fields.get(honeypot, [])):
            return [Reason(code=HONEYPOT, message="The hidden field was filled.", field=honeypot)]
        data: Any = form_to_inquiry(fields)
    else:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return [non_finite(body) or Reason(code="not_json", message=str(exc))]
        if not isinstance(data, dict):
            return [Reason(code="not_an_object", message="The body must be a JSON object.")]
        if honeypot is not None and data.pop(honeypot, None):
            return [Reason(code=HONEYPOT, message="The hidden field was filled.", field=honeypot)]
    source = data.setdefault("source", {})
    if isinstance(source, dict):
        given = source.setdefault("channel", channel)
        if given != channel:
            return [
                Reason(
                    code="channel_mismatch",
                    message=f"This API key is for channel {channel!r}, not {given!r}.",
                    field="source.channel",
                )
            ]
    data["inquiry_id"] = data.get("inquiry_id") or idempotency_key or str(uuid.uuid4())
    try:
        value = orjson.dumps(data)
    except orjson.JSONEncodeError:  # nested deeper than any inquiry (orjson stops at 255)
        return [Reason(code="too_deep", message="The body is nested too deeply.")]
    try:
        inquiry = Inquiry.model_validate_json(value)
    except ValidationError as exc:
        return reasons_from(exc)
    address = email_problem(inquiry.contact.email)  # the visitor learns it now, not never
    if address is not None:
        return [address]
    return Accepted(inquiry_id=inquiry.inquiry_id or "", value=value)


def multipart_fields(body: bytes, content_type: str) -> dict[str, list[str]] | None:
    """The text fields of a `multipart/form-data` body (files are left out: an
    inquiry has none), as `parse_qs` gives them; None if it is no such body."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=email_policy.HTTP).parsebytes(head + body)
    if not message.is_multipart() or message.defects:
        return None
    fields: dict[str, list[str]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or part.get_filename() is not None:
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            charset = part.get_content_charset() or "utf-8"
            fields.setdefault(name, []).append(payload.decode(charset, errors="replace"))
    return fields


def non_finite(body: bytes) -> Reason | None:
    """Why a body orjson refused is still not an inquiry, if it is JSON but for a NaN,
    Infinity or 1e400 (numbers JSON output would turn into null unnoticed)."""
    try:
        where = non_finite_at(pydantic_core.from_json(body))
    except ValueError:
        return None
    if where is None:
        return None
    return Reason(
        code=f"invalid_{FINITE_NUMBER}",
        message="Input should be a finite number, not NaN or Infinity",
        field=".".join(map(str, where)),
    )


def form_to_inquiry(fields: dict[str, list[str]]) -> dict[str, Any]:
    """A flat web form (`email=…&campaign=…&product_interest=a&product_interest=b`)."""

    def one(name: str) -> str | None:
        values = [v for v in fields.get(name, []) if v.strip()]
        return values[0] if values else None

    def present(names: tuple[str, ...]) -> dict[str, str]:
        return {n: v for n in names if (v := one(n)) is not None}

    data: dict[str, Any] = {
        "source": present(SOURCE_FIELDS),
        "contact": present(CONTACT_FIELDS),
        "product_interest": [v for v in fields.get("product_interest", []) if v.strip()],
        "consent": {
            "marketing_email": one("consent_marketing_email") in {"on", "true", "1", "yes"},
            "phone_contact": one("consent_phone_contact") in {"on", "true", "1", "yes"},
        },
    }
    for name in ("inquiry_id", "message"):
        if (value := one(name)) is not None:
            data[name] = value
    return data


def intake_position(body: bytes) -> Position:
    """A stable place for a body that never reached Kafka: the same bytes posted
    twice are the same rejection (same event id), different bytes never collide."""
    digest = int.from_bytes(hashlib.sha256(body).digest()[:7], "big")
    return Position("http:/v1/inquiries", 0, digest)
