"""Enrich: captured leads get their profile filled by the provider chain."""

from __future__ import annotations

from pipeline.app import Stage
from pipeline.enrichment import CustomerList, EnrichmentChain, enrich_lead


def register(stage: Stage) -> None:
    rules = stage.rules.enrichment
    customers = (
        CustomerList.from_csv(rules.customers_file) if rules.customers_file else CustomerList()
    )
    chain = EnrichmentChain.build(rules, stage.reference, customers)
    stage.decoding_agent(stage.topics.captured, "enrich", lambda lead: enrich_lead(lead, chain))
