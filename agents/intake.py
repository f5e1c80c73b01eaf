"""Intake: `POST /v1/inquiries` for web forms and webhooks on the worker's web server.

202 only once the broker has acknowledged the inquiry on `leads.inquiries`;
a body that cannot be an inquiry gets 422 with the field errors, and its raw
bytes still go to `leads.rejected`.
"""

from __future__ import annotations

from faust.web import Request, Response, View
from pydantic import SecretStr

from pipeline.config.settings import Settings
from pipeline.domain.capture.intake import Accepted, intake_position, parse_submission
from pipeline.domain.messages import reject
from pipeline.worker.http import caller
from pipeline.worker.services import Services
from pipeline.worker.stage import Stage

STAGE = "intake"


def intake_keys(settings: Settings) -> dict[str, SecretStr]:
    return settings.intake_keys


def register(stage: Stage, _services: Services) -> None:
    """`POST /v1/inquiries` on the worker's web server."""
    settings = stage.settings
    inquiries = stage.channel(stage.topics.inquiries)
    rejected = stage.channel(stage.topics.rejected)

    @stage.page("/v1/inquiries", keys=intake_keys)
    class Inquiries(View):
        async def post(self, request: Request) -> Response:
            channel = caller(request)
            limit = settings.intake_max_body_bytes
            body = await request.read()
            if len(body) > limit:
                return self.json({"error": f"body over {limit} bytes"}, status=413)
            result = parse_submission(
                body,
                request.headers.get("Content-Type", "application/json"),
                channel,
                request.headers.get("Idempotency-Key"),
            )
            if not isinstance(result, Accepted):
                event = reject(body, intake_position(body), STAGE, result)
                await (await rejected.send(key=None, value=event.model_dump_json().encode()))
                errors = [r.model_dump() for r in result]
                return self.json({"errors": errors}, status=422)
            if len(result.value) > settings.input_max_bytes:  # capture would refuse it
                error = f"body over {settings.input_max_bytes} bytes as an inquiry"
                return self.json({"error": error}, status=413)
            sent = inquiries.send(key=result.inquiry_id.encode(), value=result.value)
            await (await sent)  # the broker's ack (acks=all), not just the buffer
            return self.json({"inquiry_id": result.inquiry_id}, status=202)
