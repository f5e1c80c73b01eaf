"""Enrich: captured leads get their profile filled by the provider chain.

Internal history comes from the company's earlier inquiries as this pipeline
saw them, and from won deals (written by the qualify agent), in a sharded
table every worker reads in full (`agents.shared_state`): each partition
writes only its own shard (`p<partition>|i|<domain>` for inquiries, `…|c|…`
for customers), and a read merges the shards.
"""

from __future__ import annotations

from agents.shared_state import ShardedTable
from pipeline.app import Stage
from pipeline.enrichment import (
    CompanyHistory,
    CompanyRecord,
    CustomerList,
    EnrichmentChain,
    Histories,
    HistoryLookup,
    enrich_lead,
)
from schemas.lead import LeadCaptured, LeadEnriched

_histories: dict[int, ShardedTable] = {}


def company_history(stage: Stage) -> ShardedTable:
    """The app's one table of company records; enrich and qualify both write to it."""
    key = id(stage.app)
    if key not in _histories:
        _histories[key] = ShardedTable(stage, "company-history", stage.topics.captured.partitions)
    return _histories[key]


def record_company(stage: Stage, kind: str, domain: str, update: CompanyRecord) -> None:
    """Merge `update` into this partition's shard of the company's record (in an agent)."""
    table = company_history(stage)
    raw = table.mine(f"{kind}|{domain}")
    mine = CompanyRecord.model_validate_json(raw) if raw else CompanyRecord()
    merged = CompanyRecord.merge([mine, update])
    if merged != mine:
        table.write(f"{kind}|{domain}", merged.model_dump_json().encode())


class TableHistory:
    """HistoryLookup over every shard of a company's record (inquiries and won deals)."""

    def __init__(self, table: ShardedTable) -> None:
        self.table = table

    def company(self, domain: str, inquiry_id: str) -> CompanyHistory | None:
        shards = [*self.table.shards(f"i|{domain}"), *self.table.shards(f"c|{domain}")]
        records = [CompanyRecord.model_validate_json(raw) for raw in shards]
        return CompanyRecord.merge(records).before(inquiry_id) if records else None


def register(stage: Stage) -> None:
    rules = stage.rules.enrichment
    history: HistoryLookup = TableHistory(company_history(stage))
    if rules.customers_file:
        history = Histories([history, CustomerList.from_csv(rules.customers_file)])
    chain = EnrichmentChain.build(rules, stage.reference, history)

    def enrich(lead: LeadCaptured) -> LeadEnriched:
        enriched = enrich_lead(lead, chain)
        company = enriched.payload.company
        if company is not None and company.domain:
            inquiry = CompanyRecord().with_inquiry(enriched.payload.inquiry_id)
            record_company(stage, "i", company.domain, inquiry)
        return enriched

    stage.decoding_agent(stage.topics.captured, "enrich", enrich)
