"""How long the raw event log keeps its rows (`LEADFLOW_WAREHOUSE_RAW_RETENTION_DAYS`).

A TTL on `lead_events` drops an event that many days after it happened (whole
monthly partitions once all their rows are due). What the materialized views
made of the events stays: the lead state (`leads`) and the report tables of
migration 005, so the reports over them keep their figures while the raw log
shrinks. The TTL is set (or removed) only when it differs from the table's, so
opening the warehouse does not rewrite the log every time.
"""

from __future__ import annotations

from typing import Protocol

from pipeline.adapters.warehouse.cluster import ClusterDDL


class Session(Protocol):
    """The part of a warehouse session this needs (clickhouse.Warehouse has it)."""

    def execute(self, sql: str) -> None: ...
    def query(self, sql: str) -> list[dict[str, object]]: ...


def raw_events_ttl(days: int | None) -> str:
    """The TTL clause of `lead_events` for `days` ('' for none)."""
    return "" if days is None else f"toDateTime(occurred_at) + toIntervalDay({int(days)})"


def current_ttl(warehouse: Session, table_name: str) -> str:
    """The TTL expression of `table_name` now ('' for none), as ClickHouse prints it."""
    database, table = table_name.split(".")
    [row] = warehouse.query(
        f"SELECT engine_full FROM system.tables WHERE database = '{database}' AND name = '{table}'"
    )
    engine = str(row["engine_full"])
    if " TTL " not in engine:
        return ""
    return engine.split(" TTL ", 1)[1].split(" SETTINGS ", 1)[0].strip()


def apply_retention(
    warehouse: Session, table: str, days: int | None, cluster: ClusterDDL | None = None
) -> bool:
    """Give the raw event `table` the TTL for `days` (none: keep for ever), on every
    node of `cluster` if there is one; True if it changed."""
    wanted = raw_events_ttl(days)
    if _normal(current_ttl(warehouse, table)) == _normal(wanted):
        return False
    change = f"MODIFY TTL {wanted}" if wanted else "REMOVE TTL"
    statement = f"ALTER TABLE {table} {change}"
    warehouse.execute(cluster.statement(statement) if cluster else statement)
    return True


def _normal(expression: str) -> str:
    return "".join(expression.split()).lower()
