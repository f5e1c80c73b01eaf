"""Throughput of the pure enrich and qualify steps (no broker): leads per second.

    .venv/bin/python bench/enrich_qualify.py [--leads 5000]

Prints figures; asserts nothing (timings depend on the machine).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.capture import capture_inquiry  # noqa: E402
from pipeline.enrichment import (  # noqa: E402
    CustomerList,
    EnrichmentChain,
    ReferenceData,
    enrich_lead,
)
from pipeline.messages import Position  # noqa: E402
from pipeline.requalify import LeadState, from_enriched, requalify  # noqa: E402
from pipeline.rules import load_rules  # noqa: E402
from pipeline.traffic import demo_inquiries  # noqa: E402
from schemas.envelope import utcnow  # noqa: E402
from schemas.lead import LeadCaptured  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=5000)
    args = parser.parse_args()
    started = time.perf_counter()
    reference = ReferenceData.shipped()
    rules = load_rules(ROOT / "deploy" / "rules")
    chain = EnrichmentChain.build(rules.enrichment, reference, CustomerList())
    print(
        f"reference data loaded in {time.perf_counter() - started:.3f} s "
        f"({len(reference.directory)} companies)"
    )
    now = utcnow()
    leads = [
        lead
        for n, m in enumerate(
            demo_inquiries(args.leads, seed=3, invalid_share=0, duplicate_share=0)
        )
        if isinstance(lead := capture_inquiry(m.value, Position("bench", 0, n), now), LeadCaptured)
    ]
    t0 = time.perf_counter()
    enriched = [enrich_lead(lead, chain) for lead in leads]
    t1 = time.perf_counter()
    for lead in enriched:
        state, _ = requalify(lead.lead_id, LeadState(), from_enriched(lead), rules.scoring, now)
        state.model_dump_json()  # what the agent stores per lead
    t2 = time.perf_counter()
    n = len(leads)
    print(f"enrich:  {n} leads in {t1 - t0:.3f} s = {n / (t1 - t0):,.0f} leads/s")
    print(
        f"qualify: {n} leads in {t2 - t1:.3f} s = {n / (t2 - t1):,.0f} leads/s (incl. state JSON)"
    )
    hits = sum(1 for e in enriched if e.payload.company and e.payload.company.industry)
    print(f"directory hits: {hits}/{n}")


if __name__ == "__main__":
    main()
