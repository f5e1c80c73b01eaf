"""Driving a running pipeline from outside: the worker process, publishing,
and watching the terminal topics. Used by the demo, the e2e tests and bench/.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import ValidationError

from pipeline.access import operator_key
from pipeline.capture import inquiry_key
from pipeline.errors import LeadflowError, WorkerRecovering
from pipeline.exclusion import EXCLUDED
from pipeline.messages import Position
from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.topics import Topics, TopicSpec
from schemas.envelope import derive_id
from schemas.inquiry import Inquiry
from schemas.lead import (
    CorrectIdentity,
    IdentityCorrected,
    LeadAssigned,
    LeadCaptured,
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


class WorkerProcess:
    """`leadflow worker` as a child process, stopped cleanly (SIGTERM) on exit."""

    def __init__(self, settings: Settings, log_file: Path) -> None:
        self.settings = settings
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pipeline.cli", "worker"],
                cwd=PROJECT_ROOT,
                env=settings_env(self.settings),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LeadflowError(
                    f"the worker exited at start (code {self.process.returncode}); "
                    f"see {self.log_file}"
                )
            try:
                get_json(self.settings, "/v1/health")
                return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise LeadflowError(
            f"the worker did not answer within {timeout:.0f} s; see {self.log_file}"
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


async def publish(
    bootstrap: str, topic: str, values: Iterable[bytes], key: bytes | None = None
) -> list[Position]:
    """Produce with acks from all in-sync replicas; return each message's position."""
    return await publish_keyed(bootstrap, topic, ((key, value) for value in values))


async def publish_keyed(
    bootstrap: str, topic: str, messages: Iterable[tuple[bytes | None, bytes]]
) -> list[Position]:
    """`publish` with a key per message (key, value)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in messages]
        records = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [Position(r.topic, r.partition, r.offset) for r in records]


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


async def watch_outcomes(
    consumer: AIOKafkaConsumer, topics: Topics, from_beginning: bool = False
) -> None:
    """Point a started consumer at the terminal topics (sales-ready, nurture, touches,
    rejected), from their current end on or from the beginning."""
    terminal = (topics.sales_ready, topics.touches, topics.nurture, topics.rejected)
    await assign(consumer, terminal, from_beginning)


async def assign(
    consumer: AIOKafkaConsumer, specs: Iterable[TopicSpec], from_beginning: bool = False
) -> None:
    """Point a started consumer at every partition of `specs`, from their current end
    on (resolved now, before anything is published) or from the beginning."""
    partitions = [TopicPartition(spec.name, p) for spec in specs for p in range(spec.partitions)]
    consumer.assign(partitions)
    if from_beginning:
        await consumer.seek_to_beginning(*partitions)
    else:
        await consumer.seek_to_end(*partitions)
    for tp in partitions:
        await consumer.position(tp)


class OutcomeWatcher:
    """Reads the terminal topics (read_committed) from their current end on, or
    from the beginning."""

    def __init__(self, bootstrap: str, topics: Topics, from_beginning: bool = False) -> None:
        self.topics = topics
        self.from_beginning = from_beginning
        self.outcomes = Outcomes()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed"
        )

    async def start(self) -> None:
        await self._consumer.start()
        await watch_outcomes(self._consumer, self.topics, self.from_beginning)

    async def poll(self, timeout_ms: int = 200) -> None:
        batches = await self._consumer.getmany(timeout_ms=timeout_ms)
        for tp, records in batches.items():
            for record in records:
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

    async def stop(self) -> None:
        await self._consumer.stop()


class CaptureWatcher:
    """How identity resolution placed inquiries: reads `leads.captured` (and, for
    excluded inquiries, their answer on `leads.touches`) from the current end on.
    Start it before publishing, so nothing it waits for can pass unseen."""

    def __init__(self, bootstrap: str, topics: Topics) -> None:
        self.topics = topics
        self.placed: dict[str, LeadCaptured | None] = {}
        """trace id → its LeadCaptured, or None: excluded, answered without a lead."""
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed"
        )

    async def start(self) -> None:
        await self._consumer.start()
        await assign(self._consumer, (self.topics.captured, self.topics.touches))

    async def wait(self, traces: set[str], timeout: float) -> dict[str, LeadCaptured | None]:
        """The placements of `traces` that arrived within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not traces <= self.placed.keys() and time.monotonic() < deadline:
            for tp, records in (await self._consumer.getmany(timeout_ms=300)).items():
                for record in records:
                    self._record(tp.topic, record.value or b"")
        return {t: self.placed[t] for t in traces if t in self.placed}

    def _record(self, topic: str, value: bytes) -> None:
        if topic == self.topics.captured.name:
            captured = LeadCaptured.model_validate_json(value)
            self.placed[str(captured.trace_id)] = captured
            return
        touch = TouchScheduled.model_validate_json(value)
        if touch.payload.purpose == "fulfillment" and touch.payload.reason.startswith(EXCLUDED):
            self.placed.setdefault(str(touch.trace_id), None)

    async def stop(self) -> None:
        await self._consumer.stop()


async def correct_and_wait(
    bootstrap: str, topics: Topics, command: CorrectIdentity, timeout: float
) -> list[IdentityCorrected]:
    """Send an operator's correction and wait for what it did to both leads."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        await assign(consumer, [topics.identity_corrected])  # its end before the command
        value = command.model_dump_json().encode()
        await publish(bootstrap, topics.identity_corrections.name, [value], key=command.key())
        done: dict[str, IdentityCorrected] = {}
        deadline = time.monotonic() + timeout
        while len(done) < 2:
            if time.monotonic() > deadline:
                raise LeadflowError(
                    f"the correction {command.event_id} was not done within {timeout:.0f} s; "
                    "is the worker running? (it is done once a worker reads it)"
                )
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for record in records:
                    fact = IdentityCorrected.model_validate_json(record.value or b"")
                    if fact.command_id == command.event_id:
                        done[str(fact.lead_id)] = fact
        return list(done.values())
    finally:
        await consumer.stop()


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


async def last_event_of(bootstrap: str, spec: TopicSpec, lead_id: str) -> bytes | None:
    """The newest message keyed by this lead on a topic (a full scan: for the CLI)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(spec.name, p) for p in range(spec.partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        newest: tuple[int, bytes] | None = None
        while any([await consumer.position(tp) < ends[tp] for tp in parts]):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    if r.key == lead_id.encode() and (newest is None or r.timestamp >= newest[0]):
                        newest = (r.timestamp, r.value or b"")
        return newest[1] if newest else None
    finally:
        await consumer.stop()
