"""Throughput of the pure capture, identify, enrich and qualify steps (no broker).

    .venv/bin/python -m bench.enrich_qualify [--leads 5000]

Prints figures; asserts nothing (timings depend on the machine).
"""

from __future__ import annotations

import argparse
import time

from pipeline.config.reference import postal_table, reference_data
from pipeline.config.rules import load_rules
from pipeline.config.settings import NAME_MATCH, SHIPPED_RULES
from pipeline.dev.traffic import demo_inquiries
from pipeline.domain.capture.inquiry import capture_inquiry
from pipeline.domain.capture.plausibility import Plausibility
from pipeline.domain.enrich.enrichment import (
    CustomerList,
    EnrichmentChain,
    enrich_lead,
)
from pipeline.domain.identify.identity import IdentityBook
from pipeline.domain.messages import Position
from pipeline.domain.qualify.requalify import LeadState, from_enriched, requalify
from schemas.envelope import EventBase, utcnow
from schemas.lead import InquiryAccepted, LeadCaptured


def identified(book: IdentityBook, accepted: InquiryAccepted) -> LeadCaptured:
    """The inquiry's whole walk over its identity keys, on one book (as on one partition)."""
    queue: list[EventBase] = [accepted]
    while queue:
        step = queue.pop(0)
        if isinstance(step, LeadCaptured):
            return step
        if isinstance(step, InquiryAccepted):
            queue += book.identify(step)
    raise AssertionError("the walk ended without a lead")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=5000)
    args = parser.parse_args()
    started = time.perf_counter()
    reference = reference_data()
    rules = load_rules(SHIPPED_RULES)
    chain = EnrichmentChain.build(rules.enrichment, reference, CustomerList())
    print(
        f"reference data loaded in {time.perf_counter() - started:.3f} s "
        f"({len(reference.directory)} companies)"
    )
    now = utcnow()
    policy = Plausibility("DE", postal_table())
    inquiries = [
        (m.value, Position("bench", 0, n))
        for n, m in enumerate(
            demo_inquiries(args.leads, seed=3, invalid_share=0, duplicate_share=0)
        )
    ]
    t0 = time.perf_counter()
    captured = [capture_inquiry(raw, at, now, policy, rules.exclusions) for raw, at in inquiries]
    accepted = [c for c in captured if isinstance(c, InquiryAccepted)]
    t1 = time.perf_counter()
    book = IdentityBook(leads={}, waiting={}, name_match=NAME_MATCH)
    leads = [identified(book, a) for a in accepted]
    t2 = time.perf_counter()
    enriched = [enrich_lead(lead, chain) for lead in leads]
    t3 = time.perf_counter()
    for lead in enriched:
        state, _ = requalify(lead.lead_id, LeadState(), from_enriched(lead), rules.scoring, now)
        state.model_dump_json()  # what the agent stores per lead
    t4 = time.perf_counter()
    print(f"capture:  {len(inquiries)} inquiries, {len(accepted)} accepted, {t1 - t0:.3f} s = "
          f"{len(inquiries) / (t1 - t0):,.0f}/s")  # fmt: skip
    n = len(leads)
    print(f"identify: {n} leads in {t2 - t1:.3f} s = {n / (t2 - t1):,.0f} leads/s (whole walk)")
    print(f"enrich:   {n} leads in {t3 - t2:.3f} s = {n / (t3 - t2):,.0f} leads/s")
    print(
        f"qualify:  {n} leads in {t4 - t3:.3f} s = {n / (t4 - t3):,.0f} leads/s (incl. state JSON)"
    )
    hits = sum(1 for e in enriched if e.payload.company and e.payload.company.industry)
    print(f"directory hits: {hits}/{n}")


if __name__ == "__main__":
    main()
