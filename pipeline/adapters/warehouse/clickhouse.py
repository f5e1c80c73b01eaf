"""The ClickHouse warehouse: embedded chdb by default, a server when configured.

Both run the same DDL (the numbered migrations shipped in
`pipeline/defaults/clickhouse/`, applied in order and recorded in
`leadflow.schema_migrations`) and the same SQL. The
embedded directory can be opened by one process at a time, so the worker that
runs the sink owns it; other readers ask the worker over HTTP.

Every engine exception leaves an adapter as one of two project errors, chosen by
ClickHouse's error code: `WarehouseUnavailable` when the engine gave no answer or
said "not now" (`OUTAGE_CODES`: retry), `WarehouseRejected` when it answered and
refused the statement (syntax, unknown identifier, type mismatch, a value the
column does not take …: the same statement gets the same answer). `analyst_query`
turns a refusal into `BadQuery`, the analyst's to fix.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from pipeline.adapters.warehouse.cluster import ClusterDDL
from pipeline.adapters.warehouse.retention import apply_retention
from pipeline.config.settings import SHIPPED_DIR, Settings
from pipeline.errors import (
    BadQuery,
    BadRequest,
    ConfigError,
    WarehouseRejected,
    WarehouseUnavailable,
)

MIGRATIONS_DIR = SHIPPED_DIR / "clickhouse"
MIGRATION_FILE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
MIGRATIONS_TABLE = "leadflow.schema_migrations"
EVENTS_TABLE = "leadflow.lead_events"
COSTS_TABLE = "leadflow.campaign_costs"
QUERY_MEMORY_LIMIT = "Query memory limit exceeded"
"""How ClickHouse says one query went over its own `max_memory_usage` (code 241, which
otherwise means the server is short of memory now)."""
ANALYST_REFUSED = re.compile(r"\b(settings|format|outfile)\b", re.IGNORECASE)
JSON_NUMBERS = "output_format_json_quote_64bit_integers"
"""Off, so counts come back as JSON numbers, not strings."""
INSERT_DEDUPLICATE = "insert_deduplicate"
"""Off: a Replicated table would drop an insert whose block equals one of its last
hundred, e.g. the costs loaded again after TRUNCATE at every start, or an erasure's
rewritten rows. Repeats are folded by the tables themselves (ReplacingMergeTree by
event_id, aggregates that give the same answer twice), on chdb as on a server."""
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


OUTAGE_CODES = frozenset(
    {
        3,  # UNEXPECTED_END_OF_FILE: the connection broke off
        32,  # ATTEMPT_TO_READ_AFTER_EOF
        198,  # DNS_ERROR
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        203,  # NO_FREE_CONNECTION
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        236,  # ABORTED
        241,  # MEMORY_LIMIT_EXCEEDED: the server is short of memory now
        242,  # TABLE_IS_READ_ONLY: a replica lost its coordination
        243,  # NOT_ENOUGH_SPACE
        252,  # TOO_MANY_PARTS: inserts faster than the merges, slow down
        279,  # ALL_CONNECTION_TRIES_FAILED
        285,  # TOO_FEW_LIVE_REPLICAS
        319,  # UNKNOWN_STATUS_OF_INSERT
        394,  # QUERY_WAS_CANCELLED: the server shuts down
        425,  # SYSTEM_ERROR
        516,  # AUTHENTICATION_FAILED: the warehouse is not usable until its credentials are fixed
        999,  # KEEPER_EXCEPTION
    }
)
"""ClickHouse error codes that mean "not now" whatever the statement: the
warehouse is away, overloaded or not usable, and the same statement may succeed
later (`WarehouseUnavailable`). Every other code is the statement's own
(`WarehouseRejected`); an engine error without a code (no connection, a reset)
is an outage."""
STORE_OUTAGE_CODES = OUTAGE_CODES | {
    60,  # UNKNOWN_TABLE: the sink's table is detached or dropped …
    81,  # UNKNOWN_DATABASE: … or its database
    159,  # TIMEOUT_EXCEEDED: a server-side limit on a slow moment
}
"""What is an outage for the worker's own inserts into the tables the migrations
made: a missing table is the warehouse not being whole (an operator detached it,
a disk broke), not the batch's fault, so the sink waits for it to come back. For
an analyst's query the same codes are their mistake or their query's cost."""
ERROR_CODE = re.compile(r"\bCode: (\d+)")
ERROR_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)")


def engine_error(
    exc: Exception, engine: str, outage: frozenset[int] = OUTAGE_CODES
) -> WarehouseUnavailable | WarehouseRejected:
    """The project error for an exception of chdb or clickhouse-connect.

    clickhouse-connect puts the server's code on `exc.code` (None when no answer
    came: connection refused, reset, timeout); chdb raises a `RuntimeError`
    whose text starts "Code: 62. DB::Exception: …"."""
    text = str(exc)
    code: int | None = getattr(exc, "code", None)
    if not isinstance(code, int):
        found = ERROR_CODE.search(text)
        code = int(found.group(1)) if found else None
    if code is None or code in outage:
        return WarehouseUnavailable(f"{engine} is unavailable, try again later: {text}")
    name = ERROR_NAME.search(text)
    return WarehouseRejected(
        f"{engine} refused the statement: {text}", code, name.group(1) if name else None
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
            self._session.query(f"SET {JSON_NUMBERS} = 0")
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
            self._run(f"INSERT INTO {table} FORMAT JSONEachRow\n{body}", outage=STORE_OUTAGE_CODES)

    def query(self, sql: str) -> list[dict[str, Any]]:
        result = self._run(sql, "JSONEachRow")
        text = result.bytes() if result is not None else b""
        return [orjson.loads(line) for line in text.splitlines() if line.strip()]

    def close(self) -> None:
        self._session.close()

    def _run(self, sql: str, fmt: str = "CSV", outage: frozenset[int] = OUTAGE_CODES) -> Any:
        try:
            return self._session.query(sql, fmt)
        except Exception as exc:  # chdb raises ChdbError (a RuntimeError) with the code
            raise engine_error(exc, "the embedded ClickHouse", outage) from exc


class ServerWarehouse:
    """A ClickHouse server through clickhouse-connect (HTTP)."""

    def __init__(self, url: str) -> None:
        import clickhouse_connect

        try:
            self._client = clickhouse_connect.get_client(
                dsn=url, settings={JSON_NUMBERS: 0, INSERT_DEDUPLICATE: 0}
            )
        except Exception as exc:
            raise engine_error(exc, "the ClickHouse server") from exc

    def execute(self, sql: str) -> None:
        self._call(self._client.command, sql)

    def insert(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            body = b"\n".join(orjson.dumps(row) for row in rows)
            self._call(
                self._client.raw_insert,
                table,
                insert_block=body,
                fmt="JSONEachRow",
                outage=STORE_OUTAGE_CODES,
            )

    def query(self, sql: str) -> list[dict[str, Any]]:
        raw = self._call(self._client.raw_query, sql, fmt="JSONEachRow")
        return [orjson.loads(line) for line in bytes(raw).splitlines() if line.strip()]

    def close(self) -> None:
        self._client.close()

    def _call(
        self, fn: Any, *args: Any, outage: frozenset[int] = OUTAGE_CODES, **kwargs: Any
    ) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # clickhouse-connect's errors carry the server's code
            raise engine_error(exc, "the ClickHouse server", outage) from exc


@dataclass(frozen=True)
class AnalystLimits:
    """What one analyst query (`POST /v1/sql`, `leadflow report sql`) may use: read
    only (no writes, no settings, no table functions such as file() or url()), at
    most `seconds`, about `rows` rows, `memory_bytes` of memory. The worker runs these
    queries in a warehouse session of their own, apart from reports and the sink
    (`WarehouseSink.analyst_call`), so one that runs to its limit delays no report."""

    seconds: float = 10.0
    rows: int = 10_000
    memory_bytes: int = 1_000_000_000

    @classmethod
    def of(cls, settings: Settings) -> AnalystLimits:
        return cls(
            settings.sql_timeout_seconds, settings.sql_max_rows, settings.sql_max_memory_bytes
        )

    def sql(self) -> str:
        """The SETTINGS clause."""
        return (
            f"readonly = 1, max_execution_time = {self.seconds:g}, "
            f"max_result_rows = {self.rows}, result_overflow_mode = 'break', "
            f"max_memory_usage = {self.memory_bytes}"
        )


@dataclass(frozen=True)
class Migration:
    """One numbered DDL file; once applied it is never edited, only followed."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        """The file's statements (separated by a line holding only ";"), comments dropped."""
        bodies = (
            "\n".join(line for line in part.splitlines() if not line.strip().startswith("--"))
            for part in self.sql.split("\n;")
        )
        return [body.strip() for body in bodies if body.strip()]


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = MIGRATION_FILE.match(path.name)
        if match is None:
            raise ConfigError(
                f"{path}: a migration is named NNN_what_it_does.sql, e.g. 004_lead_notes.sql"
            )
        version = int(match.group(1))
        if version in found:
            raise ConfigError(f"{path}: migration {version:03d} exists twice")
        found[version] = Migration(version, match.group(2), path.read_text())
    return [found[v] for v in sorted(found)]


def migrate(
    warehouse: Warehouse, migrations: Sequence[Migration], cluster: ClusterDDL | None = None
) -> list[Migration]:
    """Apply the migrations not yet recorded, in order; return those applied.

    Statements are idempotent (IF NOT EXISTS), so a migration cut off half-way
    is simply run again. An applied migration whose file changed is an error:
    the change belongs in a new migration. On a cluster every statement goes
    through `cluster` (ON CLUSTER, Replicated engines), the record of applied
    migrations too, so each node knows what was applied.
    """

    def run(statement: str) -> None:
        warehouse.execute(cluster.statement(statement) if cluster else statement)

    run("CREATE DATABASE IF NOT EXISTS leadflow")
    run(
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (version UInt32, name String, "
        "checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )
    rows = warehouse.query(f"SELECT version, checksum FROM {MIGRATIONS_TABLE} FINAL")
    applied = {int(row["version"]): row["checksum"] for row in rows}
    done: list[Migration] = []
    for migration in migrations:
        if migration.version in applied:
            if applied[migration.version] != migration.checksum:
                raise ConfigError(
                    f"warehouse migration {migration.version:03d}_{migration.name}.sql changed "
                    "after it was applied; put the change in a new migration file instead"
                )
            continue
        for statement in migration.statements():
            run(statement)
        warehouse.insert(
            MIGRATIONS_TABLE,
            [
                {
                    "version": migration.version,
                    "name": migration.name,
                    "checksum": migration.checksum,
                }
            ],
        )
        done.append(migration)
    return done


def connect(settings: Settings) -> Warehouse:
    """A session of the configured warehouse, as it is (`open_warehouse` also brings
    its schema up to date). One process may hold several sessions of one embedded
    directory; only another process is locked out."""
    if settings.clickhouse_url is None:
        if settings.clickhouse_cluster:
            raise ConfigError(
                "LEADFLOW_CLICKHOUSE_CLUSTER needs a ClickHouse server: set "
                "LEADFLOW_CLICKHOUSE_URL to one node of the cluster (the embedded engine "
                "is one process, not a cluster)"
            )
        return EmbeddedWarehouse(settings.embedded_warehouse_dir)
    url = settings.clickhouse_url.get_secret_value()
    if not url.startswith(("http://", "https://", "clickhouse://")):
        raise ConfigError(
            "LEADFLOW_CLICKHOUSE_URL must look like http://user:password@host:8123/default"
        )
    return ServerWarehouse(url)


def cluster_ddl(settings: Settings) -> ClusterDDL | None:
    """How the migrations reach the configured cluster; None for one server or chdb."""
    if not settings.clickhouse_cluster:
        return None
    return ClusterDDL(settings.clickhouse_cluster, settings.clickhouse_replica_path)


def open_warehouse(settings: Settings) -> Warehouse:
    """Open the configured warehouse, bring its schema up to date, set the raw events'
    retention and load the costs."""
    warehouse = connect(settings)
    try:
        ddl = cluster_ddl(settings)
        migrate(warehouse, load_migrations(), ddl)
        apply_retention(warehouse, EVENTS_TABLE, settings.warehouse_raw_retention_days, ddl)
        load_costs(warehouse, settings.rules_dir / "costs.yaml")
    except BaseException:
        warehouse.close()  # the embedded directory stays locked while a session is open
        raise
    return warehouse


def load_costs(warehouse: Warehouse, path: Path) -> int:
    """Replace `campaign_costs` with the cost file's rows (none if there is no file)."""
    from pipeline.config.report_rules import CampaignCosts
    from pipeline.config.yaml_model import load_yaml_model

    costs = load_yaml_model(path, CampaignCosts) if path.exists() else CampaignCosts()
    warehouse.execute(f"TRUNCATE TABLE {COSTS_TABLE}")
    warehouse.insert(COSTS_TABLE, costs.rows())
    return len(costs.costs)


def analyst_query(
    warehouse: Warehouse, sql: str, limits: AnalystLimits = AnalystLimits()
) -> list[dict[str, Any]]:
    """Run one read-only query for an analyst (`POST /v1/sql`) within `limits`.

    `BadRequest` (HTTP 400) only for the query's own fault: not one query, or
    `BadQuery` when ClickHouse refused it, also for going over its time or memory
    limit. An outage stays `WarehouseUnavailable` (503, try again); anything else is
    a fault of ours (500)."""
    text = sql.strip().rstrip(";").strip()
    if not text:
        raise BadRequest("send one SQL query, e.g. SELECT count() FROM leadflow.leads")
    if ";" in text:
        raise BadRequest("one statement at a time, please (found ';' inside the query)")
    if ANALYST_REFUSED.search(text):
        raise BadRequest(
            "leave out SETTINGS, FORMAT and INTO OUTFILE: the endpoint sets read-only "
            "settings and answers in JSON"
        )
    try:
        return warehouse.query(f"{text}\nSETTINGS {limits.sql()}")
    except WarehouseRejected as exc:
        raise BadQuery(str(exc)) from exc
    except WarehouseUnavailable as exc:
        if QUERY_MEMORY_LIMIT in str(exc):  # the query's own limit, not a short server
            raise BadQuery(str(exc)) from exc
        raise
