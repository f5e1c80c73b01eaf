"""BANT, behaviour with decay, fast lane, grade, lifecycle and retirement."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.config.settings import SHIPPED_RULES
from pipeline.config.yaml_model import load_yaml_model
from pipeline.domain.qualify.scoring import ScoringModel, Signals, qualify, score_lead
from tests.support.factories import NOW, enriched

RULES = SHIPPED_RULES
BASE: dict[str, Any] = {
    "classes": {"hot_within_months": 1, "warm_within_months": 3},
    "thresholds": {"mql": 20, "sql": 36},
}


def shipped() -> ScoringModel:
    return load_yaml_model(RULES / "scoring.yaml", ScoringModel)


def bant() -> ScoringModel:
    return ScoringModel.model_validate({**BASE, "presets": ["bant"]})


def test_bant_rates_budget_authority_need_and_time() -> None:
    lead = enriched(
        message="Welche Schnittstellen zu SAP gibt es?",
        answers={
            "order_volume_eur": 300000.0,
            "decision_maker": True,
            "purchase_timeframe_months": 1,
        },
    ).payload
    score, breakdown = score_lead(lead, bant())
    assert [(c.criterion, c.rating, c.weight) for c in breakdown] == [
        ("budget", 4, 3),
        ("authority", 4, 3),
        ("need", 4, 2),
        ("time", 4, 4),
    ]
    assert score == 48


def test_bant_with_little_known_scores_low_and_shows_the_gaps() -> None:
    lead = enriched(answers={"purchase_timeframe_months": 12}).payload  # product, no message
    score, breakdown = score_lead(lead, bant())
    lines = {c.criterion: c for c in breakdown}
    assert (lines["need"].value, lines["need"].rating) == ("general", 2)
    assert lines["budget"].value is None and lines["authority"].value is None
    assert score == 2 * 2 + 1 * 4


def test_a_criterion_with_a_preset_id_replaces_the_preset_one() -> None:
    model = load_yaml_model(RULES / "examples" / "scoring-bant.yaml", ScoringModel)
    assert [c.id for c in model.matrix] == ["budget", "authority", "need", "time", "company_size"]
    lead = enriched(answers={"order_volume_eur": 60000.0}).payload
    budget = score_lead(lead, model)[1][0]
    assert (budget.rating, budget.weight) == (4, 3)  # the example's table, not the preset's


def test_a_model_without_criteria_is_refused() -> None:
    with pytest.raises(ValueError, match="no criteria"):
        ScoringModel.model_validate(BASE)


def test_behaviour_adds_points_that_fade_with_their_age() -> None:
    model = shipped()
    lead = enriched(answers={"purchase_timeframe_months": 12}).payload
    fresh = qualify(lead, model, Signals(activities=[("webinar_attended", NOW)]), NOW)
    old = qualify(
        lead, model, Signals(activities=[("webinar_attended", NOW - timedelta(days=14))]), NOW
    )
    assert fresh.behaviour_score == 6 and old.behaviour_score == 3  # one half-life later
    assert fresh.score == fresh.fit_score + 6
    assert fresh.behaviour[0].activity == "webinar_attended" and fresh.behaviour[0].count == 1


def test_behaviour_is_capped() -> None:
    model = shipped()
    many = [("email_clicked", NOW)] * 100
    result = qualify(enriched().payload, model, Signals(activities=many), NOW)
    assert result.behaviour_score == model.behaviour.max_points


def test_a_booked_meeting_takes_the_fast_lane() -> None:
    model = shipped()
    cold = enriched(answers={"purchase_timeframe_months": 12}).payload
    nurtured = qualify(cold, model, Signals(), NOW)
    assert (nurtured.decision, nurtured.fast_lane) == ("nurture", None)
    booked = qualify(cold, model, Signals(activities=[("meeting_booked", NOW)]), NOW)
    assert (booked.lead_class, booked.status, booked.decision, booked.fast_lane) == (
        "hot",
        "sql",
        "sales",
        "meeting_booked",
    )
    stale = [("meeting_booked", NOW - timedelta(days=60))]
    assert qualify(cold, model, Signals(activities=stale), NOW).fast_lane is None


def test_a_price_request_in_the_inquiry_takes_the_fast_lane() -> None:
    lead = enriched(message="Bitte senden Sie mir ein Angebot.").payload
    result = qualify(lead, shipped(), Signals(), NOW)
    assert result.decision == "sales" and result.fast_lane == "inquiry mentions 'Angebot'"


@pytest.mark.parametrize(
    ("months", "volume", "grade"),
    [
        (0, 300000.0, "1A"),
        (3, 70000.0, "2B"),
        (10, 70000.0, "3B"),
        (24, 100.0, "4C"),
        (None, None, "??"),
    ],
)
def test_the_grade_is_timeframe_digit_and_volume_letter(
    months: int | None, volume: float | None, grade: str
) -> None:
    answers = {"purchase_timeframe_months": months, "order_volume_eur": volume}
    assert qualify(enriched(answers=answers).payload, shipped(), Signals(), NOW).grade == grade


def test_a_throw_away_address_is_disqualified_with_the_reason() -> None:
    lead = enriched(contact={"email": "x@mailinator.com"}).payload
    result = qualify(lead, shipped(), Signals(), NOW)
    assert (result.status, result.decision, result.reason) == (
        "disqualified",
        "retire",
        "throw-away e-mail address",
    )


def test_a_lead_not_ready_after_max_iterations_retires() -> None:
    model = shipped()
    lead = enriched(answers={"purchase_timeframe_months": 12}).payload
    below = qualify(lead, model, Signals(iteration=model.retire.max_iterations - 1), NOW)
    assert below.decision == "nurture"
    at = qualify(lead, model, Signals(iteration=model.retire.max_iterations), NOW)
    assert (at.status, at.decision) == ("retired", "retire")
    assert at.reason is not None and "after 8 qualifications" in at.reason
    hot = enriched(answers={"purchase_timeframe_months": 0}).payload
    assert qualify(hot, model, Signals(iteration=50), NOW).decision == "sales"


def test_a_small_expected_volume_retires() -> None:
    lead = enriched(answers={"purchase_timeframe_months": 12, "order_volume_eur": 500.0}).payload
    result = qualify(lead, shipped(), Signals(), NOW)
    assert result.status == "retired" and "below 2,000 EUR" in (result.reason or "")


def test_a_lead_returned_by_sales_is_nurtured_unless_new_intent_shows() -> None:
    big = {"purchase_timeframe_months": 3, "order_volume_eur": 600000.0, "decision_maker": True}
    lead = enriched(answers={**big, "employees": 5000}).payload
    assert qualify(lead, shipped(), Signals(), NOW).decision == "sales"
    returned = qualify(lead, shipped(), Signals(returned=True), NOW)
    assert (returned.status, returned.decision) == ("mql", "nurture")
    again = qualify(
        lead, shipped(), Signals(returned=True, activities=[("price_request", NOW)]), NOW
    )
    assert again.decision == "sales"


# Property: more rating or more weight never lowers the score.
RATING = st.integers(min_value=1, max_value=4)
WEIGHT = st.integers(min_value=1, max_value=4)


def _one_criterion(rating: int, weight: int) -> ScoringModel:
    return ScoringModel.model_validate(
        {
            **BASE,
            "criteria": [
                {
                    "id": "budget",
                    "label": "Budget",
                    "field": "order_volume_eur",
                    "weight": weight,
                    "ratings": [{"rating": rating}],
                },
                {
                    "id": "industry",
                    "label": "Industry",
                    "field": "industry",
                    "weight": 2,
                    "ratings": [{"values": ["IT"], "rating": 3}, {"rating": 1}],
                },
            ],
        }
    )


LEAD = enriched(answers={"order_volume_eur": 1000.0, "industry": "IT"}).payload


@given(r1=RATING, r2=RATING, w1=WEIGHT, w2=WEIGHT)
def test_the_score_is_monotone_in_ratings_and_weights(r1: int, r2: int, w1: int, w2: int) -> None:
    low_r, high_r = sorted((r1, r2))
    low_w, high_w = sorted((w1, w2))
    low = score_lead(LEAD, _one_criterion(low_r, low_w))[0]
    assert score_lead(LEAD, _one_criterion(high_r, low_w))[0] >= low
    assert score_lead(LEAD, _one_criterion(low_r, high_w))[0] >= low
    assert score_lead(LEAD, _one_criterion(high_r, high_w))[0] == high_r * high_w + 3 * 2


@given(
    points=st.lists(st.sampled_from(["page_view", "email_clicked", "replied"]), max_size=20),
    extra=st.sampled_from(["page_view", "email_clicked", "webinar_attended"]),
)
def test_more_positive_activity_never_lowers_the_score(points: list[str], extra: str) -> None:
    model = shipped()
    before = [(kind, NOW) for kind in points]
    a = qualify(LEAD, model, Signals(activities=before), NOW).score
    b = qualify(LEAD, model, Signals(activities=[*before, (extra, NOW)]), NOW).score
    assert b >= a


def test_explain_shows_each_rating_times_weight_and_the_behaviour() -> None:
    from pipeline.domain.qualify.scoring import explain

    lead = enriched(answers={"purchase_timeframe_months": 10, "industry": "IT"}).payload
    result = qualify(
        lead, shipped(), Signals(activities=[("email_clicked", NOW)], iteration=2), NOW
    )
    text = "\n".join(explain(result))
    assert "score 9 = fit 7 + behaviour 2" in text
    assert "purchase_timeframe" in text and "1 × 4 = 4" in text
    assert "order_volume           unknown" in text
    assert "email_clicked" in text and "+2.00" in text
    assert "qualification #2" in text
    assert "not enough closed deals yet" in text
