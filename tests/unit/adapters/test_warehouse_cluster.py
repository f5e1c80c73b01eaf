"""The warehouse's DDL on a ClickHouse cluster (issue 18 point 5): every shipped
migration statement, as the runner sends it to a cluster, is accepted by
ClickHouse's own parser (chdb's `formatQuery`), runs ON CLUSTER and makes
Replicated tables. No cluster exists on the project's machines; the statements
run on one where LEADFLOW_TEST_CLICKHOUSE_CLUSTER is set
(tests/integration/test_warehouse_cluster.py)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import chdb
import pytest

from pipeline.adapters.warehouse.clickhouse import (
    MIGRATIONS_TABLE,
    Migration,
    connect,
    load_migrations,
    migrate,
)
from pipeline.adapters.warehouse.cluster import ClusterDDL
from pipeline.config.settings import Settings
from pipeline.errors import ConfigError

CLUSTER = ClusterDDL("leadflow")


def parsed(sql: str) -> str:
    """The statement as ClickHouse's parser reads it back (a syntax error raises).
    A query parameter's value is read in the escaped TSV form, hence the escapes."""
    escaped = sql.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
    result = chdb.query("SELECT formatQuery({q:String})", "TSVRaw", params={"q": escaped})
    return str(result.bytes().decode())


def shipped_statements() -> list[str]:
    return [s for m in load_migrations() for s in m.statements()]


def test_every_shipped_statement_parses_on_the_cluster_and_reaches_every_node() -> None:
    statements = shipped_statements()
    assert len(statements) > 5
    for statement in statements:
        sent = CLUSTER.statement(statement)
        text = parsed(sent)
        if statement.upper().startswith("INSERT"):
            assert sent == statement  # a backfill runs on one node; replication copies it
            continue
        assert re.search(r"\bON CLUSTER leadflow\b", text), text[:200]
        for engine in re.findall(r"ENGINE = (\w+)", text):
            assert engine.startswith("Replicated") and engine.endswith("MergeTree"), text[:300]


def test_an_engine_keeps_its_arguments_after_the_replica_path() -> None:
    sent = CLUSTER.statement(
        "CREATE TABLE IF NOT EXISTS leadflow.`deals x` (v UInt32, a String) "
        "ENGINE = ReplacingMergeTree(v) ORDER BY a"
    )
    assert "leadflow.`deals x` ON CLUSTER `leadflow` (" in sent
    assert (
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', "
        "'{replica}', v)" in sent
    )
    parsed(sent)
    assert CLUSTER.statement(sent) == sent  # sent twice: not doubled


def test_a_table_already_replicated_or_on_the_cluster_is_left_as_written() -> None:
    written = (
        "CREATE TABLE t ON CLUSTER other (a UInt8) "
        "ENGINE = ReplicatedMergeTree('/p/{table}', '{replica}') ORDER BY a"
    )
    assert CLUSTER.statement(written) == written


def test_a_statement_that_cannot_reach_every_node_is_refused() -> None:
    with pytest.raises(ConfigError, match="cannot be run ON CLUSTER"):
        CLUSTER.statement("GRANT SELECT ON leadflow.* TO analyst")


@pytest.mark.parametrize(
    ("cluster", "path", "problem"),
    [
        ("lead flow", "/clickhouse/tables/{shard}/{database}/{table}", "cluster name"),
        ("leadflow", "/clickhouse/tables/{shard}", "holding {table}"),
        ("leadflow", "/clickhouse/'{table}'", "without quotes"),
    ],
)
def test_a_bad_cluster_setting_is_refused_with_the_setting_named(
    cluster: str, path: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)):
        ClusterDDL(cluster, path)


def test_the_embedded_engine_refuses_a_cluster_setting() -> None:
    settings = Settings(clickhouse_cluster="leadflow")
    with pytest.raises(ConfigError, match="LEADFLOW_CLICKHOUSE_CLUSTER needs a ClickHouse server"):
        connect(settings)


class RecordingWarehouse:
    """The warehouse port, remembering what it was sent (no engine behind it)."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.inserted: list[tuple[str, Sequence[dict[str, Any]]]] = []

    def execute(self, sql: str) -> None:
        self.sent.append(sql)

    def insert(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        self.inserted.append((table, rows))

    def query(self, sql: str) -> list[dict[str, Any]]:
        return []

    def close(self) -> None:
        pass


def test_the_runner_sends_every_statement_and_its_record_through_the_cluster() -> None:
    migration = Migration(
        1, "one", "CREATE TABLE IF NOT EXISTS leadflow.t (a UInt8) ENGINE = MergeTree ORDER BY a"
    )
    on_cluster, single = RecordingWarehouse(), RecordingWarehouse()
    migrate(on_cluster, [migration], CLUSTER)
    migrate(single, [migration])
    assert all("ON CLUSTER `leadflow`" in sql for sql in on_cluster.sent)
    assert any(
        MIGRATIONS_TABLE in sql and "ReplicatedReplacingMergeTree" in sql for sql in on_cluster.sent
    )
    assert not any("ON CLUSTER" in sql or "Replicated" in sql for sql in single.sent)
    assert len(on_cluster.sent) == len(single.sent) == 3
    assert [t for t, _ in on_cluster.inserted] == [MIGRATIONS_TABLE]
