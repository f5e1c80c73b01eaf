"""Driving a running pipeline from outside: the worker process, publishing,
and watching the terminal topics. Used by the demo, the e2e tests and bench/.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipeline.adapters.kafka.reader import KafkaReader, partitions_of
from pipeline.adapters.kafka.security import Broker
from pipeline.adapters.worker_api import get_json
from pipeline.config.settings import PROJECT_ROOT, Settings
from pipeline.config.topics import Topics
from pipeline.domain.capture.exclusion import EXCLUDED
from pipeline.domain.capture.inquiry import inquiry_key
from pipeline.domain.messages import Position
from pipeline.errors import LeadflowError
from schemas.envelope import derive_id
from schemas.inquiry import Inquiry
from schemas.lead import (
    LeadAssigned,
    LeadNurtured,
    TouchScheduled,
)
from schemas.rejected import MessageRejected


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as LEADFLOW_* variables, for a child process."""
    env = dict(os.environ)
    for name, value in settings.model_dump(exclude_none=True).items():
        env[f"LEADFLOW_{name.upper()}"] = (
            json.dumps({k: _revealed(v) for k, v in value.items()})
            if isinstance(value, dict)
            else str(_revealed(value))
        )
    return env


def _revealed(value: Any) -> Any:
    secret = getattr(value, "get_secret_value", None)
    return secret() if secret else value


def port_taken(host: str, port: int) -> bool:
    """Does a process listen at host:port already (then a worker could not bind it)?
    SO_REUSEADDR as aiohttp binds: a port a stopped worker left in TIME_WAIT is free."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


class WorkerProcess:
    """`leadflow worker` as a child process, stopped cleanly (SIGTERM) on exit.

    It makes sure the worker answering is its own: it refuses to start when another
    process holds the web port, and a health answer counts only with its child's
    pid (`/v1/health` says the pid), so another process on the port is never taken
    for a worker that died (`check`)."""

    def __init__(self, settings: Settings, log_file: Path) -> None:
        self.settings = settings
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    def refuse_taken_port(self) -> None:
        """`LeadflowError` when another process listens at the worker's web address."""
        host, port = self.settings.web_host, self.settings.web_port
        if port_taken(host, port):
            raise LeadflowError(
                f"another process already listens at {host}:{port}, so the worker could not "
                "serve there: stop it (a worker still running? `leadflow report sink` asks it) "
                "or set LEADFLOW_WEB_PORT to a free port"
            )

    def start(self, timeout: float = 90.0) -> None:
        self.refuse_taken_port()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pipeline.entrypoints.cli", "worker"],
                cwd=PROJECT_ROOT,
                env=settings_env(self.settings),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.check()
                return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise LeadflowError(
            f"the worker did not answer within {timeout:.0f} s; see {self.log_file}"
        )

    def check(self) -> None:
        """Is the worker this started alive and the one answering at the web address?
        `LeadflowError` if it exited or another process answers there; `OSError` while
        nothing answers yet."""
        assert self.process is not None, "start it first"
        if self.process.poll() is not None:
            raise LeadflowError(
                f"the worker exited (code {self.process.returncode}); see {self.log_file}"
            )
        answered = get_json(self.settings, "/v1/health").get("pid")
        if answered != self.process.pid:
            raise LeadflowError(
                f"another process (pid {answered}) answers at {self.settings.web_url}, not "
                f"the worker this started (pid {self.process.pid}); see {self.log_file}"
            )

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def kill(self) -> None:
        """Crash it: no clean shutdown, as a power cut would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> WorkerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Outcomes:
    """What reached the terminal topics: sales-ready, nurture, touches, rejected."""

    sales_ready: dict[str, list[LeadAssigned]] = field(default_factory=dict)
    nurtured: set[str] = field(default_factory=set)
    """Leads the nurture gate kept (not ready for sales)."""
    answered: set[str] = field(default_factory=set)
    """Trace ids (one per inquiry) that got their fulfillment touch."""
    rejected_at: set[str] = field(default_factory=set)
    deliveries: Counter[str] = field(default_factory=Counter)
    """How often each event_id arrived: more than once is a repeat a CRM must drop."""

    @property
    def repeats(self) -> int:
        return sum(n - 1 for n in self.deliveries.values())

    traces: set[str] = field(default_factory=set)
    """Trace ids (one per inquiry) that reached sales-ready, the nurture gate
    (`LeadNurtured`), or the answer to an excluded inquiry: an inquiry attached to a known person's
    lead is accounted for by its own trace."""

    def accounted(self, value: bytes, at: Position) -> bool:
        """Is this published inquiry answered and decided (sales or nurture), or
        rejected with a reason?"""
        if at.ref in self.rejected_at:
            return True
        try:
            inquiry = Inquiry.model_validate_json(value)
        except ValidationError:
            return False
        trace = str(derive_id("trace", inquiry_key(inquiry, at)))
        return trace in self.traces and trace in self.answered


def outcome_reader(
    bootstrap: Broker, topics: Topics, from_beginning: bool = False, **options: Any
) -> KafkaReader:
    """A reader of the terminal topics (sales-ready, nurture, touches, rejected),
    from their current end on or from the beginning. Committed records only: the
    worker writes them in transactions, and an aborted one's output never happened."""
    terminal = (topics.sales_ready, topics.touches, topics.nurture, topics.rejected)
    return KafkaReader(
        bootstrap,
        partitions_of(terminal),
        "read_committed",
        from_beginning=from_beginning,
        **options,
    )


class OutcomeWatcher:
    """Reads the terminal topics (`outcome_reader`) from their current end on, or
    from the beginning."""

    def __init__(self, bootstrap: Broker, topics: Topics, from_beginning: bool = False) -> None:
        self.topics = topics
        self.outcomes = Outcomes()
        self._reader = outcome_reader(bootstrap, topics, from_beginning)

    async def start(self) -> None:
        await self._reader.start()

    async def poll(self, timeout_ms: int = 200) -> None:
        for tp, record in await self._reader.poll(timeout_ms=timeout_ms):
            self._record(tp.topic, record.value or b"")

    def _record(self, topic: str, value: bytes) -> None:
        event: LeadAssigned | TouchScheduled | LeadNurtured | MessageRejected
        if topic == self.topics.sales_ready.name:
            event = LeadAssigned.model_validate_json(value)
            self.outcomes.sales_ready.setdefault(str(event.lead_id), []).append(event)
            self.outcomes.traces.add(str(event.trace_id))
        elif topic == self.topics.nurture.name:
            event = LeadNurtured.model_validate_json(value)
            self.outcomes.nurtured.add(str(event.lead_id))
            self.outcomes.traces.add(str(event.trace_id))
        elif topic == self.topics.touches.name:
            event = TouchScheduled.model_validate_json(value)
            touch = event.payload
            if touch.purpose == "fulfillment":
                self.outcomes.answered.add(str(event.trace_id))
                if touch.reason.startswith(EXCLUDED):  # all an excluded inquiry gets
                    self.outcomes.traces.add(str(event.trace_id))
        else:
            event = MessageRejected.model_validate_json(value)
            rejection = event.payload
            self.outcomes.rejected_at.add(
                Position(rejection.topic, rejection.partition, rejection.offset).ref
            )
        self.outcomes.deliveries[str(event.event_id)] += 1

    async def unaccounted(self, sent: list[tuple[bytes, Position]], timeout: float) -> list[str]:
        """Poll until every inquiry `sent` (value, position) is accounted for, at most
        `timeout` seconds; the refs of those that are not."""
        pending = sent
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            await self.poll()
            pending = [(v, at) for v, at in pending if not self.outcomes.accounted(v, at)]
        return [at.ref for _, at in pending]

    async def stop(self) -> None:
        await self._reader.stop()
