"""Each engine exception becomes the project error that says what to do: an outage
(retry) is `WarehouseUnavailable`, a statement the engine refuses is
`WarehouseRejected`, an analyst's refused SQL is `BadQuery` (HTTP 400).

Real engines: the embedded chdb for refusals, clickhouse-connect against a port
nobody listens on for the outage.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.adapters.warehouse.clickhouse import (
    EVENTS_TABLE,
    EmbeddedWarehouse,
    ServerWarehouse,
    analyst_query,
    load_migrations,
    migrate,
)
from pipeline.errors import BadQuery, BadRequest, WarehouseRejected, WarehouseUnavailable
from tests.support.settings import free_port

TABLE = "leadflow.refusing"


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedWarehouse]:
    """One chdb session for the module (a process holds one at a time), closed after."""
    warehouse = EmbeddedWarehouse(tmp_path_factory.mktemp("warehouse"))
    migrate(warehouse, load_migrations())
    warehouse.execute(
        f"CREATE TABLE IF NOT EXISTS {TABLE} (n Int8, CONSTRAINT small CHECK n < 5) "
        "ENGINE = MergeTree ORDER BY n"
    )
    yield warehouse
    warehouse.close()


@pytest.mark.parametrize(
    ("sql", "name"),
    [
        ("SELEC count() FROM leadflow.leads", "SYNTAX_ERROR"),
        ("SELECT no_such_column FROM leadflow.leads", "UNKNOWN_IDENTIFIER"),
        ("SELECT count() FROM leadflow.no_such_table", "UNKNOWN_TABLE"),
        ("SELECT 1 + 'one'", "ILLEGAL_TYPE_OF_ARGUMENT"),
        ("SELECT no_such_function(1)", "UNKNOWN_FUNCTION"),
        ("DROP TABLE leadflow.refusing", "READONLY"),
    ],
)
def test_an_analysts_query_the_engine_refuses_is_a_bad_query(
    embedded: EmbeddedWarehouse, sql: str, name: str
) -> None:
    with pytest.raises(BadQuery, match=name) as refused:
        analyst_query(embedded, sql)
    assert isinstance(refused.value, BadRequest)  # answered 400
    assert isinstance(refused.value.__cause__, WarehouseRejected)
    assert refused.value.__cause__.name == name


def test_an_insert_the_engine_refuses_is_rejected_not_retried(
    embedded: EmbeddedWarehouse,
) -> None:
    """Good rows next to the one the table refuses: the whole insert is refused, with
    the code and its name, and none of the rows is stored."""
    with pytest.raises(WarehouseRejected) as violated:
        embedded.insert(TABLE, [{"n": 1}, {"n": 7}, {"n": 2}])
    assert (violated.value.code, violated.value.name) == (469, "VIOLATED_CONSTRAINT")
    assert violated.value.retryable is False
    assert violated.value.reason == "ClickHouse code 469 VIOLATED_CONSTRAINT"
    with pytest.raises(WarehouseRejected) as unparsable:
        embedded.insert(TABLE, [{"n": 1}, {"n": "seven"}])
    assert unparsable.value.name == "CANNOT_PARSE_INPUT_ASSERTION_FAILED"
    assert embedded.query(f"SELECT count() AS n FROM {TABLE}") == [{"n": 0}]


def test_a_statement_the_engine_refuses_is_rejected(embedded: EmbeddedWarehouse) -> None:
    with pytest.raises(WarehouseRejected, match="SYNTAX_ERROR"):
        embedded.execute("CREATE TABLEE leadflow.x (n Int8) ENGINE = Memory")
    with pytest.raises(WarehouseRejected, match="UNKNOWN_TABLE"):
        embedded.query("SELECT count() FROM leadflow.no_such_table")


def test_the_sinks_table_taken_away_is_an_outage_of_the_insert(
    embedded: EmbeddedWarehouse,
) -> None:
    """The sink's own table missing (detached by an operator, a broken disk) is the
    warehouse not being whole, not the batch's fault: the insert waits for it."""
    embedded.execute(f"DETACH TABLE {EVENTS_TABLE}")
    try:
        with pytest.raises(WarehouseUnavailable, match="UNKNOWN_TABLE"):
            embedded.insert(EVENTS_TABLE, [{"event_type": "Anything"}])
    finally:
        embedded.execute(f"ATTACH TABLE {EVENTS_TABLE}")


def test_a_server_nobody_listens_on_is_unavailable() -> None:
    url = f"http://default:@127.0.0.1:{free_port()}/default"
    with pytest.raises(WarehouseUnavailable, match="try again later") as outage:
        ServerWarehouse(url)
    assert outage.value.retryable is True
    assert not isinstance(outage.value, BadRequest)  # answered 503, not 400


def test_an_embedded_warehouse_held_elsewhere_is_unavailable(
    embedded: EmbeddedWarehouse, tmp_path: Path
) -> None:
    """chdb opens one directory per process, as one process per directory: another
    while the first is open is the warehouse being held (by a running worker), an
    outage, never a 400."""
    with pytest.raises(WarehouseUnavailable):
        EmbeddedWarehouse(tmp_path / "other")
