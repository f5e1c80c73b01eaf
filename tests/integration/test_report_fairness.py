"""The fairness report on the real embedded engine, over distributions exactly as
configured: a rep with twice the weight and a daily cap, one away on a day, one
capped at a lead a day, the manager for what nobody could take; and a rep who may
hold one open lead, freed by a won deal but not by a contact (its own warehouse:
the embedded engine holds one directory per process)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from pipeline.adapters.warehouse.clickhouse import (
    EVENTS_TABLE,
    EmbeddedWarehouse,
    load_migrations,
    migrate,
)
from pipeline.domain.distribute.routing import RoutingRules
from pipeline.reporting.reports import ReportInputs, parse_params, run_report
from tests.support.fairness import MONDAY, TEAM, configured_distribution
from tests.support.routing import rep
from tests.support.scenario import Scenario

ROUTING = RoutingRules.model_validate(
    {
        "default_queue": "team",
        "queues": {
            "team": TEAM.queues["team"].model_dump(mode="json"),
            "single": {"manager": rep("boss"), "reps": [rep("solo", max_open=1)]},
        },
    }
)


def hand_out(s: Scenario, lead: str, queue: str, at: datetime, owner: str) -> None:
    s.inquiry(lead, at - timedelta(minutes=5), "web_form", "spring")
    qualification = s.qualified(lead, at - timedelta(seconds=30), "sql", "sales")
    s.assigned(lead, at, queue, owner, qualification)


def test_a_distribution_exactly_as_configured_shows_every_rep_at_one(tmp_path: Path) -> None:
    s = Scenario()
    for n, (at, owner) in enumerate(configured_distribution()):
        hand_out(s, f"fair-{n}", "team", at, owner)
    # Solo's first lead is open (contacted) when the second comes: the manager's;
    # it is won before the third, which is Solo's again.
    hand_out(s, "single-1", "single", MONDAY, "solo")
    s.crm("single-1", MONDAY + timedelta(minutes=30), "contacted")
    hand_out(s, "single-2", "single", MONDAY + timedelta(hours=1), "boss")
    s.crm("single-1", MONDAY + timedelta(hours=2), "won", amount_eur=100.0)
    hand_out(s, "single-3", "single", MONDAY + timedelta(hours=3), "solo")
    w = EmbeddedWarehouse(tmp_path)
    try:
        migrate(w, load_migrations())
        w.insert(EVENTS_TABLE, s.rows())
        w.insert(EVENTS_TABLE, s.rows()[::2])  # a sink retry: repeats count once
        inputs = ReportInputs(routing=ROUTING)
        rows = run_report(w, "fairness", parse_params({}), inputs)
        tuesday = run_report(w, "fairness", parse_params({"since": "2026-11-24"}), inputs)
    finally:
        w.close()
    assert {r["rep"]: r["load_vs_capacity"] for r in rows} == dict.fromkeys(
        ("ada", "ben", "cem", "mia", "boss", "solo"), 1.0
    )
    figures = {(r["queue"], r["rep"]): (r["leads"], r["expected_leads"]) for r in rows}
    assert figures == {
        ("single", "boss"): (1, 1.0),
        ("single", "solo"): (2, 2.0),
        ("team", "ada"): (8, 8.0),
        ("team", "ben"): (2, 2.0),
        ("team", "cem"): (2, 2.0),
        ("team", "mia"): (1, 1.0),
    }
    assert {r["queue_gini"] for r in rows} == {0.0}
    since_tuesday = {r["rep"]: (r["leads"], r["load_vs_capacity"]) for r in tuesday}
    assert since_tuesday == {
        "ada": (4, 1.0),
        "ben": (0, None),  # away all Tuesday: nothing expected of him
        "cem": (1, 1.0),
        "mia": (1, 1.0),
        "solo": (0, None),  # the single queue had Monday leads only (and its manager no row)
    }
