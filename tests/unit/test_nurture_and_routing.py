from datetime import timedelta

from pipeline.config import load_yaml_model
from pipeline.nurture import NurturePolicy, fulfill_inquiry, nurture_gate
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


def test_every_inquiry_is_answered_with_the_package_for_its_interest() -> None:
    lead = enriched(answers={"purchase_timeframe_months": 0}, product_interest=["analytics"])
    touch = fulfill_inquiry(lead, NURTURE, NOW)
    assert touch.payload.purpose == "fulfillment"
    assert touch.payload.content_id == "info-pack-analytics"
    assert touch.payload.channel == "email"
    assert touch.payload.recipient == "anna@firma.de"
    assert touch.payload.due_at == NOW + timedelta(minutes=5)
    assert (touch.lead_id, touch.trace_id) == (lead.lead_id, lead.trace_id)


def test_an_answer_delivered_twice_has_the_same_id() -> None:
    lead = enriched()
    assert (
        fulfill_inquiry(lead, NURTURE, NOW).event_id == fulfill_inquiry(lead, NURTURE, NOW).event_id
    )


def test_an_unknown_product_gets_the_general_package() -> None:
    touch = fulfill_inquiry(enriched(product_interest=["something-else"]), NURTURE, NOW)
    assert touch.payload.content_id == "info-pack-general"


def test_a_lead_not_ready_for_sales_gets_its_first_nurture_step_a_day_later() -> None:
    touch = gate(answers={"purchase_timeframe_months": 12})
    assert isinstance(touch, TouchScheduled)
    assert touch.payload.purpose == "nurture"
    assert touch.payload.content_id == "nurture-intro-cold"
    assert touch.payload.due_at == NOW + timedelta(hours=24)
