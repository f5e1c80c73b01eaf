"""What agents share, built once by the composition root (`pipeline.bootstrap`) and
passed into every agent's `register`: an agent never imports another agent."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.domain.enrich.enrichment import CompanyHistory, CompanyRecord
from pipeline.worker.shared_state import ShardedTable
from pipeline.worker.sink import WarehouseSink


class CompanyBook:
    """The company history every worker reads in full: earlier inquiries (written by
    enrich) and won deals (written by qualify), one shard per partition
    (`p<partition>|i|<domain>` for inquiries, `…|c|…` for customers). It is the
    `HistoryLookup` of the internal-history provider."""

    INQUIRY, CUSTOMER = "i", "c"

    def __init__(self, table: ShardedTable[CompanyRecord]) -> None:
        self.table = table

    def record(self, kind: str, domain: str, update: CompanyRecord) -> None:
        """Merge `update` into this partition's shard of the company's record (in an agent)."""
        mine = self.table.mine(f"{kind}|{domain}") or CompanyRecord()
        merged = CompanyRecord.merge([mine, update])
        if merged != mine:
            self.table.write(f"{kind}|{domain}", merged)

    def company(self, domain: str, inquiry_id: str) -> CompanyHistory | None:
        records = [
            *self.table.shards(f"{self.INQUIRY}|{domain}"),
            *self.table.shards(f"{self.CUSTOMER}|{domain}"),
        ]
        return CompanyRecord.merge(records).before(inquiry_id) if records else None


@dataclass(frozen=True)
class Services:
    """Shared by several agents: the company history (enrich writes inquiries, qualify
    won deals) and the warehouse sink (report serves reads through it, privacy erases
    through it; None where another process owns the warehouse)."""

    companies: CompanyBook
    warehouse: WarehouseSink | None
