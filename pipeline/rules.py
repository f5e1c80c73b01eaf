"""The business rules RevOps maintains, loaded and validated once at start."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.config import load_yaml_model
from pipeline.exclusion import ExclusionPolicy
from pipeline.nurture import NurturePolicy
from pipeline.routing import RoutingRules
from pipeline.scoring import ScoringModel


@dataclass(frozen=True)
class Rules:
    scoring: ScoringModel
    nurture: NurturePolicy
    routing: RoutingRules
    exclusions: ExclusionPolicy


def load_rules(rules_dir: Path) -> Rules:
    return Rules(
        scoring=load_yaml_model(rules_dir / "scoring.yaml", ScoringModel),
        nurture=load_yaml_model(rules_dir / "nurture.yaml", NurturePolicy),
        routing=load_yaml_model(rules_dir / "routing.yaml", RoutingRules),
        exclusions=load_yaml_model(rules_dir / "exclusions.yaml", ExclusionPolicy),
    )
