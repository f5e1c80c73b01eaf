"""Enrich: captured leads get their profile filled by the provider chain.

Internal history comes from the company's earlier inquiries as this pipeline
saw them, and from won deals (written by the qualify agent), in a global table
every worker reads in full. Each partition writes only keys of its own
(`p<partition>|i|<domain>` for inquiries, `…|c|…` for customers), so no two
writers share a key and a read merges the shards.
"""

from __future__ import annotations

from typing import cast

import faust
from faust import current_event

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

HISTORY_TABLE = "company-history"


def company_history(stage: Stage) -> faust.types.TableT:
    """The one global table of company records (created by whichever agent asks first)."""
    if HISTORY_TABLE not in stage.app.tables:
        stage.app.GlobalTable(
            HISTORY_TABLE,
            partitions=stage.topics.captured.partitions,
            key_type=bytes,
            value_type=bytes,
        )
    return cast(faust.types.TableT, stage.app.tables[HISTORY_TABLE])


def record_company(stage: Stage, kind: str, domain: str, update: CompanyRecord) -> None:
    """Merge `update` into this partition's shard of the company's record (in an agent)."""
    table = company_history(stage)
    partition = current_event().message.partition  # type: ignore[union-attr]
    key = f"p{partition}|{kind}|{domain}".encode()
    raw = table.get(key)
    mine = CompanyRecord.model_validate_json(raw) if raw else CompanyRecord()
    merged = CompanyRecord.merge([mine, update])
    if merged != mine:
        table[key] = merged.model_dump_json().encode()


class TableHistory:
    """HistoryLookup over the global table: all shards of a company merged."""

    def __init__(self, table: faust.types.TableT, partitions: int) -> None:
        self.table, self.partitions = table, partitions

    def company(self, domain: str, inquiry_id: str) -> CompanyHistory | None:
        keys = (f"p{p}|{kind}|{domain}".encode() for p in range(self.partitions) for kind in "ic")
        records = [
            CompanyRecord.model_validate_json(raw) for k in keys if (raw := self.table.get(k))
        ]
        return CompanyRecord.merge(records).before(inquiry_id) if records else None


def register(stage: Stage) -> None:
    rules = stage.rules.enrichment
    history: HistoryLookup = TableHistory(company_history(stage), stage.topics.captured.partitions)
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
