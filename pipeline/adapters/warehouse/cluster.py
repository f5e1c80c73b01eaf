"""The warehouse's DDL on a ClickHouse cluster: `ON CLUSTER` and Replicated engines.

The migrations are written once, for one server (and chdb); their files are
checksummed and never edited. On a cluster the runner rewrites each statement as
it sends it: every `CREATE`, `ALTER`, `DROP`, `RENAME` and `TRUNCATE` of a table,
view or database gets `ON CLUSTER <name>`, so it runs on every node, and every
`…MergeTree` engine becomes its `Replicated…MergeTree` twin, so each replica
holds all rows and a node can be lost. `INSERT … SELECT` (a migration's backfill)
runs on the node the worker talks to; replication copies its rows.

The supported topology is one shard with any number of replicas: the tables are
local, reads need no `Distributed` table, and every node answers every report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.config.settings import DEFAULT_REPLICA_PATH
from pipeline.errors import ConfigError

REPLICA_NAME = "{replica}"
"""Each server's own replica name, from its macros."""

IDENTIFIER = r"(?:`[^`]+`|[A-Za-z_]\w*)"
NAME = rf"{IDENTIFIER}(?:\.{IDENTIFIER})?"
"""A table, view or database name, with its database in front or not."""
DDL = re.compile(
    r"^(?P<head>(?:CREATE|ATTACH)\s+(?:OR\s+REPLACE\s+)?"
    r"(?:TABLE|DATABASE|VIEW|MATERIALIZED\s+VIEW|DICTIONARY)"
    r"|ALTER\s+TABLE|DROP\s+(?:TABLE|VIEW|DATABASE|DICTIONARY)|RENAME\s+TABLE"
    r"|TRUNCATE\s+TABLE|TRUNCATE)"
    r"(?P<exists>\s+IF\s+(?:NOT\s+)?EXISTS)?\s+(?P<name>" + NAME + r")",
    re.IGNORECASE,
)
ENGINE = re.compile(
    r"\bENGINE\s*=\s*(?P<engine>(?!Replicated)\w*MergeTree)\b(?:\s*\((?P<args>[^()]*)\))?",
    re.IGNORECASE,
)
ON_CLUSTER = re.compile(r"\s+ON\s+CLUSTER\b", re.IGNORECASE)
WRITES = re.compile(r"^(?:INSERT|SELECT|WITH|OPTIMIZE|SYSTEM)\b", re.IGNORECASE)
"""Statements that change rows, not the schema: they run on one node."""


@dataclass(frozen=True)
class ClusterDDL:
    """How DDL reaches every node of the cluster `cluster`."""

    cluster: str
    replica_path: str = DEFAULT_REPLICA_PATH

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z_][\w-]*", self.cluster):
            raise ConfigError(
                f"LEADFLOW_CLICKHOUSE_CLUSTER={self.cluster!r}: a cluster name from the "
                "servers' <remote_servers> (letters, digits, '_' and '-')"
            )
        if "'" in self.replica_path or "{table}" not in self.replica_path:
            raise ConfigError(
                f"LEADFLOW_CLICKHOUSE_REPLICA_PATH={self.replica_path!r}: a Keeper path "
                "holding {table} (and usually {shard} and {database}), without quotes"
            )

    def statement(self, sql: str) -> str:
        """`sql` as it runs on the cluster; a statement it does not know is refused,
        so a new kind of migration statement cannot silently reach one node only."""
        text = sql.strip()
        if WRITES.match(text):
            return text
        match = DDL.match(text)
        if match is None:
            raise ConfigError(
                "this warehouse statement cannot be run ON CLUSTER (it is neither DDL "
                f"on a table, view or database nor a row change): {text[:120]}"
            )
        head, rest = text[: match.end()], text[match.end() :]
        if not ON_CLUSTER.match(rest):
            text = f"{head} ON CLUSTER `{self.cluster}`{rest}"
        return ENGINE.sub(self._replicated, text)

    def _replicated(self, match: re.Match[str]) -> str:
        args = (match.group("args") or "").strip()
        own = f"'{self.replica_path}', '{REPLICA_NAME}'"
        return f"ENGINE = Replicated{match.group('engine')}({own}{', ' + args if args else ''})"
