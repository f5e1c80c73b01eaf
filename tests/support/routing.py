"""The shipped scoring, nurture and routing rules and a hand-off built through them,
for the tests of routing, distribution, SLA, fairness and the CRM bridge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.config.settings import SHIPPED_RULES
from pipeline.config.yaml_model import load_yaml_model
from pipeline.domain.distribute.routing import RoutingRules
from pipeline.domain.nurture.policy import NurturePolicy
from pipeline.domain.nurture.programs import NurtureState, gate
from pipeline.domain.qualify.scoring import ScoringModel, qualify_lead
from schemas.lead import LeadHandedOff
from tests.support.factories import NOW, enriched

RULES = SHIPPED_RULES
SCORING = load_yaml_model(RULES / "scoring.yaml", ScoringModel)
NURTURE = load_yaml_model(RULES / "nurture.yaml", NurturePolicy)
ROUTING = load_yaml_model(RULES / "routing.yaml", RoutingRules)
DAY = timedelta(days=1)
MONDAY_NOON = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)  # 12:00 in Berlin


def handoff(**overrides: Any) -> LeadHandedOff:
    """A hot lead as nurture hands it to sales; `overrides` as for `enriched`."""
    answers = {"purchase_timeframe_months": 0, **overrides.pop("answers", {})}
    qualified = qualify_lead(enriched(answers=answers, **overrides), SCORING)
    _, result = gate(qualified, NurtureState(), NURTURE, NOW, DAY)
    assert isinstance(result, LeadHandedOff)
    return result


def rep(rep_id: str, **fields: Any) -> dict[str, Any]:
    """A sales rep as the routing rules spell one."""
    return {"id": rep_id, "name": rep_id.title(), "email": f"{rep_id}@x.example", **fields}
