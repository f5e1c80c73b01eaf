"""LEADFLOW_WAREHOUSE_RAW_RETENTION_DAYS on the real embedded ClickHouse engine: the
raw event log drops what is older, the reports keep their figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.adapters.warehouse.clickhouse import (
    EVENTS_TABLE,
    EmbeddedWarehouse,
    load_migrations,
    migrate,
)
from pipeline.adapters.warehouse.retention import apply_retention, current_ttl
from pipeline.reporting.events import funnel_by_channel
from pipeline.reporting.reports import parse_params, run_report
from tests.integration.test_report_facts import rows_that_bite, store
from tests.support.scenario import INPUTS, TOPICS

pytestmark = pytest.mark.integration


def test_reports_keep_their_figures_when_the_raw_events_expire(tmp_path: Path) -> None:
    """Events of 2020 under a 30-day retention: the raw log drops them, the lead state
    and the report tables keep what the reports need."""
    old = [
        {
            **r,
            "occurred_at": "2020" + r["occurred_at"][4:],
            "emitted_at": "2020" + r["emitted_at"][4:],
        }
        for r in rows_that_bite()
    ]
    w = EmbeddedWarehouse(tmp_path)
    try:
        migrate(w, load_migrations())
        store(w, old)
        names = ("sources", "funnel", "money", "attribution", "reasons", "performance", "targets")
        before = {n: run_report(w, n, parse_params({}), INPUTS) for n in names}
        pipeline = funnel_by_channel(w, TOPICS.inquiries.name)
        assert before["attribution"] and before["reasons"] and pipeline

        assert apply_retention(w, EVENTS_TABLE, 30)
        assert current_ttl(w, EVENTS_TABLE) == "toDateTime(occurred_at) + toIntervalDay(30)"
        assert not apply_retention(w, EVENTS_TABLE, 30)  # set once, not on every open
        w.execute(f"OPTIMIZE TABLE {EVENTS_TABLE} FINAL")

        assert w.query(f"SELECT count() AS n FROM {EVENTS_TABLE}") == [{"n": 0}]
        assert {n: run_report(w, n, parse_params({}), INPUTS) for n in names} == before
        assert funnel_by_channel(w, TOPICS.inquiries.name) == pipeline
        assert apply_retention(w, EVENTS_TABLE, None) and current_ttl(w, EVENTS_TABLE) == ""
    finally:
        w.close()
