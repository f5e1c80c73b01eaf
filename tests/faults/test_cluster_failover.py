"""A three-broker cluster and two workers (issue 18 point 4): the brokers holding
the partition leaders die mid-stream, later one worker does, and nothing is lost.

The cluster is the local broker's (`LocalCluster`: three KRaft nodes, each also a
controller); `topics apply` gives every topic three replicas and
`min.insync.replicas` 2, so a write counts once two brokers have it and a
broker's loss loses nothing acknowledged. One worker runs the warehouse sink,
the other routes only (`LEADFLOW_WAREHOUSE_SINK=false`), as the README says
for an embedded warehouse. Mid-stream the broker that leads most partitions of
the inquiries topic is killed (SIGKILL); once the stream has gone on without
it, the routing worker is killed too, and the first takes over its partitions.
A worker that exits because a broker vanished under its start is started
again, as its supervisor would. Afterwards every inquiry is accounted for on the
terminal topics, no lead has two owners, and the warehouse holds each
`event_id` once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from pipeline.adapters.kafka.client import publish
from pipeline.adapters.warehouse.clickhouse import EVENTS_TABLE, open_warehouse
from pipeline.adapters.worker_api import wait_until_stored
from pipeline.config.topics import TopicSpec, load_topics
from pipeline.dev.harness import OutcomeWatcher, WorkerProcess
from pipeline.dev.local_kafka import LocalCluster
from pipeline.dev.traffic import demo_inquiries
from pipeline.domain.messages import Position
from tests.support.settings import free_port, isolated_settings

PER_PHASE = 100
TIMEOUT_S = 300.0


async def busiest_leader(bootstrap: str, spec: TopicSpec) -> tuple[int, int]:
    """The broker leading most of `spec`'s partitions, and how many it leads."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([spec.name])
    finally:
        await admin.close()
    leaders = Counter(p["leader"] for p in described["partitions"])
    ((node, led),) = leaders.most_common(1)
    return int(node), led


@pytest.mark.timeout(900)  # three brokers and two workers on a 2-core machine
def test_losing_a_leading_broker_and_a_worker_loses_nothing(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "cluster", size=3)
    cluster.up(log=print)
    sink = isolated_settings(cluster.bootstrap, tmp_path / "sink").model_copy(
        update={
            "topic_replication_factor": 3,
            "topic_min_insync_replicas": 2,
            "session_timeout_seconds": 6.0,
        }
    )
    router = sink.model_copy(
        update={"warehouse_sink": False, "web_port": free_port(), "state_dir": tmp_path / "router"}
    )
    topics = load_topics(sink.topics_file, sink.topic_prefix)
    workers = [
        WorkerProcess(sink, tmp_path / "sink.log"),
        WorkerProcess(router, tmp_path / "router.log"),
    ]
    values = [
        m.value
        for m in demo_inquiries(
            3 * PER_PHASE, seed=18, run=f"{uuid.uuid4().hex[:6]}-", duplicate_share=0.0
        )
    ]
    phases = [values[n * PER_PHASE : (n + 1) * PER_PHASE] for n in range(3)]
    restarts = 0
    killed: dict[str, object] = {}

    def supervise() -> None:
        """Start again a worker that exited (not the one the test killed)."""
        nonlocal restarts
        for worker in workers[: 1 if "worker" in killed else 2]:
            if worker.process is not None and worker.process.poll() is not None:
                restarts += 1
                worker.start()

    async def until_accounted(
        watcher: OutcomeWatcher, sent: list[tuple[bytes, Position]], share: float
    ) -> None:
        """Poll (supervising the workers) until `share` of `sent` is accounted for."""
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            supervise()
            await watcher.poll()
            done = sum(watcher.outcomes.accounted(v, at) for v, at in sent)
            if done >= share * len(sent):
                return

    async def scenario() -> tuple[OutcomeWatcher, list[str]]:
        watcher = OutcomeWatcher(cluster.bootstrap, topics, from_beginning=True)
        await watcher.start()
        sent: list[tuple[bytes, Position]] = []
        try:
            for n, phase in enumerate(phases):
                positions = await publish(cluster.bootstrap, topics.inquiries.name, phase)
                sent += list(zip(phase, positions, strict=True))
                await until_accounted(watcher, sent[-len(phase) :], 0.3)
                if n == 0:  # mid-stream: the broker leading most inquiry partitions dies
                    node, led = await busiest_leader(cluster.bootstrap, topics.inquiries)
                    print(f"killing broker {node}, leader of {led} inquiry partitions")
                    cluster.node(node).kill()
                    killed["broker"] = node
                elif n == 1:  # later: the routing worker dies; the sink worker takes over
                    workers[1].kill()
                    killed["worker"] = True
            deadline = time.monotonic() + TIMEOUT_S
            pending = sent
            while pending and time.monotonic() < deadline:
                supervise()
                await watcher.poll()
                pending = [(v, at) for v, at in pending if not watcher.outcomes.accounted(v, at)]
        finally:
            await watcher.stop()
        return watcher, [at.ref for _, at in pending]

    try:
        for worker in workers:
            worker.start()
        watcher, missing = asyncio.run(scenario())
        asyncio.run(wait_until_stored(sink))
    finally:
        for worker in workers:
            worker.stop()
        cluster.down()
    print(f"broker {killed['broker']} and the routing worker killed; {restarts} restart(s)")
    assert missing == [], f"{len(missing)} inquiries not accounted for"
    for lead, events in watcher.outcomes.sales_ready.items():
        owners = {e.payload.owner.rep_id for e in events}
        assert len(owners) == 1, f"lead {lead} has owners {owners}"
    warehouse = open_warehouse(sink)
    try:
        rows = warehouse.query(
            "SELECT count() AS n, uniqExact(event_id) AS ids, "
            "countIf(event_type IN ('InquiryReceived', 'Unreadable')) AS inquiries "
            f"FROM {EVENTS_TABLE} FINAL"
        )
    finally:
        warehouse.close()
    assert rows[0]["n"] == rows[0]["ids"] > 0
    assert rows[0]["inquiries"] == len(values)
