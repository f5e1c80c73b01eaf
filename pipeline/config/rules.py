"""The business rules RevOps maintains, loaded and validated once at start."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.config.yaml_model import load_yaml_model
from pipeline.domain.capture.exclusion import ExclusionPolicy
from pipeline.domain.distribute.routing import RoutingRules
from pipeline.domain.enrich.enrichment import EnrichmentRules
from pipeline.domain.nurture.policy import NurturePolicy
from pipeline.domain.qualify.scoring import ScoringModel
from pipeline.errors import ConfigError

DEFAULT_ENRICHMENT = EnrichmentRules.model_validate(
    {"providers": ["email_domain", "company_directory", "internal_history", "postal_region"]}
)


@dataclass(frozen=True)
class Rules:
    scoring: ScoringModel
    nurture: NurturePolicy
    routing: RoutingRules
    exclusions: ExclusionPolicy
    enrichment: EnrichmentRules = DEFAULT_ENRICHMENT


def load_rules(rules_dir: Path) -> Rules:
    return Rules(
        scoring=load_yaml_model(rules_dir / "scoring.yaml", ScoringModel),
        nurture=load_yaml_model(rules_dir / "nurture.yaml", NurturePolicy),
        routing=load_yaml_model(rules_dir / "routing.yaml", RoutingRules),
        exclusions=load_yaml_model(rules_dir / "exclusions.yaml", ExclusionPolicy),
        enrichment=load_enrichment(rules_dir),
    )


def load_enrichment(rules_dir: Path) -> EnrichmentRules:
    """enrichment.yaml is optional (all built-in providers); its file paths are relative to it."""
    path = rules_dir / "enrichment.yaml"
    if not path.exists():
        return DEFAULT_ENRICHMENT
    rules = load_yaml_model(path, EnrichmentRules)
    return rules.model_copy(
        update={
            name: rules_dir / value
            for name in ("customers_file", "company_directory_file")
            if (value := getattr(rules, name)) is not None
        }
    )


CHECKED_KINDS = ("scoring", "enrichment", "nurture", "routing")
"""The rule files `check_rule_file` summarises, in the order `check_rules_dir` shows them."""


def check_rules_dir(rules_dir: Path) -> list[tuple[Path, str]]:
    """Every rule file of a rules directory, summarised; then the whole set loaded
    as the worker loads it, so a missing file fails here and not at start."""
    checked = []
    for kind in CHECKED_KINDS:
        path = rules_dir / f"{kind}.yaml"
        if kind == "enrichment" and not path.exists():
            continue  # optional: the built-in providers
        checked.append((path, check_rule_file(path, kind)))
    load_rules(rules_dir)
    return checked


def check_rule_file(path: Path, kind: str | None = None) -> str:
    """Validate one rule file (kind from its name unless given); a one-line summary."""
    kind = kind or path.stem
    if kind == "scoring":
        scoring = load_yaml_model(path, ScoringModel)
        return (
            f"{len(scoring.matrix)} criteria ({', '.join(c.id for c in scoring.matrix)}), "
            f"MQL from {scoring.thresholds.mql}, SQL from {scoring.thresholds.sql}, "
            f"retire after {scoring.retire.max_iterations} qualifications"
        )
    if kind == "enrichment":
        enrichment = load_yaml_model(path, EnrichmentRules)
        return "providers: " + ", ".join(p.use for p in enrichment.providers)
    if kind == "nurture":
        nurture = load_yaml_model(path, NurturePolicy)
        cp = nurture.contact_policy
        return (
            f"{len(nurture.segments)} segments, {len(nurture.programs)} programs "
            f"({', '.join(nurture.programs) or 'none'}), at most {cp.max_touches} touches "
            f"in {cp.per_days:g} days, answers within {nurture.fulfillment.send_within_minutes} min"
        )
    if kind == "routing":
        routing = load_yaml_model(path, RoutingRules)
        return f"{len(routing.queues)} queues, {len(routing.rules)} rules"
    raise ConfigError(
        f"{path}: which rules are these? Name the file scoring/enrichment/nurture/routing.yaml "
        "or pass --kind."
    )
