"""Intake: `POST /v1/inquiries` for web forms and webhooks on the worker's web server.

202 only once the broker has acknowledged the inquiry on `leads.inquiries`;
a body that cannot be an inquiry gets 422 with the field errors, and its raw
bytes still go to `leads.rejected`.
"""

from __future__ import annotations

from faust.web import Request, Response, View
from pydantic import SecretStr

from pipeline.config.settings import Settings
from pipeline.worker.http import caller
from pipeline.worker.services import Services
from pipeline.worker.stage import Stage
from pipeline.worker.submissions import submit


def intake_keys(settings: Settings) -> dict[str, SecretStr]:
    return settings.intake_keys


def register(stage: Stage, _services: Services) -> None:
    """`POST /v1/inquiries` on the worker's web server (`submit` is the whole step)."""

    @stage.page("/v1/inquiries", keys=intake_keys)
    class Inquiries(View):
        async def post(self, request: Request) -> Response:
            answer = await submit(
                stage,
                await request.read(),
                request.headers.get("Content-Type", "application/json"),
                caller(request),
                request.headers.get("Idempotency-Key"),
            )
            return self.json(answer.body, status=answer.status)
