"""Versioned warehouse migrations on the real embedded ClickHouse engine."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.adapters.warehouse.clickhouse import (
    EVENTS_TABLE,
    MIGRATIONS_DIR,
    MIGRATIONS_TABLE,
    EmbeddedWarehouse,
    load_migrations,
    migrate,
    open_warehouse,
)
from pipeline.config.settings import SHIPPED_RULES, load_settings
from pipeline.errors import ConfigError
from tests.support.scenario import scenario


def test_migrations_apply_once_in_order_and_are_recorded(tmp_path: Path) -> None:
    w = EmbeddedWarehouse(tmp_path)
    try:
        applied = migrate(w, load_migrations())
        assert [m.version for m in applied] == [m.version for m in load_migrations()]
        assert migrate(w, load_migrations()) == []
        rows = w.query(f"SELECT version, name FROM {MIGRATIONS_TABLE} FINAL ORDER BY version")
        assert [(r["version"], r["name"]) for r in rows][:3] == [
            (1, "lead_events"),
            (2, "lead_state"),
            (3, "campaign_costs"),
        ]
    finally:
        w.close()


def test_an_applied_migration_that_changed_is_refused(tmp_path: Path) -> None:
    files = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, files)
    w = EmbeddedWarehouse(tmp_path / "warehouse")
    try:
        migrate(w, load_migrations(files))
        edited = files / "003_campaign_costs.sql"
        edited.write_text(edited.read_text().replace("Float64", "Float32"))
        with pytest.raises(ConfigError, match=r"003_campaign_costs\.sql changed after it was"):
            migrate(w, load_migrations(files))
    finally:
        w.close()


def test_events_stored_before_the_lead_state_existed_are_folded_in(tmp_path: Path) -> None:
    """A warehouse from before migration 002: its events reach the lead state too."""
    migrations = load_migrations()
    w = EmbeddedWarehouse(tmp_path)
    try:
        migrate(w, migrations[:1])
        w.insert(EVENTS_TABLE, scenario().rows())
        migrate(w, migrations)
        [row] = w.query(
            "SELECT count() AS leads, countIf(won_at IS NOT NULL) AS won FROM leadflow.leads"
        )
        assert row == {"leads": 6, "won": 3}
        [events] = w.query(f"SELECT count() AS n FROM {EVENTS_TABLE} FINAL")
        assert events["n"] == len(scenario().rows())
    finally:
        w.close()


def test_costs_come_from_the_rules_directory_and_replace_the_table(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(SHIPPED_RULES, rules)
    settings = load_settings(state_dir=tmp_path / "state", rules_dir=rules)
    (rules / "costs.yaml").write_text(
        "costs:\n  - {channel: webinar, campaign: w1, month: 2026-10, amount_eur: 250}\n"
    )
    w = open_warehouse(settings)
    try:
        rows = w.query(
            "SELECT channel, campaign, toString(month) AS month, amount_eur "
            "FROM leadflow.campaign_costs"
        )
        assert rows == [
            {"channel": "webinar", "campaign": "w1", "month": "2026-10-01", "amount_eur": 250}
        ]
    finally:
        w.close()
    (rules / "costs.yaml").write_text(
        "costs:\n  - {channel: webinar, campaign: w1, month: October, amount_eur: 250}\n"
    )
    with pytest.raises(ConfigError, match=r"(?s)costs.yaml.*month.*YYYY-MM"):
        open_warehouse(settings)
