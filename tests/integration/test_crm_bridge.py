"""The CRM bridge against the real broker and a local webhook: retried until
delivered, refused and undecodable messages in leads.rejected, offsets
committed only after delivery, nothing sent twice after a restart."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from structlog.testing import capture_logs

from pipeline.adapters.crm_bridge import CrmBridge
from pipeline.adapters.kafka.admin import apply_topics
from pipeline.adapters.kafka.client import publish
from pipeline.config.settings import PROJECT_ROOT, Settings
from pipeline.config.topics import Topics, load_topics
from pipeline.dev.harness import settings_env
from pipeline.domain.distribute.routing import QueueState, distribute_lead, route_lead
from schemas.lead import LeadAssigned
from schemas.rejected import MessageRejected, Rejection
from tests.support.broker import read_topic
from tests.support.routing import MONDAY_NOON, ROUTING, handoff
from tests.support.settings import free_port, isolated_settings

pytestmark = pytest.mark.integration

GARBAGE = b'{"event_type": "LeadAssigned", "lead_id": '


class Crm:
    """A CRM webhook on 127.0.0.1 that stores each lead it answers 2xx, counted
    by Idempotency-Key; it fails, refuses or is down on cue."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.stored: Counter[str] = Counter()
        self.bodies: dict[str, bytes] = {}
        self.auth: set[str | None] = set()
        self.flaky: set[str] = set()
        """Keys whose first request gets a 503."""
        self.refuse: set[str] = set()
        """Keys answered 400 (a lead the CRM will never take)."""
        self.down = False
        self.arrived = threading.Event()
        self.watch: str | None = None
        """A key whose first call sets `arrived`."""

    def answer(self, key: str, auth: str | None, body: bytes) -> int:
        with self.lock:
            self.calls[key] += 1
            self.auth.add(auth)
            if key == self.watch:
                self.arrived.set()
            if self.down or (key in self.flaky and self.calls[key] == 1):
                return 503
            if key in self.refuse:
                return 400
            self.stored[key] += 1
            self.bodies[key] = body
            return 202

    def total_calls(self) -> int:
        with self.lock:
            return sum(self.calls.values())


@pytest.fixture
def crm() -> Iterator[tuple[Crm, str]]:
    state = Crm()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = state.answer(
                self.headers["Idempotency-Key"], self.headers.get("Authorization"), body
            )
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/leads"
    server.shutdown()
    server.server_close()
    thread.join()


def assignments(n: int, first: int = 0) -> list[LeadAssigned]:
    found = []
    for i in range(first, first + n):
        lead = handoff(contact={"email": f"crm{i}@firma.fr", "country": "FR"}, inquiry_id=f"c{i}")
        result, _ = distribute_lead(route_lead(lead, ROUTING), ROUTING, QueueState(), MONDAY_NOON)
        assert isinstance(result, LeadAssigned)
        found.append(result)
    return found


async def publish_leads(kafka: str, topics: Topics, leads: list[LeadAssigned]) -> None:
    for lead in leads:
        value = lead.model_dump_json().encode()
        await publish(kafka, topics.sales_ready.name, [value], key=str(lead.lead_id).encode())


async def offsets(settings: Settings, topics: Topics) -> tuple[dict[int, int], dict[int, int]]:
    """The bridge group's committed offsets and the topic's end offsets, by partition."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=f"{settings.app_id}-crm-bridge"
    )
    await consumer.start()
    try:
        spec = topics.sales_ready
        parts = [TopicPartition(spec.name, p) for p in range(spec.partitions)]
        ends = await consumer.end_offsets(parts)
        committed = {tp.partition: (await consumer.committed(tp)) or 0 for tp in parts}
        return committed, {tp.partition: end for tp, end in ends.items()}
    finally:
        await consumer.stop()


def bridge_rejections(kafka: str, topics: Topics) -> list[tuple[Rejection, str | None]]:
    found = []
    for _, value in asyncio.run(read_topic(kafka, topics.rejected)):
        event = MessageRejected.model_validate_json(value or b"")
        if event.payload.stage == "crm-bridge":
            found.append((event.payload, None if event.lead_id is None else str(event.lead_id)))
    return found


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_each_lead_reaches_the_crm_once_refusals_are_kept(
    kafka: str, tmp_path: Path, crm: tuple[Crm, str]
) -> None:
    server, url = crm
    settings = isolated_settings(kafka, tmp_path)
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    leads = assignments(4)
    flaky, refused = str(leads[0].event_id), str(leads[1].event_id)
    server.flaky, server.refuse = {flaky}, {refused}

    async def first_two() -> int:
        await apply_topics(kafka, [topics.sales_ready, topics.rejected])
        await publish_leads(kafka, topics, leads)
        await publish(kafka, topics.sales_ready.name, [GARBAGE])
        bridge = CrmBridge(settings, topics, url, base_delay=0.05, max_delay=0.2)
        tally = await bridge.run(max_messages=2)
        assert tally.handled == 2
        committed, _ = await offsets(settings, topics)
        assert sum(committed.values()) == 2  # exactly what was handled, nothing past it
        return tally.delivered

    with capture_logs() as logs:
        delivered_first = asyncio.run(first_two())

    # the rest through the command, as an operator runs it, with a bearer token
    env = settings_env(settings) | {"CRM_TOKEN": "s3cret-token"}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.entrypoints.cli", "crm-bridge", "--url", url,
         "--token-env", "CRM_TOKEN", "--max-messages", "3", "--retry-base", "0.05"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    summary = done.stdout.strip().splitlines()[-1]
    assert summary == f"{3 - delivered_first} delivered, {delivered_first} rejected"
    assert "Bearer s3cret-token" in server.auth
    assert "s3cret" not in done.stdout + done.stderr

    committed, ends = asyncio.run(offsets(settings, topics))
    assert committed == ends and sum(ends.values()) == 5

    # each lead stored once, as the CRM counts Idempotency-Key values
    assert server.stored == Counter({str(a.event_id): 1 for a in leads[2:] + leads[:1]})
    assert server.calls[flaky] == 2  # 503, then delivered
    assert server.calls[refused] == 1  # 400 is final: not retried
    assert server.total_calls() == 5
    for lead in leads[2:]:
        body = LeadAssigned.model_validate_json(server.bodies[str(lead.event_id)])
        assert body == lead

    # the refusal and the undecodable message are kept in leads.rejected
    rejections = {
        r.reasons[0].code: (r, lead_id) for r, lead_id in bridge_rejections(kafka, topics)
    }
    assert set(rejections) == {"crm_refused_400", "not_json"}
    refusal, lead_id = rejections["crm_refused_400"]
    assert lead_id == str(leads[1].lead_id)
    assert base64.b64decode(refusal.original_b64) == leads[1].model_dump_json().encode()
    assert base64.b64decode(rejections["not_json"][0].original_b64) == GARBAGE

    # one log line per delivery with its outcome; no e-mail address, no token
    lines = [dict(e) for e in logs] + json_lines(done.stderr)
    deliveries = [e for e in lines if e["event"] == "crm.delivery"]
    assert sorted((e["event_id"], e["status"], e["attempts"]) for e in deliveries) == sorted(
        [(flaky, 202, 2), (refused, 400, 1)] + [(str(a.event_id), 202, 1) for a in leads[2:]]
    )
    assert {e["lead_id"] for e in deliveries} == {str(a.lead_id) for a in leads}
    assert [e["status"] for e in lines if e["event"] == "crm.retry"] == [503]
    assert len([e for e in lines if e["event"] == "crm.undecodable"]) == 1
    assert "@firma.fr" not in repr(lines) and "s3cret" not in repr(lines)

    # a restart: only a new lead is delivered, nothing already delivered again
    (late,) = assignments(1, first=10)
    server.watch = str(late.event_id)

    async def restart() -> int:
        await publish_leads(kafka, topics, [late])
        stop = asyncio.Event()
        bridge = CrmBridge(settings, topics, url, base_delay=0.05)
        running = asyncio.create_task(bridge.run(stop=stop))
        await asyncio.to_thread(server.arrived.wait, 60)
        await asyncio.sleep(1.5)  # time to (wrongly) fetch and send anything old
        stop.set()
        tally = await running
        return tally.handled

    assert asyncio.run(restart()) == 1
    assert server.calls[str(late.event_id)] == 1 and server.total_calls() == 6
    committed, ends = asyncio.run(offsets(settings, topics))
    assert committed == ends


def test_a_lead_the_crm_cannot_take_now_is_held_uncommitted_until_it_can(
    kafka: str, tmp_path: Path, crm: tuple[Crm, str]
) -> None:
    server, url = crm
    settings = isolated_settings(kafka, tmp_path)
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    (lead,) = assignments(1, first=20)
    server.down = True

    async def outage() -> int:
        await apply_topics(kafka, [topics.sales_ready, topics.rejected])
        await publish_leads(kafka, topics, [lead])
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(2.0, stop.set)  # Ctrl-C during the outage
        bridge = CrmBridge(settings, topics, url, base_delay=0.05, max_delay=0.2)
        return (await bridge.run(stop=stop)).handled

    assert asyncio.run(outage()) == 0
    assert server.calls[str(lead.event_id)] >= 3 and not server.stored
    committed, ends = asyncio.run(offsets(settings, topics))
    assert sum(committed.values()) == 0 and sum(ends.values()) == 1

    server.down = False
    bridge = CrmBridge(settings, topics, url, base_delay=0.05)
    assert asyncio.run(bridge.run(max_messages=1)).delivered == 1
    assert server.stored == Counter({str(lead.event_id): 1})
    committed, ends = asyncio.run(offsets(settings, topics))
    assert committed == ends
    assert bridge_rejections(kafka, topics) == []


def test_the_command_says_what_is_wrong_and_exits_non_zero(kafka: str, tmp_path: Path) -> None:
    def bridge(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pipeline.entrypoints.cli", "crm-bridge", *args],
            cwd=PROJECT_ROOT,
            env=os.environ | {"LEADFLOW_STATE_DIR": str(tmp_path)} | env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    bad_url = bridge("--url", "ftp://crm.example/hook")
    assert bad_url.returncode == 1 and "--url must be an http(s) address" in bad_url.stdout
    bad_port = bridge("--url", "https://crm.example:port/hook")
    assert bad_port.returncode == 1 and "--url must be an http(s) address" in bad_port.stdout
    no_token = bridge("--url", "https://crm.example/hook", "--token-env", "NO_SUCH_VARIABLE_X")
    assert no_token.returncode == 1 and "NO_SUCH_VARIABLE_X" in no_token.stdout
    no_kafka = bridge(
        "--url",
        "https://user:pw@crm.example/hook",
        LEADFLOW_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}",
    )
    assert no_kafka.returncode == 1 and "no Kafka broker answers" in no_kafka.stdout
    assert "Traceback" not in no_kafka.stdout + no_kafka.stderr
    assert "user:pw" not in no_kafka.stdout
    no_topics = bridge(
        "--url",
        "https://crm.example/hook",
        LEADFLOW_KAFKA_BOOTSTRAP=kafka,
        LEADFLOW_TOPIC_PREFIX=f"t{uuid.uuid4().hex[:8]}.",
    )
    assert no_topics.returncode == 1 and "leadflow topics apply" in no_topics.stdout
