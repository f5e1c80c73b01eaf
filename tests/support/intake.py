"""A running worker whose web-form intake takes one key, and a POST to it that
returns the status and body whatever the answer."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass

from pipeline.config.settings import Settings
from pipeline.config.topics import Topics
from pipeline.dev.harness import WorkerProcess

KEY = "hostile-test-key"


@dataclass
class Running:
    settings: Settings
    topics: Topics
    worker: WorkerProcess


def post(run: Running, body: bytes, content_type: str) -> tuple[int, str]:
    """POST an inquiry body with the intake key: (status, body)."""
    request = urllib.request.Request(
        run.settings.web_url + "/v1/inquiries",
        data=body,
        headers={"X-Api-Key": KEY, "Content-Type": content_type},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
