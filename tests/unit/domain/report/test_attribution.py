"""Attribution maths: how each model shares a won deal among its touches (pure, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.domain.report.attribution import (
    MODELS,
    Journey,
    TouchPoint,
    attribute,
    position_based,
    shares,
)

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
