"""The business rules RevOps maintains, loaded and validated once at start.

Eight files in the rules directory (`RULE_FILES`): four the stages run on
(scoring, nurture, routing, exclusions), four that may be left out (enrichment:
all built-in providers; costs and targets: the money and target reports stay
empty; experiments: none). The worker checks all eight at start and names every
broken one, not just the first; `leadflow rules check` does the same for a
directory or one file. The variants of experiments.yaml are checked with the
directory, as the rules they stand in for (`pipeline.config.experiments`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from pipeline.config.experiments import (
    LoadedExperiments,
    RuleChoice,
    choose,
    load_experiments,
    rule_version,
)
from pipeline.config.report_rules import CampaignCosts, Targets
from pipeline.config.yaml_model import load_yaml_model
from pipeline.domain.capture.exclusion import ExclusionPolicy
from pipeline.domain.distribute.routing import RoutingRules
from pipeline.domain.enrich.enrichment import EnrichmentRules
from pipeline.domain.experiments import KINDS, Experiments, Kind
from pipeline.domain.nurture.policy import NurturePolicy
from pipeline.domain.qualify.scoring import ScoringModel
from pipeline.errors import ConfigError
from schemas.lead import RuleVersion

M = TypeVar("M", bound=BaseModel)
DEFAULT_ENRICHMENT = EnrichmentRules.model_validate(
    {"providers": ["email_domain", "company_directory", "internal_history", "postal_region"]}
)


@dataclass(frozen=True)
class RuleFile:
    """One kind of rule file: its model, whether the directory must hold it, and the
    one-line summary `rules check` prints of a valid one."""

    model: type[BaseModel]
    required: bool
    summary: Callable[[Any], str]


def _scoring(s: ScoringModel) -> str:
    return (
        f"{len(s.matrix)} criteria ({', '.join(c.id for c in s.matrix)}), "
        f"MQL from {s.thresholds.mql}, SQL from {s.thresholds.sql}, "
        f"retire after {s.retire.max_iterations} qualifications"
    )


def _nurture(n: NurturePolicy) -> str:
    cp = n.contact_policy
    return (
        f"{len(n.segments)} segments, {len(n.programs)} programs "
        f"({', '.join(n.programs) or 'none'}), at most {cp.max_touches} touches "
        f"in {cp.per_days:g} days, answers within {n.fulfillment.send_within_minutes} min"
    )


def _exclusions(e: ExclusionPolicy) -> str:
    countries = ", ".join(e.territory.countries) or "all countries"
    return (
        f"{len(e.competitor_domains)} competitor domains, "
        f"{len(e.students.job_title_words)} student title words, territory: {countries}, "
        f"{len(e.custom)} custom rules"
    )


def _experiments(x: Experiments) -> str:
    if not x.experiments:
        return "no experiments"
    return f"{len(x.experiments)} experiments: " + ", ".join(
        f"{e.name} ({e.start:%Y-%m-%d} to {e.end:%Y-%m-%d}, "
        f"{'/'.join(v.name for v in e.variants)}; varies {', '.join(e.changes())})"
        for e in x.experiments
    )


RULE_FILES: dict[str, RuleFile] = {
    "scoring": RuleFile(ScoringModel, True, _scoring),
    "nurture": RuleFile(NurturePolicy, True, _nurture),
    "routing": RuleFile(
        RoutingRules, True, lambda r: f"{len(r.queues)} queues, {len(r.rules)} rules"
    ),
    "exclusions": RuleFile(ExclusionPolicy, True, _exclusions),
    "enrichment": RuleFile(
        EnrichmentRules, False, lambda e: "providers: " + ", ".join(p.use for p in e.providers)
    ),
    "costs": RuleFile(
        CampaignCosts,
        False,
        lambda c: f"{len(c.costs)} campaign costs, {sum(x.amount_eur for x in c.costs):,.0f} EUR",
    ),
    "targets": RuleFile(Targets, False, lambda t: f"{len(t.targets)} monthly targets"),
    "experiments": RuleFile(Experiments, False, _experiments),
}
"""Every rule file by kind; the file is `<kind>.yaml` in the rules directory."""


@dataclass(frozen=True)
class Rules:
    scoring: ScoringModel
    nurture: NurturePolicy
    routing: RoutingRules
    exclusions: ExclusionPolicy
    enrichment: EnrichmentRules = DEFAULT_ENRICHMENT
    experiments: LoadedExperiments = field(default_factory=LoadedExperiments)
    base: RuleChoice = field(init=False)
    """The directory's scoring, nurture and routing rules with their versions."""

    def __post_init__(self) -> None:
        versions: dict[Kind, RuleVersion] = {
            "scoring": rule_version("scoring", self.scoring),
            "nurture": rule_version("nurture", self.nurture),
            "routing": rule_version("routing", self.routing),
        }
        base = RuleChoice(self.scoring, self.nurture, self.routing, versions)
        object.__setattr__(self, "base", base)

    def for_lead(self, lead_id: uuid.UUID, now: datetime) -> RuleChoice:
        """The rules the lead's decisions run on now: its variants' where an experiment
        runs, the directory's otherwise; with what each decision records."""
        return choose(self.base, self.experiments, lead_id, now)


def check_rules_dir(rules_dir: Path) -> dict[str, BaseModel | None]:
    """Every rule file of the directory validated (None: an optional one left out).

    Raises one `ConfigError` that names every broken or missing file with its keys
    and problems, so RevOps fixes them all in one round, not one per restart."""
    loaded: dict[str, BaseModel | None] = {}
    problems: list[str] = []
    for kind, rule_file in RULE_FILES.items():
        path = rules_dir / f"{kind}.yaml"
        if not rule_file.required and not path.exists():
            loaded[kind] = None
            continue
        try:
            loaded[kind] = load_yaml_model(path, rule_file.model)
        except ConfigError as exc:
            problems.append(str(exc))
    if not problems and loaded["experiments"] is not None:  # the variants need the rules
        try:
            experiments(rules_dir, loaded)
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError(
            f"{len(problems)} of the rule files in {rules_dir} are wrong:\n" + "\n".join(problems)
        )
    return loaded


def load_rules(rules_dir: Path) -> Rules:
    """The rules the stages run on, after every rule file was checked (`check_rules_dir`)."""
    loaded = check_rules_dir(rules_dir)

    def one(kind: str, model: type[M]) -> M:
        value = loaded[kind]
        assert isinstance(value, model)  # required kinds are loaded or raised
        return value

    enrichment = loaded["enrichment"]
    return Rules(
        experiments=experiments(rules_dir, loaded),
        scoring=one("scoring", ScoringModel),
        nurture=one("nurture", NurturePolicy),
        routing=one("routing", RoutingRules),
        exclusions=one("exclusions", ExclusionPolicy),
        enrichment=DEFAULT_ENRICHMENT
        if enrichment is None
        else relative_files(one("enrichment", EnrichmentRules), rules_dir),
    )


def experiments(rules_dir: Path, loaded: dict[str, BaseModel | None]) -> LoadedExperiments:
    """experiments.yaml's variants resolved against the directory's rules."""
    return load_experiments(
        rules_dir, {kind: model for kind in KINDS if (model := loaded[kind]) is not None}
    )


def load_enrichment(rules_dir: Path) -> EnrichmentRules:
    """enrichment.yaml is optional (all built-in providers); its file paths are relative to it."""
    path = rules_dir / "enrichment.yaml"
    if not path.exists():
        return DEFAULT_ENRICHMENT
    return relative_files(load_yaml_model(path, EnrichmentRules), rules_dir)


def relative_files(rules: EnrichmentRules, rules_dir: Path) -> EnrichmentRules:
    """The enrichment rules with their reference files found beside them."""
    return rules.model_copy(
        update={
            name: rules_dir / value
            for name in ("customers_file", "company_directory_file")
            if (value := getattr(rules, name)) is not None
        }
    )


def check_rule_file(path: Path, kind: str | None = None) -> str:
    """Validate one rule file (kind from its name unless given); a one-line summary."""
    kind = kind or path.stem
    rule_file = RULE_FILES.get(kind)
    if rule_file is None:
        names = "/".join(RULE_FILES)
        raise ConfigError(
            f"{path}: which rules are these? Name the file {names}.yaml or pass --kind."
        )
    return rule_file.summary(load_yaml_model(path, rule_file.model))


def rules_summary(rules_dir: Path) -> list[tuple[Path, str]]:
    """Each rule file of the directory and its summary, after `check_rules_dir`."""
    return [
        (
            rules_dir / f"{kind}.yaml",
            "left out" if model is None else RULE_FILES[kind].summary(model),
        )
        for kind, model in check_rules_dir(rules_dir).items()
    ]
