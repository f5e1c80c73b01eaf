"""Rule versions and experiments, loaded with the rules at start.

Every qualification, nurture and routing decision records the rule set that
made it (`schemas.lead.RuleVersion`): a name (the file's `version:`, else its
file name) and a content hash of the rules as validated, so an edit of a
comment changes nothing and an edit of a weight changes the hash. The variants
of experiments.yaml (`pipeline.domain.experiments`) are resolved here into
rules of their own, validated like the rule files they stand in for.

A running experiment must not change under its leads (their variants or rules
would change mid-run and the comparison mean nothing): the worker records each
experiment's definition hash in its state directory (`experiments.json`) and
refuses to start when a running experiment's definition differs from the one
recorded, unless forced (`LEADFLOW_FORCE_EXPERIMENT_CHANGES`, `leadflow worker
--force`). A state directory is one worker's: workers on other machines keep
their own record, and a worker started on an empty state directory has none to
compare with.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from pipeline.config.yaml_model import describe_errors, load_yaml_model, read_yaml
from pipeline.domain.distribute.routing import RoutingRules
from pipeline.domain.experiments import KINDS, Experiment, Experiments, Kind, Variant, merged
from pipeline.domain.nurture.policy import NurturePolicy
from pipeline.domain.qualify.scoring import ScoringModel
from pipeline.errors import ConfigError
from schemas.lead import Decided, RuleVersion, VariantAssigned

EXPERIMENTS_FILE = "experiments.yaml"
RECORD_FILE = "experiments.json"
MODELS: dict[Kind, type[BaseModel]] = {
    "scoring": ScoringModel,
    "nurture": NurturePolicy,
    "routing": RoutingRules,
}
"""The rules an experiment may vary, by kind, as `pipeline.config.rules` loads them."""
E = TypeVar("E", bound=Decided)
M = TypeVar("M", bound=BaseModel)


def content_hash(rules: BaseModel) -> str:
    """12 hex digits of the SHA-256 of the validated rules (their canonical JSON)."""
    return hashlib.sha256(rules.model_dump_json().encode()).hexdigest()[:12]


def rule_version(kind: Kind, rules: BaseModel, where: str | None = None) -> RuleVersion:
    """The version a decision records: `version:` or the file name, and the hash."""
    own = getattr(rules, "version", None)
    name = own or f"{kind}.yaml"
    return RuleVersion(name=f"{name} ({where})" if where else name, hash=content_hash(rules))


@dataclass(frozen=True)
class Arm:
    """A variant's own rules, for the kinds it changes (the others: the directory's)."""

    rules: Mapping[Kind, BaseModel]
    versions: Mapping[Kind, RuleVersion]


@dataclass(frozen=True)
class LoadedExperiments:
    """experiments.yaml with every variant's rules resolved and validated."""

    definitions: Experiments = field(default_factory=Experiments)
    arms: Mapping[tuple[str, str], Arm] = field(default_factory=dict)
    """(experiment, variant) → its rules; a variant that changes nothing has none."""
    hashes: Mapping[str, str] = field(default_factory=dict)
    """Experiment → the hash of its definition and its variants' files."""


@dataclass(frozen=True)
class RuleChoice:
    """The rules one lead's decisions run on now, and what they record."""

    scoring: ScoringModel
    nurture: NurturePolicy
    routing: RoutingRules
    versions: Mapping[Kind, RuleVersion]
    variants: tuple[VariantAssigned, ...] = ()

    def stamp(self, kind: Kind, event: E) -> E:
        """The decision event with the rule set of `kind` and the lead's variants."""
        return event.model_copy(
            update={"rules": self.versions[kind], "experiments": list(self.variants)}
        )


def choose(
    base: RuleChoice, loaded: LoadedExperiments, lead_id: uuid.UUID, now: datetime
) -> RuleChoice:
    """The lead's rules: the directory's, with the variant of every experiment running
    at `now` laid over them (running experiments change different kinds)."""
    running = loaded.definitions.running(now)
    if not running:
        return base
    chosen: dict[Kind, BaseModel] = {}
    versions = dict(base.versions)
    variants = []
    for experiment in running:
        variant = experiment.variant_of(lead_id)
        variants.append(VariantAssigned(experiment=experiment.name, variant=variant.name))
        arm = loaded.arms.get((experiment.name, variant.name))
        if arm is not None:
            chosen.update(arm.rules)
            versions.update(arm.versions)
    return RuleChoice(
        scoring=_as(chosen.get("scoring", base.scoring), ScoringModel),
        nurture=_as(chosen.get("nurture", base.nurture), NurturePolicy),
        routing=_as(chosen.get("routing", base.routing), RoutingRules),
        versions=versions,
        variants=tuple(variants),
    )


def _as(value: BaseModel, model: type[M]) -> M:
    assert isinstance(value, model)  # arms hold the model of their kind
    return value


def load_experiments(rules_dir: Path, base: Mapping[Kind, BaseModel]) -> LoadedExperiments:
    """experiments.yaml of the rules directory (none: no experiments), each variant's
    rules validated, routing variants held to the directory's queues."""
    path = rules_dir / EXPERIMENTS_FILE
    if not path.exists():
        return LoadedExperiments()
    definitions = load_yaml_model(path, Experiments)
    raw = {kind: read_yaml(rules_dir / f"{kind}.yaml") for kind in KINDS}
    arms: dict[tuple[str, str], Arm] = {}
    hashes: dict[str, str] = {}
    problems: list[str] = []
    for experiment in definitions.experiments:
        files: dict[str, str] = {}
        for variant in experiment.variants:
            try:
                arm, own = _arm(path, rules_dir, experiment, variant, raw, base)
            except ConfigError as exc:
                problems.append(str(exc))
                continue
            files |= {f"{variant.name}/{kind}": h for kind, h in own.items()}
            if arm is not None:
                arms[(experiment.name, variant.name)] = arm
        hashes[experiment.name] = definition_hash(experiment, files)
    if problems:
        raise ConfigError("\n".join(problems))
    return LoadedExperiments(definitions, arms, hashes)


def _arm(
    path: Path,
    rules_dir: Path,
    experiment: Experiment,
    variant: Variant,
    raw: Mapping[Kind, Any],
    base: Mapping[Kind, BaseModel],
) -> tuple[Arm | None, dict[Kind, str]]:
    """The variant's rules and the content hashes of the files it names."""
    where = f"{experiment.name}/{variant.name}"
    rules: dict[Kind, BaseModel] = {}
    own: dict[Kind, str] = {}
    for kind in variant.changes():
        data, label = raw[kind], f"{path} ({where}, overrides.{kind})"
        name = variant.file(kind)
        if name is not None:
            file = rules_dir / name
            data, label = read_yaml(file), f"{file} ({where})"
            own[kind] = content_hash(_validated(kind, data, label))
        if kind in variant.overrides:
            data = merged(data, variant.overrides[kind])
        rules[kind] = _validated(kind, data, label)
    routing = rules.get("routing")
    if isinstance(routing, RoutingRules):
        unknown = sorted(set(routing.queues) - set(_as(base["routing"], RoutingRules).queues))
        if unknown:
            raise ConfigError(
                f"{path}: {where}: queues {', '.join(unknown)} are not in routing.yaml; a "
                "variant routes to the same queues and reps, by other rules or strategies"
            )
    if not rules:
        return None, own
    versions = {kind: rule_version(kind, model, where) for kind, model in rules.items()}
    return Arm(rules, versions), own


def _validated(kind: Kind, data: Any, label: str) -> BaseModel:
    try:
        return MODELS[kind].model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise ConfigError(describe_errors(label, exc)) from exc


def definition_hash(experiment: Experiment, files: Mapping[str, str]) -> str:
    """What must not change while the experiment runs: its definition (window,
    shares, overrides) and the content of the files its variants name."""
    text = experiment.model_dump_json() + json.dumps(dict(sorted(files.items())))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_recorded(
    record: Path, loaded: LoadedExperiments, now: datetime, force: bool
) -> list[str]:
    """Compare the running experiments with the definitions recorded at the last
    start, then record the current ones. A running experiment that changed or was
    removed is a `ConfigError`, unless `force`; what was forced is returned."""
    recorded: dict[str, dict[str, str]] = (
        json.loads(record.read_text(encoding="utf-8")) if record.exists() else {}
    )
    changed = []
    for name, entry in recorded.items():
        current = loaded.definitions.named(name)
        ran = datetime.fromisoformat(entry["start"]) <= now < datetime.fromisoformat(entry["end"])
        if current is None and ran:
            changed.append(f"{name} was removed while it runs (until {entry['end']})")
        elif (
            current is not None
            and (ran or current.running(now))
            and loaded.hashes[name] != entry["hash"]
        ):
            changed.append(f"{name} changed while it runs ({entry['start']} to {entry['end']})")
    if changed and not force:
        raise ConfigError(
            f"{EXPERIMENTS_FILE}: "
            + "; ".join(changed)
            + ". Its leads would change variant or rules mid-run. Undo the change, or end "
            "the experiment and start a new one under another name; to start anyway, "
            "set LEADFLOW_FORCE_EXPERIMENT_CHANGES=true (leadflow worker --force)."
        )
    current_record = {
        e.name: {
            "hash": loaded.hashes[e.name],
            "start": e.start.isoformat(),
            "end": e.end.isoformat(),
        }
        for e in loaded.definitions.experiments
    }
    record.parent.mkdir(parents=True, exist_ok=True)
    partial = record.with_suffix(".json.partial")
    partial.write_text(json.dumps(current_record, indent=2), encoding="utf-8")
    partial.replace(record)
    return changed
