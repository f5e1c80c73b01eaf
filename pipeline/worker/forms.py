"""Web forms posted straight from browsers: `POST /v1/forms/{form_key}`.

A plain HTML `<form action=".../v1/forms/<form key>" method="post">` works without
script: the public form key in the address names the channel (`form_keys`; it is
no secret and opens nothing else), urlencoded and multipart bodies are taken, a
hidden honeypot field catches bots, an accepted post is answered 303 to the
channel's thank-you page (`form_redirects`), an invalid one 422 with the field
errors. `fetch()` from a page gets CORS for the channel's origins
(`form_origins`, also the preflight `OPTIONS`) and JSON answers. Each form and
address has its own rate limit (`form_requests_per_minute`, `form_burst`).
"""

from __future__ import annotations

import math

from faust.web import Request, Response, View

from pipeline.config.access import RateLimiter, cors_headers
from pipeline.domain.capture.intake import is_form
from pipeline.worker.stage import Stage
from pipeline.worker.submissions import submit


def serve_forms(stage: Stage) -> None:
    """Register the form door on the worker's web server."""
    settings = stage.settings
    limiter = RateLimiter(settings.form_requests_per_minute, settings.form_burst)

    def allowed(channel: str) -> list[str] | None:
        return settings.form_origins.get(channel)

    @stage.page("/v1/forms/{form_key}", keys=None)  # the form key is checked here
    class Form(View):
        """A web form's post from a browser (public form key in the path)."""

        async def options(self, request: Request, form_key: str) -> Response:
            channel = settings.form_keys.get(form_key)
            origin = request.headers.get("Origin")
            headers = cors_headers(origin, allowed(channel)) if channel else {}
            return self.bytes(b"", status=204 if headers else 403, headers=headers)

        async def post(self, request: Request, form_key: str) -> Response:
            channel = settings.form_keys.get(form_key)
            if channel is None:
                return self.json({"error": "no such form"}, status=404)
            origin = request.headers.get("Origin")
            origins = allowed(channel)
            if origin is not None and origins is not None and origin not in origins:
                return self.json({"error": f"this form takes no posts from {origin}"}, status=403)
            wait = limiter.wait(f"{form_key}|{request.remote}")  # type: ignore[attr-defined]
            headers = cors_headers(origin, origins)
            if wait:
                retry = str(math.ceil(wait))
                body = {"error": f"too many posts; retry after {retry} s"}
                return self.json(body, status=429, headers={**headers, "Retry-After": retry})
            content_type = request.headers.get("Content-Type", "application/json")
            answer = await submit(
                stage,
                await request.read(),
                content_type,
                channel,
                request.headers.get("Idempotency-Key"),
                honeypot=settings.form_honeypot,
            )
            thanks = settings.form_redirects.get(channel)
            if answer.status == 202 and thanks and is_form(content_type):
                return self.bytes(b"", status=303, headers={**headers, "Location": thanks})
            return self.json(answer.body, status=answer.status, headers=headers)
