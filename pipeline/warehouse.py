"""The ClickHouse warehouse: embedded chdb by default, a server when configured.

Both run the same DDL (`deploy/clickhouse/schema.sql`) and the same SQL. The
embedded directory can be opened by one process at a time, so the worker that
runs the sink owns it; other readers ask the worker over HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson

from pipeline.errors import ConfigError, WarehouseUnavailable
from pipeline.settings import PROJECT_ROOT, Settings

SCHEMA_FILE = PROJECT_ROOT / "deploy" / "clickhouse" / "schema.sql"
EVENTS_TABLE = "leadflow.lead_events"
EVENT_COLUMNS = (
    "event_id",
    "event_type",
    "schema_version",
    "lead_id",
    "trace_id",
    "occurred_at",
    "emitted_at",
    "channel",
    "campaign",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "topic",
    "partition",
    "offset",
    "payload",
)


class Warehouse(Protocol):
    def execute(self, sql: str) -> None: ...
    def insert(self, table: str, rows: Sequence[dict[str, Any]]) -> None: ...
    def query(self, sql: str) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...


class EmbeddedWarehouse:
    """chdb on a local directory."""

    def __init__(self, path: Path) -> None:
        from chdb import session

        path.mkdir(parents=True, exist_ok=True)
        try:
            self._session = session.Session(str(path))
        except Exception as exc:  # chdb raises plain RuntimeError on a held lock
            raise WarehouseUnavailable(
                f"The embedded warehouse at {path} cannot be opened ({exc}). It is probably "
                "held by a running worker: ask the worker (leadflow report --url) or stop it."
            ) from exc

    def execute(self, sql: str) -> None:
        self._run(sql)

    def insert(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            body = b"\n".join(orjson.dumps(row) for row in rows).decode()
            self._run(f"INSERT INTO {table} FORMAT JSONEachRow\n{body}")

    def query(self, sql: str) -> list[dict[str, Any]]:
        result = self._run(sql, "JSONEachRow")
        text = result.bytes() if result is not None else b""
        return [orjson.loads(line) for line in text.splitlines() if line.strip()]

    def close(self) -> None:
        self._session.close()

    def _run(self, sql: str, fmt: str = "CSV") -> Any:
        try:
            return self._session.query(sql, fmt)
        except Exception as exc:
            raise WarehouseUnavailable(f"embedded ClickHouse failed: {exc}") from exc


class ServerWarehouse:
    """A ClickHouse server through clickhouse-connect (HTTP)."""

    def __init__(self, url: str) -> None:
        import clickhouse_connect

        try:
            self._client = clickhouse_connect.get_client(dsn=url)
        except Exception as exc:
            raise WarehouseUnavailable(f"ClickHouse server not reachable: {exc}") from exc

    def execute(self, sql: str) -> None:
        self._call(self._client.command, sql)

    def insert(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            body = b"\n".join(orjson.dumps(row) for row in rows)
            self._call(self._client.raw_insert, table, insert_block=body, fmt="JSONEachRow")

    def query(self, sql: str) -> list[dict[str, Any]]:
        raw = self._call(self._client.raw_query, sql, fmt="JSONEachRow")
        return [orjson.loads(line) for line in bytes(raw).splitlines() if line.strip()]

    def close(self) -> None:
        self._client.close()

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise WarehouseUnavailable(f"ClickHouse server failed: {exc}") from exc


def open_warehouse(settings: Settings) -> Warehouse:
    """Open the configured warehouse and make sure its tables exist."""
    warehouse: Warehouse
    if settings.clickhouse_url is not None:
        url = settings.clickhouse_url.get_secret_value()
        if not url.startswith(("http://", "https://", "clickhouse://")):
            raise ConfigError(
                "LEADFLOW_CLICKHOUSE_URL must look like http://user:password@host:8123/default"
            )
        warehouse = ServerWarehouse(url)
    else:
        warehouse = EmbeddedWarehouse(settings.embedded_warehouse_dir)
    for statement in SCHEMA_FILE.read_text().split("\n;"):
        body = "\n".join(
            line for line in statement.splitlines() if not line.strip().startswith("--")
        ).strip()
        if body:
            warehouse.execute(body)
    return warehouse
