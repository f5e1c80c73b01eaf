"""Typed tables: a Faust table that stores and loads one type, so agents never write
`model_validate_json` / `model_dump_json` by hand.

Each table keeps the encoding its changelog has always had (state written by an
earlier release must still load): `stored="bytes"` is a bytes-keyed table of JSON
bytes (qualify, nurture, timers), `stored="json"` a table with Faust's JSON
serializer for keys and values, whose values are what a pydantic `TypeAdapter`
dumps in JSON mode (`json_text(Model)` where a value was always stored as a JSON text).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Generic, Literal, TypeVar

import faust
from faust.types import TableT
from pydantic import PlainSerializer, PlainValidator, TypeAdapter

T = TypeVar("T")
Stored = Literal["bytes", "json"]
JSON_SCHEMA: faust.Schema = faust.Schema(key_serializer="json", value_serializer="json")
TABLE_STORE_OPTIONS: dict[str, int] = {
    "write_buffer_size": 2 * 2**20,
    "max_write_buffer_number": 2,
}
"""RocksDB memtable sizes per table partition. Faust's defaults (64 MiB memtables,
up to three, per database) are made for a few big tables; the worker has about
130 small ones (tables × partitions). Their memory together is capped by the
shared budget of `pipeline.worker.table_store` (LEADFLOW_TABLE_MEMORY_MIB)."""


def json_text(type_: Any, empty: bool = False) -> Any:
    """`type_` stored as a JSON text inside the table's JSON value (how the routing and
    SLA tables always stored their models); with `empty`, "" is stored for None."""
    adapter: TypeAdapter[Any] = TypeAdapter(type_)

    def load(value: str) -> Any:
        return None if empty and value == "" else adapter.validate_json(value)

    def dump(value: Any) -> str:
        return "" if empty and value is None else adapter.dump_json(value).decode()

    return Annotated[type_ | None if empty else type_, PlainValidator(load), PlainSerializer(dump)]


def json_texts(type_: Any) -> Any:
    """A list of `type_`, each element stored as a JSON text (see `json_text`)."""
    return list[json_text(type_)]  # type: ignore[misc]


class TypedTable(Generic[T]):
    """A table of `T` by string key (write inside an agent, for the current message)."""

    def __init__(self, table: TableT, type_: Any, stored: Stored) -> None:
        self.table = table
        self.adapter: TypeAdapter[T] = TypeAdapter(type_)
        self.stored = stored

    def _key(self, key: str) -> Any:
        return key.encode() if self.stored == "bytes" else key

    def _load(self, value: Any) -> T:
        if self.stored == "bytes":
            return self.adapter.validate_json(value)
        return self.adapter.validate_python(value)

    def _dump(self, value: T) -> Any:
        if self.stored == "bytes":
            return self.adapter.dump_json(value)
        return self.adapter.dump_python(value, mode="json")

    def get(self, key: str) -> T | None:
        """The value under `key`; None if there is none."""
        raw = self.table.get(self._key(key))
        return None if raw is None else self._load(raw)

    def __getitem__(self, key: str) -> T:
        found = self.get(key)
        if found is None:
            raise KeyError(key)
        return found

    def __setitem__(self, key: str, value: T) -> None:
        self.table[self._key(key)] = self._dump(value)

    def __contains__(self, key: str) -> bool:
        return self._key(key) in self.table

    def __delitem__(self, key: str) -> None:
        del self.table[self._key(key)]

    def items(self) -> Iterator[tuple[str, T]]:
        """Every key and value this worker holds (its partitions): for views only."""
        for key, raw in self.table.items():
            yield (key.decode() if isinstance(key, bytes) else key), self._load(raw)


def local_db(table: Any, partition: int) -> Any | None:
    """The RocksDB database that holds one partition of a table on this worker (None:
    the memory store, or a partition this worker has not opened). Reading it
    directly is for what Faust's table API cannot do: read in key order and stop
    early (timers), search the worker's own files (erasure)."""
    dbs = getattr(table.data, "_dbs", None)
    return None if dbs is None else dbs.get(partition)


def local_items(table: Any, partition: int) -> Iterator[tuple[bytes, bytes]]:
    """One partition's entries in key order, lazily, without the offset record Faust
    keeps in each database; nothing where `local_db` is None."""
    db = local_db(table, partition)
    if db is None:
        return iter(())
    own = table.data.offset_key
    return ((k, v) for k, v in db.items() if k != own)
