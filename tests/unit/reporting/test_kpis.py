"""Gini, volume bands, CSV safety and report parameters: the read side's pure
parts, no I/O."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from pipeline.errors import BadRequest
from pipeline.reporting.analytics import gini, volume_anomalies
from pipeline.reporting.client import csv_text
from pipeline.reporting.reports import parse_params


def test_gini_is_zero_for_equal_loads_and_grows_with_imbalance() -> None:
    assert gini([3, 3, 3]) == 0.0
    assert gini([1, 2]) == pytest.approx(1 / 6)
    assert gini([0, 0, 0, 10]) == pytest.approx(0.75)
    assert gini([]) == 0.0


def test_a_spike_after_a_steady_week_is_an_anomaly_and_a_steady_week_is_not() -> None:
    days = {date(2026, 11, 1) + timedelta(days=n): 5 for n in range(10)}
    assert volume_anomalies({"web_form": days}) == []
    days[date(2026, 11, 11)] = 0  # nothing at all after 10 days of 5 a day
    [drop] = volume_anomalies({"web_form": days})
    assert (drop.day, drop.leads, drop.direction, drop.low, drop.high) == (
        date(2026, 11, 11),
        0,
        "drop",
        2.0,
        8.0,
    )


def test_days_without_leads_count_as_zero_in_the_band() -> None:
    counts = {date(2026, 11, 1): 4, date(2026, 11, 9): 8}  # 7 silent days between
    [spike] = volume_anomalies({"fair": counts})
    # history 4, 0 × 7: mean 0.5, spread √1.75 → band up to 4.47; a plain 4 would be inside
    assert (spike.day, spike.expected, round(spike.high, 2)) == (date(2026, 11, 9), 0.5, 4.47)


def test_csv_cells_that_would_run_as_formulas_get_an_apostrophe() -> None:
    rows = [
        {"campaign": '=HYPERLINK("http://x")', "reason": "+1 call", "n": -3, "roi": None},
        {"campaign": "@SUM(A1)", "reason": "-budget", "n": 2, "roi": 0.5},
        {"campaign": "spring", "reason": "\tcmd", "n": 0, "roi": -1.0},
    ]
    assert csv_text(rows).splitlines() == [
        "campaign,reason,n,roi",
        '"\'=HYPERLINK(""http://x"")",\'+1 call,-3,',
        "'@SUM(A1),'-budget,2,0.5",
        "spring,'\tcmd,0,-1.0",
    ]


def test_report_parameters_are_parsed_or_refused() -> None:
    params = parse_params({"by": "channel", "since": "2026-11-01", "grain": "week"})
    assert (params.by, params.since, params.grain) == ("channel", date(2026, 11, 1), "week")
    with pytest.raises(BadRequest, match="half_life_days"):
        parse_params({"half_life_days": "-1"})
    with pytest.raises(BadRequest, match="unknown parameter"):
        parse_params({"sql": "DROP"})
