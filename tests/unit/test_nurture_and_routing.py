from datetime import timedelta

from pipeline.config import load_yaml_model
from pipeline.nurture import NurturePolicy, nurture_gate
from pipeline.scoring import ScoringModel, qualify_lead
from pipeline.settings import PROJECT_ROOT
from schemas.lead import LeadHandedOff, TouchScheduled
from tests.unit.factories import NOW, enriched

RULES = PROJECT_ROOT / "deploy" / "rules"
SCORING = load_yaml_model(RULES / "scoring.yaml", ScoringModel)
NURTURE = load_yaml_model(RULES / "nurture.yaml", NurturePolicy)


def gate(**overrides: object) -> LeadHandedOff | TouchScheduled:
    return nurture_gate(qualify_lead(enriched(**overrides), SCORING), NURTURE, NOW)


def handoff(**overrides: object) -> LeadHandedOff:
    result = gate(answers={"purchase_timeframe_months": 0}, **overrides)
    assert isinstance(result, LeadHandedOff)
    return result


def test_hot_leads_pass_the_gate_at_once() -> None:
    result = handoff()
    assert result.payload.reason == "hot lead"
    assert result.payload.qualification.lead_class == "hot"


def test_other_leads_get_the_information_package_for_their_interest() -> None:
    touch = gate(answers={"purchase_timeframe_months": 12}, product_interest=["analytics"])
    assert isinstance(touch, TouchScheduled)
    assert touch.payload.content_id == "info-pack-analytics"
    assert touch.payload.channel == "email"
    assert touch.payload.recipient == "anna@firma.de"
    assert touch.payload.due_at == NOW + timedelta(minutes=5)


def test_an_unknown_product_gets_the_general_package() -> None:
    touch = gate(product_interest=["something-else"])
    assert isinstance(touch, TouchScheduled)
    assert touch.payload.content_id == "info-pack-general"
