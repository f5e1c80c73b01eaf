"""The worker's RocksDB table store: one memory budget for every table partition.

The worker holds about 130 RocksDB databases (tables × partitions). Faust gives
each its own block cache and memtables, so resident memory grew with every lead
written until each database had filled its own (bench/scale.py: ~36 MiB per 1,000
leads held, towards a ceiling of about 1 GiB for RocksDB alone). Here all of them
share one LRU cache of `LEADFLOW_TABLE_MEMORY_MIB`: the blocks read, the index and
filter blocks of every file, and the memtables (a write buffer manager charges
them to the same cache and flushes the fullest when the writes' half is used). So
RocksDB's memory is capped by one figure, whatever the worker holds.

The store is Faust's own (`faust.stores.rocksdb.Store`, rocksdict driver) with
only its database options replaced; `table_store_url` picks it for `rocksdb://`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import rocksdict
from faust.stores import STORES
from faust.stores import rocksdb as faust_rocksdb

BUDGETED_SCHEME = "leadflow-rocksdb"
STORES.aliases[BUDGETED_SCHEME] = f"{__name__}:BudgetedStore"


@dataclass(frozen=True)
class MemoryBudget:
    """The process's RocksDB memory: one cache, and the memtables charged to it."""

    limit_bytes: int
    cache: rocksdict.Cache
    writes: rocksdict.WriteBufferManager

    @classmethod
    def of(cls, limit_bytes: int) -> MemoryBudget:
        cache = rocksdict.Cache(limit_bytes)
        writes = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
            limit_bytes // 2, False, cache
        )
        return cls(limit_bytes, cache, writes)

    def used_bytes(self) -> int:
        """What the cache holds now: blocks, index and filter blocks, memtables."""
        return int(self.cache.get_usage())


_budget: MemoryBudget | None = None


def use_memory_budget(limit_bytes: int) -> MemoryBudget:
    """Set the budget every database opened from now on shares (the composition root
    calls this once per worker; a second call with the same limit keeps the first)."""
    global _budget
    if _budget is None or _budget.limit_bytes != limit_bytes:
        _budget = MemoryBudget.of(limit_bytes)
    return _budget


def memory_budget() -> MemoryBudget | None:
    return _budget


def table_store_url(configured: str) -> str:
    """The store Faust is given: ours for RocksDB, the configured one otherwise."""
    if configured.startswith("rocksdb:"):
        return BUDGETED_SCHEME + configured[len("rocksdb") :]
    return configured


class BudgetedOptions(faust_rocksdb.RocksDBOptions):
    """Faust's rocksdict options, with the shared cache and write buffer manager."""

    def as_options(self) -> rocksdict.Options:
        budget = memory_budget()
        if budget is None:
            raise RuntimeError("use_memory_budget() before a table opens (faust_app does)")
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        if self.max_open_files is not None:
            options.set_max_open_files(self.max_open_files)
        options.set_write_buffer_size(self.write_buffer_size)
        options.set_target_file_size_base(self.target_file_size_base)
        options.set_max_write_buffer_number(self.max_write_buffer_number)
        options.set_write_buffer_manager(budget.writes)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, block_based=True)
        table.set_block_cache(budget.cache)
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        options.set_block_based_table_factory(table)
        return options


class BudgetedStore(faust_rocksdb.Store):
    """Faust's RocksDB store, its databases opened with `BudgetedOptions`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.use_rocksdict:  # the python-rocksdb driver has no shared cache here
            return
        self.rocksdb_options = BudgetedOptions(**(self.options or {}), use_rocksdict=True)
