"""Naive Bayes over won/lost outcomes: smoothing, live updates, no override by default."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.config.settings import SHIPPED_RULES
from pipeline.config.yaml_model import load_yaml_model
from pipeline.domain.qualify.predictive import Predictive, WinCounts
from pipeline.domain.qualify.scoring import ScoringModel, Signals, lead_features, qualify
from tests.support.factories import NOW, enriched

MODEL = load_yaml_model(SHIPPED_RULES / "scoring.yaml", ScoringModel)
IT = enriched(answers={"industry": "IT", "purchase_timeframe_months": 12}).payload
RETAIL = enriched(answers={"industry": "Retail", "purchase_timeframe_months": 12}).payload
SETTINGS = Predictive(min_outcomes=10)


def trained(it_won: int, it_lost: int, retail_won: int, retail_lost: int) -> WinCounts:
    counts = WinCounts()
    for profile, won, n in (
        (IT, True, it_won),
        (IT, False, it_lost),
        (RETAIL, True, retail_won),
        (RETAIL, False, retail_lost),
    ):
        for _ in range(n):
            counts = counts.learn(lead_features(profile, MODEL), won)
    return counts


def test_features_are_categories_and_rating_rows() -> None:
    lead = enriched(answers={"industry": "IT", "order_volume_eur": 300000.0}).payload
    found = lead_features(lead, MODEL)
    assert found["industry"] == "it"
    assert found["order_volume"] == "rating 3"
    assert found["authority"] == "unknown"


def test_no_probability_until_enough_deals_closed() -> None:
    assert trained(3, 1, 1, 3).win_probability(lead_features(IT, MODEL), SETTINGS) is None
    assert WinCounts().win_probability(lead_features(IT, MODEL), SETTINGS) is None


def test_the_value_that_wins_more_gets_the_higher_probability() -> None:
    counts = trained(it_won=8, it_lost=2, retail_won=2, retail_lost=8)
    p_it = counts.win_probability(lead_features(IT, MODEL), SETTINGS)
    p_retail = counts.win_probability(lead_features(RETAIL, MODEL), SETTINGS)
    assert p_it is not None and p_retail is not None
    assert p_it > 0.5 > p_retail
    # even prior; only the industry differs: ((8+1)/(10+2)) / ((2+1)/(10+2)) = 3 → 3/4
    assert abs(p_it - 0.75) < 1e-3 and abs(p_retail - 0.25) < 1e-3


def test_smoothing_keeps_an_unseen_value_near_the_base_rate() -> None:
    counts = trained(it_won=5, it_lost=5, retail_won=5, retail_lost=5)
    other = enriched(answers={"industry": "Mining", "purchase_timeframe_months": 12}).payload
    p = counts.win_probability(lead_features(other, MODEL), SETTINGS)
    assert p is not None and abs(p - 0.5) < 1e-3


def test_partition_counts_add_up() -> None:
    a, b = trained(2, 1, 0, 3), trained(4, 0, 1, 1)
    total = WinCounts.total([a, b])
    assert (total.won, total.lost) == (7, 5)
    assert total.values["industry"]["it"] == (6, 1)


def test_the_probability_is_reported_but_does_not_override_the_rules() -> None:
    result = qualify(IT, MODEL, Signals(win_probability=0.97), NOW)
    assert result.win_probability == 0.97 and result.decision == "nurture"


def test_the_yaml_can_let_a_high_probability_send_a_lead_to_sales() -> None:
    promoting = MODEL.model_copy(update={"predictive": Predictive(sales_above=0.8)})
    result = qualify(IT, promoting, Signals(win_probability=0.85), NOW)
    assert (result.decision, result.reason) == ("sales", "predicted win probability 85%")
    assert qualify(IT, promoting, Signals(win_probability=0.5), NOW).decision == "nurture"


@given(won=st.integers(0, 30), lost=st.integers(0, 30), more=st.integers(1, 10))
def test_more_wins_for_a_value_never_lower_its_probability(won: int, lost: int, more: int) -> None:
    settings = Predictive(min_outcomes=1)
    base = trained(won, lost, 5, 5)
    better = trained(won + more, lost, 5, 5)
    p0 = base.win_probability(lead_features(IT, MODEL), settings)
    p1 = better.win_probability(lead_features(IT, MODEL), settings)
    assert p1 is not None
    assert p0 is None or p1 >= p0
