"""Feeding messages straight into an agent's Faust function, in-process: the stage's
one loop runs as in the worker, with its sends recorded (or failing) instead."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import structlog
from structlog.testing import capture_logs

from pipeline.worker.stage import Outgoing, Stage


def source_of(stage: Stage, name: str) -> str:
    """The topic agent `name` consumes."""
    (topic,) = stage.app.agents[name].channel.topics
    return str(topic)


def run_agent(
    stage: Stage, name: str, values: list[bytes], fail: Exception | None = None
) -> tuple[list[Outgoing], list[Any]]:
    """`values` (offsets 0, 1, …) through agent `name`; what it sent, in order, and the
    log lines it wrote (with the loop's bound context). A `fail` makes every send raise."""
    sent: list[Outgoing] = []

    async def send(message: Outgoing) -> None:
        if fail is not None:
            raise fail
        sent.append(message)

    topic = source_of(stage, name)

    async def events() -> AsyncIterator[SimpleNamespace]:
        for offset, value in enumerate(values):
            message = SimpleNamespace(topic=topic, partition=0, offset=offset, key=b"k")
            yield SimpleNamespace(message=message, value=value)

    stage.send = send  # type: ignore[method-assign]
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        try:
            asyncio.run(stage.app.agents[name].fun(SimpleNamespace(events=events)))
        finally:
            logged = list(logs)
            LAST_LOGS[:] = logged
    return sent, logged


LAST_LOGS: list[Any] = []
"""The log lines of the last `run_agent`, also when it raised."""
