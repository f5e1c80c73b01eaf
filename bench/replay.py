"""What-if replay: `leadflow replay` over 100,000 leads' history (chdb).

    .venv/bin/python -m bench.replay [--leads 100000]

The history is the pipeline's own: a few hundred demo inquiries captured,
identified and enriched by the domain steps (`bench.enrich_qualify`), cloned with
fresh ids over 90 days until there are `--leads` leads; a third get an activity a
few days later (page view, webinar sign-up, price request: the fast lane), every
tenth a CRM outcome (won, lost, returned). The decisions of the shipped rules over
those inputs (`pipeline.domain.replay.simulate`) are the record, stored as the sink
stores events (`event_row`) in an embedded warehouse of its own. Then timed, as the
command runs it: reading the record (`read_record`), and the replay of the live
rules and of a candidate (MQL threshold 12 → 20, the `dach-by-country` rule to the
international queue) with the comparison (`run_replay`).

Prints figures; asserts nothing (the issue's target is ≤ 60 s for 100,000 leads).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import loadavg
from bench.enrich_qualify import identified
from pipeline.adapters.warehouse.clickhouse import EVENTS_TABLE, open_warehouse
from pipeline.config.reference import postal_table, reference_data
from pipeline.config.rules import load_rules
from pipeline.config.settings import NAME_MATCH, SHIPPED_RULES, SHIPPED_TOPICS, load_settings
from pipeline.config.topics import load_topics
from pipeline.dev.traffic import demo_inquiries
from pipeline.domain.capture.inquiry import capture_inquiry
from pipeline.domain.capture.plausibility import Plausibility
from pipeline.domain.distribute.routing import RoutingRule
from pipeline.domain.enrich.enrichment import CustomerList, EnrichmentChain, enrich_lead
from pipeline.domain.identify.identity import IdentityBook
from pipeline.domain.messages import Position
from pipeline.domain.qualify.scoring import Thresholds
from pipeline.domain.replay import Input, RuleSet, simulate
from pipeline.reporting.events import event_row
from pipeline.reporting.replay import read_record, run_replay
from schemas.envelope import derive_id
from schemas.inputs import Activity, ActivityType, CrmOutcome, Outcome
from schemas.lead import ActivityRecorded, InquiryAccepted, LeadEnriched, OutcomeRecorded
from schemas.lead import RecordedOutcome as Applied

START = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
SPAN = timedelta(days=90)
TEMPLATES = 400
INSERT_BATCH = 20_000


def templates(count: int = TEMPLATES) -> list[LeadEnriched]:
    """Enriched leads from demo inquiries, through the domain's own steps."""
    rules = load_rules(SHIPPED_RULES)
    chain = EnrichmentChain.build(rules.enrichment, reference_data(), CustomerList())
    policy = Plausibility("DE", postal_table())
    book = IdentityBook(leads={}, waiting={}, name_match=NAME_MATCH)
    found: dict[uuid.UUID, LeadEnriched] = {}
    messages = demo_inquiries(count, seed=11, invalid_share=0, duplicate_share=0)
    for n, message in enumerate(messages):
        at = Position("bench", 0, n)
        accepted = capture_inquiry(message.value, at, START, policy, rules.exclusions)
        if isinstance(accepted, InquiryAccepted):
            lead = enrich_lead(identified(book, accepted), chain)
            found.setdefault(lead.lead_id, lead)
    return list(found.values())


def history(leads: int, seed: int = 5) -> list[Input]:
    """`leads` leads' inputs: an inquiry each, some activities and CRM outcomes."""
    rng = random.Random(seed)
    models = templates()
    inputs: list[Input] = []
    for n in range(leads):
        model = models[n % len(models)]
        lead_id = uuid.UUID(int=rng.getrandbits(128))
        at = START + SPAN * (n / leads)
        profile = model.payload.model_copy(update={"received_at": at, "inquiry_id": f"b{n}"})
        inputs.append(
            model.model_copy(
                update={
                    "event_id": derive_id("bench-enriched", n),
                    "lead_id": lead_id,
                    "trace_id": derive_id("bench-trace", n),
                    "occurred_at": at,
                    "emitted_at": at,
                    "payload": profile,
                }
            )
        )
        if n % 3 == 0:
            kind: ActivityType = rng.choice(
                ["page_view", "email_clicked", "webinar_registered", "price_request"]
            )
            when = at + timedelta(days=rng.uniform(1, 10))
            activity = Activity(
                activity_id=f"a{n}", occurred_at=when, activity_type=kind, lead_id=lead_id
            )
            inputs.append(
                ActivityRecorded(**_envelope("activity", n, lead_id, when), payload=activity)
            )
        if n % 10 == 0:
            result: Outcome = rng.choice(["won", "lost", "returned"])
            when = at + timedelta(days=rng.uniform(2, 30))
            outcome = CrmOutcome(
                outcome_id=f"o{n}",
                lead_id=lead_id,
                occurred_at=when,
                outcome=result,
                amount_eur=20_000.0 if result == "won" else None,
            )
            applied = Applied(outcome=outcome)
            inputs.append(
                OutcomeRecorded(**_envelope("outcome", n, lead_id, when), payload=applied)
            )
    return inputs


def _envelope(kind: str, n: int, lead_id: uuid.UUID, when: datetime) -> dict[str, Any]:
    return {
        "event_id": derive_id(f"bench-{kind}", n),
        "lead_id": lead_id,
        "occurred_at": when,
        "emitted_at": when,
    }


def candidate(live: RuleSet) -> RuleSet:
    """MQL from 20 points instead of 12, and German-speaking countries to international."""
    routing = live.routing.model_copy(
        update={
            "rules": [
                RoutingRule(name=r.name, queue="international", when=r.when)
                if r.name == "dach-by-country"
                else r
                for r in live.routing.rules
            ]
        }
    )
    thresholds = Thresholds(mql=20, sql=live.scoring.thresholds.sql)
    scoring = live.scoring.model_copy(update={"thresholds": thresholds})
    return replace(live, scoring=scoring, routing=routing)


def run(leads: int = 100_000) -> dict[str, Any]:
    rules = load_rules(SHIPPED_RULES)
    live = RuleSet(rules.scoring, rules.nurture, rules.routing)
    started = time.perf_counter()
    inputs = history(leads)
    emitted = simulate(inputs, live)
    topics = {spec.model.model_fields["event_type"].default: spec for spec in _specs()}
    rows = [
        event_row(topics[e.event_type], e.model_dump_json().encode(), Position("bench", 0, n))
        for n, e in enumerate([*inputs, *emitted])
    ]
    generated = time.perf_counter() - started
    print(f"generated {leads} leads, {len(rows)} events in {generated:.1f} s", flush=True)
    with tempfile.TemporaryDirectory(prefix="leadflow-bench-replay-") as work:
        settings = load_settings(warehouse_dir=Path(work) / "warehouse", clickhouse_url=None)
        warehouse = open_warehouse(settings)
        try:
            for n in range(0, len(rows), INSERT_BATCH):
                warehouse.insert(EVENTS_TABLE, rows[n : n + INSERT_BATCH])
            t0 = time.perf_counter()
            record = read_record(warehouse.query)
            t1 = time.perf_counter()
            report = run_replay(record, live, candidate(live))
            t2 = time.perf_counter()
        finally:
            warehouse.close()
    summary = {row["measure"]: row["value"] for row in report["summary"]}
    result = {
        "leads": leads,
        "events": len(rows),
        "read_s": round(t1 - t0, 1),
        "replay_and_compare_s": round(t2 - t1, 1),
        "total_s": round(t2 - t0, 1),
        "not_reproduced": summary["not reproduced (replay defects)"],
        "leads_changed": summary["leads treated differently"],
        "loadavg": loadavg(),
    }
    print(f"replay: {result}", flush=True)
    return result


def _specs() -> list[Any]:
    registry = load_topics(SHIPPED_TOPICS)
    return [
        spec for spec in registry.all() if "event_type" in getattr(spec.model, "model_fields", {})
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    args = parser.parse_args()
    run(args.leads)


if __name__ == "__main__":
    main()
