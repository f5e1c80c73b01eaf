"""Live A/B experiments on the rules (experiments.yaml beside the rule files).

An experiment runs from `start` to `end` and splits the leads decided meanwhile
into variants by share. A lead's variant follows from its lead id alone (a hash
salted with the experiment's name), so every worker, every restart and every
redelivery puts the lead in the same variant, and two experiments split the
leads independently of each other. A variant changes the scoring, nurture or
routing rules of its leads: with a rule file of its own, overrides merged into
the rules directory's file, or both (the file, then the overrides); a variant
that changes nothing is the control. Loading the variants' rules is the
configuration's job (`pipeline.config.experiments`); this module is the pure
part: the definitions, their checks, and who is in which variant.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, model_validator

from pipeline.domain.rules import RULE
from schemas.envelope import AwareDatetime

Kind = Literal["scoring", "nurture", "routing"]
KINDS: tuple[Kind, ...] = ("scoring", "nurture", "routing")
"""The rules an experiment may vary: the qualification, nurture and routing decisions'."""
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,59}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
"""Lower-case letters, digits, '-' and '_': a name goes into reports, URLs and SQL."""


def _midnight(value: Any) -> Any:
    """A date alone (`start: 2026-12-01`, quoted or not) means its midnight, UTC."""
    if isinstance(value, str) and len(value.strip()) == 10:
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            return value
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, time(), UTC)
    return value


Moment = Annotated[AwareDatetime, BeforeValidator(_midnight)]


class Variant(BaseModel):
    """One arm of an experiment: its share of the leads and what it changes."""

    model_config = RULE

    name: Name
    share: float = Field(gt=0, le=100, description="Percent of the experiment's leads.")
    scoring: str | None = Field(default=None, description="A scoring file, beside the rules.")
    nurture: str | None = Field(default=None, description="A nurture file, beside the rules.")
    routing: str | None = Field(default=None, description="A routing file, beside the rules.")
    overrides: dict[Kind, dict[str, Any]] = Field(
        default_factory=dict,
        description="Keys merged into the rules (mappings key by key, anything else "
        "replaced), e.g. scoring: {thresholds: {mql: 40}}.",
    )

    def file(self, kind: Kind) -> str | None:
        value: str | None = getattr(self, kind)
        return value

    def changes(self) -> tuple[Kind, ...]:
        """The kinds of rules this variant runs differently from the rules directory."""
        return tuple(k for k in KINDS if self.file(k) is not None or k in self.overrides)


class Experiment(BaseModel):
    """A named comparison of rule variants over a time window."""

    model_config = RULE

    name: Name
    description: str | None = None
    start: Moment
    end: Moment
    variants: list[Variant] = Field(min_length=2)

    @model_validator(mode="after")
    def _consistent(self) -> Experiment:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end:%Y-%m-%d %H:%M}) must come after start")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"two variants share a name: {', '.join(names)}")
        total = sum(v.share for v in self.variants)
        if abs(total - 100) > 1e-6:
            raise ValueError(f"the variants' shares add up to {total:g}; they must make 100")
        if not self.changes():
            raise ValueError("no variant changes any rules; give one a file or overrides")
        return self

    def changes(self) -> tuple[Kind, ...]:
        """Every kind of rules some variant changes."""
        return tuple(k for k in KINDS if any(k in v.changes() for v in self.variants))

    def running(self, now: datetime) -> bool:
        return self.start <= now < self.end

    @property
    def control(self) -> Variant:
        """What the others are compared with: the first variant that changes nothing,
        else the first variant."""
        return next((v for v in self.variants if not v.changes()), self.variants[0])

    def variant_of(self, lead_id: uuid.UUID) -> Variant:
        """The lead's variant: its place in [0, 1) against the shares, in their order."""
        place, reached = bucket(self.name, lead_id), 0.0
        for variant in self.variants:
            reached += variant.share / 100
            if place < reached:
                return variant
        return self.variants[-1]  # rounding of the shares' sum


def bucket(experiment: str, lead_id: uuid.UUID) -> float:
    """The lead's stable place in [0, 1) for one experiment (SHA-256, not Python's
    `hash`, which changes with every process)."""
    digest = hashlib.sha256(f"{experiment}\x1f{lead_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class Experiments(BaseModel):
    """experiments.yaml: every experiment, past, running and planned."""

    model_config = RULE

    experiments: list[Experiment] = Field(default_factory=list)

    @model_validator(mode="after")
    def _apart(self) -> Experiments:
        names = [e.name for e in self.experiments]
        if len(set(names)) != len(names):
            raise ValueError(f"two experiments share a name: {', '.join(names)}")
        for i, one in enumerate(self.experiments):
            for other in self.experiments[i + 1 :]:
                shared = set(one.changes()) & set(other.changes())
                if shared and one.start < other.end and other.start < one.end:
                    raise ValueError(
                        f"experiments {one.name} and {other.name} overlap in time and both "
                        f"change the {', '.join(sorted(shared))} rules: a lead in both would "
                        "have two sets; let one end before the other starts"
                    )
        return self

    def running(self, now: datetime) -> list[Experiment]:
        return [e for e in self.experiments if e.running(now)]

    def named(self, name: str) -> Experiment | None:
        return next((e for e in self.experiments if e.name == name), None)


def merged(base: Any, overrides: Any) -> Any:
    """`base` with `overrides` laid over it: mappings merge key by key, anything else
    (a number, a list) is replaced, so an override says only what it changes."""
    if not isinstance(base, dict) or not isinstance(overrides, dict):
        return overrides
    return {**base, **{k: merged(base.get(k), v) for k, v in overrides.items()}}
