"""The fairness report on the real embedded engine, over a distribution the router
made exactly as configured: a rep with twice the weight and a daily cap, one away
on a day, one capped at a lead a day, and the manager for what nobody could take
(its own warehouse: the embedded engine holds one directory per process)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pipeline.reports import ReportInputs, parse_params, run_report
from pipeline.warehouse import EVENTS_TABLE, EmbeddedWarehouse, load_migrations, migrate
from tests.integration.report_scenario import Scenario
from tests.unit.test_fairness import TEAM, configured_distribution


def test_a_distribution_exactly_as_configured_shows_every_rep_at_one(tmp_path: Path) -> None:
    s = Scenario()
    for n, (at, owner) in enumerate(configured_distribution()):
        lead = f"fair-{n}"
        s.inquiry(lead, at - timedelta(minutes=5), "web_form", "spring")
        qualification = s.qualified(lead, at - timedelta(seconds=30), "sql", "sales")
        s.assigned(lead, at, "team", owner, qualification)
        if n == 0:  # a closed lead, and a contact that does not close one
            s.crm(lead, at + timedelta(minutes=2), "contacted")
            s.crm(lead, at + timedelta(hours=3), "won", amount_eur=100.0)
    w = EmbeddedWarehouse(tmp_path)
    try:
        migrate(w, load_migrations())
        w.insert(EVENTS_TABLE, s.rows())
        w.insert(EVENTS_TABLE, s.rows()[::2])  # a sink retry: repeats count once
        inputs = ReportInputs(routing=TEAM)
        rows = run_report(w, "fairness", parse_params({}), inputs)
        tuesday = run_report(w, "fairness", parse_params({"since": "2026-11-24"}), inputs)
    finally:
        w.close()
    assert {r["rep"]: r["load_vs_capacity"] for r in rows} == dict.fromkeys(
        ("ada", "ben", "cem", "mia"), 1.0
    )
    assert [(r["rep"], r["leads"], r["expected_leads"], r["load_vs_capacity"]) for r in rows] == [
        ("ada", 8, 8.0, 1.0),
        ("ben", 2, 2.0, 1.0),
        ("cem", 2, 2.0, 1.0),
        ("mia", 1, 1.0, 1.0),
    ]
    assert {r["queue_gini"] for r in rows} == {0.0}
    assert [(r["rep"], r["leads"], r["load_vs_capacity"]) for r in tuesday] == [
        ("ada", 4, 1.0),
        ("ben", 0, None),
        ("cem", 1, 1.0),
        ("mia", 1, 1.0),
    ]
