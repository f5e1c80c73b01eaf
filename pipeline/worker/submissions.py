"""One submission through the HTTP intake, for both doors: `POST /v1/inquiries`
(a channel's secret key, for servers and webhooks) and `POST /v1/forms/{form_key}`
(a form's public key, for browsers). 202 only once the broker acknowledged the
inquiry on `leads.inquiries`; a body that cannot be an inquiry gets 422 with the
field errors, and its raw bytes still go to `leads.rejected`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.domain.capture.intake import (
    HONEYPOT,
    Accepted,
    intake_position,
    parse_submission,
)
from pipeline.domain.messages import reject
from pipeline.worker.stage import Stage

STAGE = "intake"


@dataclass(frozen=True)
class Answer:
    """What the door answers: status and JSON body; `trapped` for a honeypot hit."""

    status: int
    body: dict[str, Any]
    trapped: bool = False


async def submit(
    stage: Stage,
    body: bytes,
    content_type: str,
    channel: str,
    idempotency_key: str | None,
    honeypot: str | None = None,
) -> Answer:
    """Publish the body as an inquiry of `channel`, or its rejection."""
    settings = stage.settings
    if len(body) > settings.intake_max_body_bytes:  # sent without a Content-Length
        return Answer(413, {"error": f"body over {settings.intake_max_body_bytes} bytes"})
    result = parse_submission(body, content_type, channel, idempotency_key, honeypot)
    if not isinstance(result, Accepted):
        event = reject(body, intake_position(body), STAGE, result)
        rejected = stage.channel(stage.topics.rejected)
        await (await rejected.send(key=None, value=event.model_dump_json().encode()))
        if [r.code for r in result] == [HONEYPOT]:  # a bot: it learns nothing
            return Answer(202, {"inquiry_id": str(event.event_id)}, trapped=True)
        return Answer(422, {"errors": [r.model_dump() for r in result]})
    if len(result.value) > settings.input_max_bytes:  # capture would refuse it
        return Answer(413, {"error": f"body over {settings.input_max_bytes} bytes as an inquiry"})
    inquiries = stage.channel(stage.topics.inquiries)
    sent = inquiries.send(key=result.inquiry_id.encode(), value=result.value)
    await (await sent)  # the broker's ack (acks=all), not just the buffer
    return Answer(202, {"inquiry_id": result.inquiry_id})
