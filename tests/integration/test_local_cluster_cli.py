"""`leadflow kafka up --brokers 3` (issue 18 point 4): a three-broker KRaft cluster
on this machine, started by the CLI, found again by `status`, started again on the
same ports with the same cluster id, and gone after `down --purge`."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from pipeline.config.settings import load_settings
from pipeline.dev.local_kafka import port_is_free
from tests.support.processes import leadflow


def free_run(length: int) -> int:
    """A port where `length` ports in a row are free (three brokers and controllers)."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + length < 65535 and all(port_is_free(p) for p in range(first, first + length)):
            return first
    raise AssertionError("no run of free ports")


def _listening(port: int) -> bool:
    """Something accepts connections there (a port just closed may still be in
    TIME_WAIT, so not bindable: that is no broker)."""
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def broker_ids(bootstrap: str) -> set[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
    finally:
        await admin.close()
    return {int(b["node_id"]) for b in cluster["brokers"]}


@pytest.mark.timeout(600)  # three JVMs on a 2-core machine
def test_the_cli_runs_a_three_broker_cluster_again_and_again_and_removes_it(
    tmp_path: Path,
) -> None:
    first = free_run(6)
    settings = load_settings(state_dir=tmp_path, kafka_bootstrap=f"127.0.0.1:{first}")
    bootstrap = ",".join(f"127.0.0.1:{first + 2 * n}" for n in range(3))
    layout = tmp_path / "kafka-cluster" / "cluster.json"
    try:
        up = leadflow(settings, "kafka", "up", "--brokers", "3", timeout=300)
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"Kafka cluster of 3 brokers is up at {bootstrap}" in up.stdout
        assert "LEADFLOW_TOPIC_REPLICATION_FACTOR=3" in up.stdout
        assert asyncio.run(broker_ids(bootstrap)) == {1, 2, 3}
        laid_out = json.loads(layout.read_text())

        status = leadflow(settings, "kafka", "status")
        assert status.returncode == 0 and status.stdout.count(": running (pid") == 3, status.stdout

        again = leadflow(settings, "kafka", "up", "--brokers", "3", timeout=300)
        assert again.returncode == 0 and bootstrap in again.stdout, again.stdout + again.stderr
        assert json.loads(layout.read_text()) == laid_out  # the same cluster, not a new one

        other = leadflow(settings, "kafka", "up", "--brokers", "2")
        assert other.returncode != 0
        assert "a local cluster of 3 brokers exists here, not 2" in other.stdout + other.stderr
        assert "Traceback" not in other.stdout + other.stderr
    finally:
        down = leadflow(settings, "kafka", "down", "--purge", timeout=120)
    assert down.returncode == 0 and "Kafka cluster stopped" in down.stdout, down.stdout
    assert not layout.exists()
    assert not any(_listening(first + n) for n in range(6))
    stopped = leadflow(settings, "kafka", "status")
    assert stopped.returncode == 1 and "not running" in stopped.stdout
