from pathlib import Path

import pytest

from pipeline.config.settings import SHIPPED_RULES
from pipeline.config.yaml_model import load_yaml_model
from pipeline.domain.qualify.scoring import ScoringModel, qualify_lead, score_lead
from pipeline.errors import ConfigError
from tests.support.factories import enriched

# The classification matrix of the BITKOM guide (seed 002 §6.4.1), as RevOps would write it.
BITKOM_MATRIX = {
    "criteria": [
        {
            "id": "purchase_timeframe",
            "label": "Kaufzeitraum",
            "field": "purchase_timeframe_months",
            "weight": 4,
            "ratings": [{"max": 1, "rating": 4}, {"max": 3, "rating": 3}, {"rating": 1}],
        },
        {
            "id": "order_volume",
            "label": "Auftragsvolumen",
            "field": "order_volume_eur",
            "weight": 2,
            "ratings": [{"min": 100000, "rating": 3}, {"rating": 1}],
        },
        {
            "id": "industry",
            "label": "Branche",
            "field": "industry",
            "weight": 1,
            "ratings": [{"values": ["IT"], "rating": 3}, {"rating": 1}],
        },
    ],
    "classes": {"hot_within_months": 1, "warm_within_months": 3},
    "thresholds": {"mql": 8, "sql": 20},
}
BITKOM_LEAD = {"purchase_timeframe_months": 10, "order_volume_eur": 70000.0, "industry": "IT"}


def shipped_model() -> ScoringModel:
    return load_yaml_model(SHIPPED_RULES / "scoring.yaml", ScoringModel)


def test_the_bitkom_worked_example_scores_9() -> None:
    model = ScoringModel.model_validate(BITKOM_MATRIX)
    score, breakdown = score_lead(enriched(answers=BITKOM_LEAD).payload, model)
    assert [(c.criterion, c.rating, c.weight, c.points) for c in breakdown] == [
        ("purchase_timeframe", 1, 4, 4),
        ("order_volume", 1, 2, 2),
        ("industry", 3, 1, 3),
    ]
    assert score == 9


def test_the_shipped_matrix_reproduces_the_bitkom_example() -> None:
    score, breakdown = score_lead(enriched(answers=BITKOM_LEAD).payload, shipped_model())
    assert score == 9
    unknown = {c.criterion for c in breakdown if c.value is None}
    assert unknown == {"authority", "company_size"}
    assert all(c.points == 0 for c in breakdown if c.value is None)


def test_changing_a_weight_changes_the_score_without_re_rating() -> None:
    heavier = BITKOM_MATRIX | {
        "criteria": [
            BITKOM_MATRIX["criteria"][0],
            BITKOM_MATRIX["criteria"][1],
            {**BITKOM_MATRIX["criteria"][2], "weight": 4},
        ]
    }
    score, breakdown = score_lead(
        enriched(answers=BITKOM_LEAD).payload, ScoringModel.model_validate(heavier)
    )
    assert breakdown[2].rating == 3 and score == 4 + 2 + 12


def test_categories_ignore_case_and_yes_no_answers_rate() -> None:
    lead = enriched(answers={"industry": "it", "decision_maker": True}).payload
    _, breakdown = score_lead(lead, shipped_model())
    lines = {c.criterion: c for c in breakdown}
    assert lines["industry"].rating == 3
    assert (lines["authority"].value, lines["authority"].rating) == ("yes", 4)


@pytest.mark.parametrize(
    ("months", "expected"),
    [(0, "hot"), (1, "hot"), (2, "warm"), (3, "warm"), (4, "cold"), (12, "cold"), (None, "cold")],
)
def test_classes_follow_the_purchase_timeframe(months: int | None, expected: str) -> None:
    qualified = qualify_lead(
        enriched(answers={"purchase_timeframe_months": months}), shipped_model()
    )
    assert qualified.payload.lead_class == expected


def test_hot_leads_and_sqls_go_to_sales_the_rest_to_nurture() -> None:
    model = shipped_model()
    hot = qualify_lead(enriched(answers={"purchase_timeframe_months": 1}), model).payload
    assert (hot.lead_class, hot.decision) == ("hot", "sales")

    big = {
        "purchase_timeframe_months": 3,
        "order_volume_eur": 600000.0,
        "decision_maker": True,
        "employees": 5000,
    }
    sql = qualify_lead(enriched(answers=big), model).payload
    assert sql.score >= model.thresholds.sql
    assert (sql.lead_class, sql.status, sql.decision) == ("warm", "sql", "sales")

    cold = qualify_lead(enriched(answers={"purchase_timeframe_months": 12}), model).payload
    assert (cold.status, cold.decision, cold.iteration) == ("lead", "nurture", 1)


def test_mql_sits_between_the_thresholds() -> None:
    model = shipped_model()
    answers = {"purchase_timeframe_months": 6, "decision_maker": True}  # 2*4 + 4*3 = 20
    qualified = qualify_lead(enriched(answers=answers), model).payload
    assert qualified.score == 20
    assert qualified.status == "mql"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scoring.yaml"
    path.write_text(text)
    return path


def test_a_rating_outside_1_to_4_is_named_in_the_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
criteria:
  - {id: budget, label: Budget, field: order_volume_eur, weight: 2, ratings: [{rating: 5}]}
classes: {hot_within_months: 1, warm_within_months: 3}
thresholds: {mql: 1, sql: 2}
""",
    )
    with pytest.raises(ConfigError) as err:
        load_yaml_model(path, ScoringModel)
    message = str(err.value)
    assert str(path) in message
    assert "criteria.0.ratings.0.rating" in message
    assert "less than or equal to 4" in message


def test_an_unknown_field_lists_the_fields_one_can_use(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
criteria:
  - {id: shoe, label: Shoe size, field: shoe_size, weight: 1, ratings: [{rating: 1}]}
classes: {hot_within_months: 1, warm_within_months: 3}
thresholds: {mql: 1, sql: 2}
""",
    )
    with pytest.raises(ConfigError, match="purchase_timeframe_months"):
        load_yaml_model(path, ScoringModel)


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "criteria:\n  - id: [unclosed\n")
    with pytest.raises(ConfigError, match="line 3"):
        load_yaml_model(path, ScoringModel)


def test_thresholds_and_classes_must_be_ordered() -> None:
    bad = BITKOM_MATRIX | {"thresholds": {"mql": 20, "sql": 10}}
    with pytest.raises(ValueError, match="sql threshold"):
        ScoringModel.model_validate(bad)
    bad = BITKOM_MATRIX | {"classes": {"hot_within_months": 3, "warm_within_months": 1}}
    with pytest.raises(ValueError, match="warm_within_months"):
        ScoringModel.model_validate(bad)
