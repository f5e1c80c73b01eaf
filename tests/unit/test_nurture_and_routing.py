from datetime import timedelta

import pytest

from pipeline.config import load_yaml_model
from pipeline.nurture import NurturePolicy, nurture_gate
from pipeline.routing import RoutingRules, assign_lead, route_lead
from pipeline.scoring import ScoringModel, qualify_lead
from pipeline.settings import PROJECT_ROOT
from schemas.lead import LeadHandedOff, TouchScheduled
from tests.unit.factories import NOW, enriched

RULES = PROJECT_ROOT / "deploy" / "rules"
SCORING = load_yaml_model(RULES / "scoring.yaml", ScoringModel)
NURTURE = load_yaml_model(RULES / "nurture.yaml", NurturePolicy)
ROUTING = load_yaml_model(RULES / "routing.yaml", RoutingRules)


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


def test_first_matching_rule_picks_the_queue() -> None:
    german = route_lead(handoff(contact={"email": "a@firma.de", "country": "DE"}), ROUTING)
    assert (german.payload.queue, german.payload.rule) == ("dach", "dach-by-country")
    assert german.key() == b"dach"

    analytics = handoff(
        contact={"email": "a@firma.de", "country": "DE"}, product_interest=["analytics"]
    )
    routed = route_lead(analytics, ROUTING)
    assert (routed.payload.queue, routed.payload.rule) == ("enterprise", "analytics-enterprise")


def test_no_matching_rule_means_the_default_queue() -> None:
    routed = route_lead(handoff(contact={"email": "a@firma.fr", "country": "FR"}), ROUTING)
    assert (routed.payload.queue, routed.payload.rule) == ("international", "default")


def test_round_robin_gives_each_rep_a_turn() -> None:
    routed = route_lead(handoff(contact={"email": "a@firma.de", "country": "DE"}), ROUTING)
    owners = [
        assign_lead(routed, ROUTING, pointer, NOW).payload.owner.rep_id for pointer in range(6)
    ]
    assert owners == ["anna.schmidt", "jonas.weber", "lena.fischer"] * 2


def test_the_assignment_carries_everything_sales_needs() -> None:
    routed = route_lead(handoff(contact={"email": "a@firma.fr", "country": "FR"}), ROUTING)
    assigned = assign_lead(routed, ROUTING, 0, NOW)
    assert assigned.lead_id == routed.lead_id
    assert assigned.payload.owner.rep_id == "emma.brown"
    assert assigned.payload.sla_due_at == NOW + timedelta(minutes=ROUTING.sla_minutes)
    assert assigned.payload.qualification.profile.contact.email == "a@firma.fr"
    assert assigned.payload.rule == "default"


def test_a_queue_may_set_its_own_sla() -> None:
    lead = handoff(contact={"email": "a@firma.de"}, product_interest=["analytics"])
    assigned = assign_lead(route_lead(lead, ROUTING), ROUTING, 0, NOW)
    assert assigned.payload.sla_due_at == NOW + timedelta(minutes=15)


def test_a_rule_naming_an_unknown_queue_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="unknown queue"):
        RoutingRules.model_validate(
            {
                "default_queue": "a",
                "queues": {"a": {"reps": [{"id": "x", "name": "X", "email": "x@y.z"}]}},
                "rules": [{"name": "r", "queue": "nope", "when": {"country": ["DE"]}}],
            }
        )
