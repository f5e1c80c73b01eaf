"""The local broker's cluster ids are ones Kafka's storage tool accepts; a local
cluster's layout is refused before anything starts when it cannot be kept."""

from __future__ import annotations

import base64
import json
import socket
import uuid
from pathlib import Path

import pytest

from pipeline.dev import local_kafka
from pipeline.dev.local_kafka import LocalCluster, new_cluster_id
from pipeline.errors import ConfigError, KafkaUnavailable


def test_a_cluster_id_never_starts_with_a_dash_the_storage_tool_reads_as_an_option(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One random id in 64 starts with "-" (`kafka-storage format -t -xyz` then fails:
    "expected one argument", seen once in CI); the first such draw is skipped."""
    dashed = uuid.UUID(bytes=base64.urlsafe_b64decode("-" + "A" * 21 + "=="))
    plain = uuid.UUID(int=7)
    draws = iter([dashed, plain])
    monkeypatch.setattr(local_kafka.uuid, "uuid4", lambda: next(draws))
    found = new_cluster_id()
    assert found == base64.urlsafe_b64encode(plain.bytes).decode().rstrip("=")
    assert not found.startswith("-")
    assert len(found) == 22


def test_a_local_cluster_on_taken_ports_is_refused_with_the_ports_named(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(KafkaUnavailable, match=rf"\b{port}\b.*taken"):
            LocalCluster(tmp_path, 3, first_port=port)
    assert not (tmp_path / "cluster.json").exists()  # nothing laid out


def test_a_laid_out_cluster_of_another_size_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cluster.json").write_text(
        json.dumps({"cluster_id": new_cluster_id(), "ports": [19092, 19094, 19096]})
    )
    with pytest.raises(ConfigError, match="a local cluster of 3 brokers exists here, not 2"):
        LocalCluster(tmp_path, 2)
    assert LocalCluster.existing(tmp_path / "elsewhere") is None
