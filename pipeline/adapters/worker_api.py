"""The one client of the running worker's HTTP API (the CLI, the demo, the harness,
tests and benchmarks ask the worker only through it).

Every request goes through `request`: the worker's URL, the operator key
(configured, or the worker's local one) and one reading of its answers: 503
with Retry-After is `WorkerRecovering` (the worker is there, its answer is "not
yet"), any other HTTP error stays an `urllib.error.HTTPError` for the caller to
judge, and nothing listening is an `OSError`. `ask_worker` is the read side's variant:
no worker is `None` (the CLI then opens the warehouse itself) and a refusal is
a `LeadflowError` that says what to do.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

from pipeline.config.access import operator_key
from pipeline.config.settings import Settings
from pipeline.errors import LeadflowError, WorkerRecovering


def request(
    settings: Settings,
    path: str,
    *,
    query: dict[str, str] | None = None,
    body: bytes | None = None,
    content_type: str | None = None,
    timeout: float = 10.0,
) -> bytes:
    """The worker's answer to one request (POST when there is a body, else GET).

    Raises `WorkerRecovering` on 503 with Retry-After (tables still recovering),
    `urllib.error.HTTPError` on any other error status, `OSError` when nothing
    listens at `settings.web_url`."""
    url = settings.web_url + path + (f"?{urlencode(query)}" if query else "")
    headers = {"Content-Type": content_type} if content_type else {}
    key = operator_key(settings)
    if key is not None:
        headers["X-Api-Key"] = key
    sent = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(sent, timeout=timeout) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        retry = exc.headers.get("Retry-After", "") if exc.code == 503 else ""
        if retry.isdigit():
            raise WorkerRecovering(int(retry)) from None
        raise


def get_bytes(settings: Settings, path: str, timeout: float = 10.0) -> bytes:
    """GET from the worker (see `request` for what its errors mean)."""
    return request(settings, path, timeout=timeout)


def get_json(settings: Settings, path: str, timeout: float = 10.0) -> Any:
    """GET a JSON answer from the worker."""
    return json.loads(get_bytes(settings, path, timeout))


def post_json(settings: Settings, path: str, body: Any, timeout: float = 60.0) -> Any:
    """POST a JSON body (personal data belongs in a body, never in a logged URL)."""
    sent = json.dumps(body).encode()
    return json.loads(
        request(settings, path, body=sent, content_type="application/json", timeout=timeout)
    )


def ask_worker(
    settings: Settings,
    path: str,
    query: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 120.0,
) -> bytes | None:
    """The worker's answer for the read side, or None when no worker listens; a
    refusal raises a `LeadflowError` saying why (`refusal`)."""
    try:
        return request(
            settings,
            path,
            query=query,
            body=body,
            content_type="text/plain; charset=utf-8",
            timeout=timeout,
        )
    except urllib.error.HTTPError as exc:
        raise LeadflowError(refusal(settings, exc)) from None
    except OSError:  # nothing listens: no worker runs
        return None


def refusal(settings: Settings, exc: urllib.error.HTTPError) -> str:
    """What an operator reads when the worker refused: how to present the key
    on 401, else the status and the worker's own `error`."""
    try:
        reason = json.loads(exc.read()).get("error", exc.reason)
    except (ValueError, AttributeError):
        reason = exc.reason
    if exc.code == 401:
        return (
            f"the worker at {settings.web_url} wants an operator key: set the same "
            'LEADFLOW_OPERATOR_KEYS=\'{"analyst": "…"}\' for the worker and the CLI'
        )
    return f"the worker at {settings.web_url} answered {exc.code}: {reason}"


def worker_answers(settings: Settings) -> bool:
    """Does a worker answer at `settings.web_url`?"""
    try:
        get_json(settings, "/v1/health", timeout=3.0)
    except OSError:
        return False
    return True


async def wait_until_stored(settings: Settings, timeout: float = 120.0) -> None:
    """Wait until the warehouse sink has stored and committed everything on its topics."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if get_json(settings, "/v1/warehouse/lag")["lag"] == 0:
                return
        except (OSError, urllib.error.HTTPError):
            pass
        await asyncio.sleep(0.3)
    raise LeadflowError(f"the warehouse did not catch up within {timeout:.0f} s")
