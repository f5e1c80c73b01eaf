"""The anomaly report on a channel with a steady history and one unusual day
(its own warehouse: the embedded engine holds one directory per process)."""

from __future__ import annotations

from pathlib import Path

from pipeline.adapters.warehouse.clickhouse import (
    EVENTS_TABLE,
    EmbeddedWarehouse,
    load_migrations,
    migrate,
)
from pipeline.reporting.reports import ReportInputs, parse_params, run_report
from tests.support.scenario import Scenario, day


def test_anomalies_flag_a_day_outside_the_channel_band(tmp_path: Path) -> None:
    s = Scenario()
    for n in range(10):  # two phone leads a day, then twelve on day 10
        for k in range(12 if n == 9 else 2):
            s.inquiry(f"P{n}-{k}", day(n, minutes=k), "phone", "hotline")
    w = EmbeddedWarehouse(tmp_path)
    try:
        migrate(w, load_migrations())
        w.insert(EVENTS_TABLE, s.rows())
        rows = run_report(w, "anomalies", parse_params({}), ReportInputs())
    finally:
        w.close()
    assert rows == [
        {
            "day": "2026-11-11",
            "channel": "phone",
            "leads": 12,
            "expected": 2.0,
            "low": 0.0,
            "high": 5.0,
            "direction": "spike",
        }
    ]
