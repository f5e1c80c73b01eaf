"""The CRM bridge against the real broker and a local webhook: retried until
delivered, refused leads in leads.rejected, offsets committed, nothing sent
twice after a restart."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.crm_bridge import CrmBridge
from pipeline.kafka_admin import apply_topics
from pipeline.routing import QueueState, distribute_lead, route_lead
from pipeline.runtime import publish
from pipeline.topics import load_topics
from schemas.lead import LeadAssigned
from schemas.rejected import MessageRejected
from tests.conftest import isolated_settings, read_topic
from tests.unit.test_routing import MONDAY_NOON, ROUTING, handoff


class Crm(BaseHTTPRequestHandler):
    """The CRM: counts deliveries per Idempotency-Key; fails or refuses on cue."""

    keys: ClassVar[Counter[str]] = Counter()
    calls: ClassVar[Counter[str]] = Counter()
    flaky: ClassVar[set[str]] = set()
    refuse: ClassVar[set[str]] = set()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        key = self.headers["Idempotency-Key"]
        Crm.calls[key] += 1
        if key in Crm.flaky and Crm.calls[key] == 1:
            status = 503
        elif key in Crm.refuse:
            status = 400
        else:
            Crm.keys[key] += 1
            status = 202
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def crm_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Crm)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/leads"
    server.shutdown()


def assignments(n: int) -> list[LeadAssigned]:
    found = []
    for i in range(n):
        lead = handoff(contact={"email": f"crm{i}@firma.fr", "country": "FR"}, inquiry_id=f"c{i}")
        result, _ = distribute_lead(route_lead(lead, ROUTING), ROUTING, QueueState(), MONDAY_NOON)
        assert isinstance(result, LeadAssigned)
        found.append(result)
    return found


def test_each_lead_reaches_the_crm_once_refusals_are_kept(
    kafka: str, tmp_path: Path, crm_url: str
) -> None:
    settings = isolated_settings(kafka, tmp_path)
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    leads = assignments(4)
    Crm.flaky, Crm.refuse = {str(leads[0].event_id)}, {str(leads[1].event_id)}
    raw = [a.model_dump_json().encode() for a in leads]

    async def scenario() -> tuple[int, int, dict[TopicPartition, int], dict[TopicPartition, int]]:
        await apply_topics(kafka, topics.all())
        for value, lead in zip(raw, leads, strict=True):
            await publish(kafka, topics.sales_ready.name, [value], key=str(lead.lead_id).encode())
        first = await CrmBridge(settings, topics, crm_url, base_delay=0.05).run(max_messages=4)
        again = CrmBridge(settings, topics, crm_url, base_delay=0.05)
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(3, stop.set)
        await again.run(stop=stop)  # a restart: nothing is left to deliver
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka, group_id=f"{settings.app_id}-crm-bridge"
        )
        await consumer.start()
        try:
            parts = [
                TopicPartition(topics.sales_ready.name, p)
                for p in range(topics.sales_ready.partitions)
            ]
            ends = await consumer.end_offsets(parts)
            committed = {tp: (await consumer.committed(tp)) or 0 for tp in parts}
        finally:
            await consumer.stop()
        assert first.delivered == 3 and first.rejected == 1
        return again.tally.delivered, again.tally.rejected, ends, committed

    delivered_again, rejected_again, ends, committed = asyncio.run(scenario())
    assert (delivered_again, rejected_again) == (0, 0)
    assert committed == ends
    expected = {str(a.event_id) for a in leads} - Crm.refuse
    assert set(Crm.keys) == expected and all(n == 1 for n in Crm.keys.values())
    assert Crm.calls[str(leads[0].event_id)] == 2  # 503 first, then delivered
    rejections = [
        MessageRejected.model_validate_json(value or b"").payload
        for _, value in asyncio.run(read_topic(kafka, topics.rejected))
    ]
    (refused,) = [r for r in rejections if r.stage == "crm-bridge"]
    assert [r.code for r in refused.reasons] == ["crm_refused_400"]
    assert base64.b64decode(refused.original_b64) == raw[1]
