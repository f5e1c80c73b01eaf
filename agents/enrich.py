"""Enrich: captured leads get their profile filled by the provider chain.

Internal history comes from the company's earlier inquiries as this pipeline
saw them, and from won deals (written by the qualify agent), in a sharded
table every worker reads in full (`pipeline.worker.services.CompanyBook`): each partition
writes only its own shard (`p<partition>|i|<domain>` for inquiries, `…|c|…`
for customers), and a read merges the shards.
"""

from __future__ import annotations

from pipeline.config.reference import customer_list
from pipeline.domain.enrich.enrichment import (
    CompanyRecord,
    EnrichmentChain,
    Histories,
    HistoryLookup,
    enrich_lead,
)
from pipeline.worker.services import Services
from pipeline.worker.stage import Stage
from schemas.lead import LeadCaptured, LeadEnriched


def register(stage: Stage, services: Services) -> None:
    """`enrich` on leads.captured; records each inquiry in the company history."""
    rules = stage.rules.enrichment
    companies = services.companies
    history: HistoryLookup = companies
    if rules.customers_file:
        history = Histories([history, customer_list(rules.customers_file)])
    chain = EnrichmentChain.build(rules, stage.reference, history)

    def enrich(lead: LeadCaptured) -> LeadEnriched:
        enriched = enrich_lead(lead, chain)
        company = enriched.payload.company
        if company is not None and company.domain:
            inquiry = CompanyRecord().with_inquiry(enriched.payload.inquiry_id)
            companies.record(companies.INQUIRY, company.domain, inquiry)
        return enriched

    stage.agent(stage.topics.captured, "enrich", enrich)
