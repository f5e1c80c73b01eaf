"""Attribution maths, Gini, volume bands, CSV safety and report parameters: pure, no I/O."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.adapters.warehouse.clickhouse import load_migrations
from pipeline.config.access import presented_key
from pipeline.domain.report.attribution import (
    MODELS,
    Journey,
    TouchPoint,
    attribute,
    position_based,
    shares,
)
from pipeline.errors import BadRequest, ConfigError
from pipeline.reporting.analytics import gini, volume_anomalies
from pipeline.reporting.client import csv_text
from pipeline.reporting.reports import parse_params

T0 = datetime(2026, 11, 2, tzinfo=UTC)


def touch(days: float, channel: str, creates: bool = False) -> TouchPoint:
    return TouchPoint(T0 + timedelta(days=days), channel, f"{channel}-c", creates)


def test_a_single_touch_gets_everything_under_every_model() -> None:
    journey = Journey((touch(0, "web_form", True),), won_at=T0 + timedelta(days=3), revenue=900)
    assert shares(journey) == {model: [1.0] for model in MODELS}


def test_u_shaped_gives_forty_forty_and_shares_twenty() -> None:
    journey = Journey(
        (touch(0, "ads"), touch(1, "web", True), touch(2, "mail"), touch(3, "call")),
        won_at=T0 + timedelta(days=4),
        revenue=1000,
    )
    assert shares(journey)["u_shaped"] == [0.4, 0.4, 0.1, 0.1]


def test_w_shaped_uses_the_last_touch_before_the_opportunity() -> None:
    journey = Journey(
        (touch(0, "web", True), touch(1, "mail"), touch(2, "fair"), touch(5, "call")),
        won_at=T0 + timedelta(days=6),
        revenue=1000,
        opportunity_at=T0 + timedelta(days=3),
    )
    # first = creation (0.6 on web), opportunity touch = fair (0.3), rest 0.1 over mail and call
    assert shares(journey)["w_shaped"] == pytest.approx([0.6, 0.05, 0.3, 0.05])


def test_touches_after_the_win_do_not_count() -> None:
    journey = Journey(
        (touch(0, "web", True), touch(9, "late")), won_at=T0 + timedelta(days=2), revenue=10
    )
    assert [t.channel for t in journey.counted()] == ["web"]


def test_time_decay_halves_the_weight_per_half_life() -> None:
    journey = Journey(
        (touch(0, "a", True), touch(7, "b")), won_at=T0 + timedelta(days=7), revenue=300
    )
    assert shares(journey, half_life_days=7)["time_decay"] == pytest.approx([1 / 3, 2 / 3])


def test_position_based_scales_key_weights_when_there_is_no_middle() -> None:
    assert position_based(2, [(0, 0.4), (1, 0.4)], 0.2) == [0.5, 0.5]
    assert position_based(1, [(0, 0.3), (0, 0.3), (0, 0.3)], 0.1) == [1.0]


journeys = st.lists(
    st.tuples(st.floats(0, 60), st.sampled_from(["a", "b", "c"]), st.booleans()),
    min_size=1,
    max_size=8,
).map(
    lambda ts: Journey(
        tuple(touch(d, c, k) for d, c, k in ts),
        won_at=T0 + timedelta(days=30),
        revenue=1000.0,
        opportunity_at=T0 + timedelta(days=20),
    )
)


@given(journeys, st.floats(0.5, 60))
def test_every_model_hands_out_exactly_the_revenue(journey: Journey, half_life: float) -> None:
    for model, split in shares(journey, half_life).items():
        assert all(s >= 0 for s in split), model
        assert sum(split) == pytest.approx(1.0), model
    credited = attribute([journey], lambda t: t.channel, half_life)
    for model in MODELS:
        assert sum(row[model] for row in credited.values()) == pytest.approx(1000.0)


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


def test_the_key_comes_from_the_header_or_from_basic_authentication() -> None:
    assert presented_key({"X-Api-Key": "k1"}) == "k1"
    basic = base64.b64encode(b"anyone:k2").decode()
    assert presented_key({"Authorization": f"Basic {basic}"}) == "k2"
    assert presented_key({"Authorization": "Basic !!!"}) is None
    assert presented_key({"Authorization": "Bearer k3"}) is None
    assert presented_key({}) is None


def test_report_parameters_are_parsed_or_refused() -> None:
    params = parse_params({"by": "channel", "since": "2026-11-01", "grain": "week"})
    assert (params.by, params.since, params.grain) == ("channel", date(2026, 11, 1), "week")
    with pytest.raises(BadRequest, match="half_life_days"):
        parse_params({"half_life_days": "-1"})
    with pytest.raises(BadRequest, match="unknown parameter"):
        parse_params({"sql": "DROP"})


def test_migrations_are_numbered_files_applied_in_order(tmp_path: Path) -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == sorted(versions) and versions[:3] == [1, 2, 3]
    (tmp_path / "001_a.sql").write_text("SELECT 1\n;\n-- a comment\nSELECT 2\n;\n")
    [only] = load_migrations(tmp_path)
    assert only.statements() == ["SELECT 1", "SELECT 2"]
    (tmp_path / "001_b.sql").write_text("SELECT 3")
    with pytest.raises(ConfigError, match="exists twice"):
        load_migrations(tmp_path)
    (tmp_path / "001_b.sql").unlink()
    (tmp_path / "latest.sql").write_text("SELECT 3")
    with pytest.raises(ConfigError, match=r"NNN_what_it_does\.sql"):
        load_migrations(tmp_path)
