from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from typing import Any

from pipeline.config.access import operator_key
from pipeline.config.settings import Settings
from pipeline.errors import LeadflowError, WorkerRecovering


def get_json(settings: Settings, path: str, timeout: float = 10.0) -> Any:
    return json.loads(get_bytes(settings, path, timeout))


def get_bytes(settings: Settings, path: str, timeout: float = 10.0) -> bytes:
    """GET from the worker with the operator key (configured, or the worker's local one).

    A view of worker tables that are still recovering raises `WorkerRecovering`
    (not an `OSError`: the worker is there, its answer is "not yet").
    """
    key = operator_key(settings)
    request = urllib.request.Request(
        settings.web_url + path, headers={"X-Api-Key": key} if key else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        retry = exc.headers.get("Retry-After", "") if exc.code == 503 else ""
        if retry.isdigit():
            raise WorkerRecovering(int(retry)) from None
        raise


def post_json(settings: Settings, path: str, body: Any, timeout: float = 60.0) -> Any:
    """POST a JSON body (personal data belongs in a body, never in a logged URL)."""
    key = operator_key(settings)
    request = urllib.request.Request(
        settings.web_url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **({"X-Api-Key": key} if key else {})},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


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
