"""Qualify: the weighted scoring matrix of seed 002 §6.4.1, read from YAML.

Each criterion has a rating table (values → rating 1–4) and a weight 1–4, kept
apart so RevOps can change a weight without re-rating; fit = Σ rating × weight.
Behaviour (activities, fading with a half-life) adds to it; purchase-intent
signals take the fast lane to sales; thresholds give the lifecycle status, a
grade (timeframe digit + volume letter) refines hot / warm / cold, and leads
that stay unready too long, or are worth too little, leave the process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, Field, model_validator

from pipeline.domain.enrich.profile import FieldName, Value, field_value
from pipeline.domain.qualify.predictive import Predictive, features
from pipeline.domain.rules import RULE
from schemas.inputs import ActivityType
from schemas.lead import (
    ActivityPoints,
    CriterionScore,
    Decision,
    LeadClass,
    LeadEnriched,
    LeadProfile,
    LeadQualified,
    LifecycleStatus,
    Qualification,
)


class Band(BaseModel):
    """One row of a table; the first row that matches wins.

    Numbers match `min <= value <= max`; text matches any of `values` (case
    ignored; yes/no for yes-no answers); a row with neither matches anything.
    """

    model_config = RULE

    min: float | None = None
    max: float | None = None
    values: list[str] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if self.values is not None and (self.min is not None or self.max is not None):
            raise ValueError("a row uses either min/max or values, not both")
        return self

    def matches(self, value: Value) -> bool:
        if self.values is not None:
            wanted = {v.casefold() for v in self.values}
            given = value if isinstance(value, list) else [_as_text(value)]
            return any(str(g).casefold() in wanted for g in given)
        if self.min is None and self.max is None:
            return True
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


class RatingBand(Band):
    rating: int = Field(ge=1, le=4)


class SymbolBand(Band):
    symbol: str = Field(min_length=1, max_length=2)


def _as_text(value: Value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _shown(value: Value) -> str | None:
    if value is None:
        return None
    return ", ".join(value) if isinstance(value, list) else _as_text(value)


class Criterion(BaseModel):
    model_config = RULE

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str
    field: FieldName
    weight: int = Field(ge=1, le=4)
    ratings: list[RatingBand] = Field(min_length=1)

    def rate(self, profile: LeadProfile) -> CriterionScore:
        value = field_value(profile, self.field)
        rating = 0
        if value is not None:
            rating = next((band.rating for band in self.ratings if band.matches(value)), 0)
        return CriterionScore(
            criterion=self.id,
            value=_shown(value),
            rating=rating,
            weight=self.weight,
            points=rating * self.weight,
        )


def _criterion(
    id: str, label: str, field: str, weight: int, ratings: list[dict[str, object]]
) -> Criterion:
    return Criterion.model_validate(
        {"id": id, "label": label, "field": field, "weight": weight, "ratings": ratings}
    )


PRESETS: dict[str, list[Criterion]] = {
    "bant": [
        _criterion(
            "budget",
            "Budget: expected order volume (EUR)",
            "order_volume_eur",
            3,
            [
                {"min": 250000, "rating": 4},
                {"min": 100000, "rating": 3},
                {"min": 25000, "rating": 2},
                {"rating": 1},
            ],
        ),
        _criterion(
            "authority",
            "Authority: decision maker",
            "decision_maker",
            3,
            [{"values": ["yes"], "rating": 4}, {"values": ["no"], "rating": 1}],
        ),
        _criterion(
            "need",
            "Need: a product and a concrete question",
            "need",
            2,
            [{"values": ["specific"], "rating": 4}, {"values": ["general"], "rating": 2}],
        ),
        _criterion(
            "time",
            "Time: purchase timeframe (months)",
            "purchase_timeframe_months",
            4,
            [
                {"max": 1, "rating": 4},
                {"max": 3, "rating": 3},
                {"max": 6, "rating": 2},
                {"rating": 1},
            ],
        ),
    ]
}
"""Ready-made criteria sets a scoring.yaml can name in `presets`."""


class Classes(BaseModel):
    """hot / warm / cold by purchase timeframe (imminent, ~3 months, later)."""

    model_config = RULE

    hot_within_months: int = Field(ge=0)
    warm_within_months: int = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.warm_within_months < self.hot_within_months:
            raise ValueError("warm_within_months must be at least hot_within_months")
        return self

    def classify(self, timeframe_months: int | None) -> LeadClass:
        if timeframe_months is None:
            return "cold"
        if timeframe_months <= self.hot_within_months:
            return "hot"
        return "warm" if timeframe_months <= self.warm_within_months else "cold"


class Thresholds(BaseModel):
    """Score from which a lead is marketing- (MQL) or sales-qualified (SQL)."""

    model_config = RULE

    mql: int = Field(ge=0)
    sql: int = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.sql < self.mql:
            raise ValueError("the sql threshold must be at least the mql threshold")
        return self

    def status(self, score: int) -> LifecycleStatus:
        if score >= self.sql:
            return "sql"
        return "mql" if score >= self.mql else "lead"


class Behaviour(BaseModel):
    """Points per activity; each fades by half every `half_life_days`."""

    model_config = RULE

    half_life_days: float = Field(default=14, gt=0)
    max_points: int = Field(default=30, ge=0)
    points: dict[ActivityType, float] = Field(default_factory=dict)

    def score(
        self, activities: Sequence[tuple[str, datetime]], now: datetime
    ) -> tuple[int, list[ActivityPoints]]:
        lines: dict[str, ActivityPoints] = {}
        for kind, at in activities:
            worth = self.points.get(kind, 0.0)  # type: ignore[call-overload]
            age_days = max((now - at).total_seconds(), 0.0) / 86400
            faded = worth * 0.5 ** (age_days / self.half_life_days)
            line = lines.get(kind, ActivityPoints(activity=kind, count=0, points=0.0))
            lines[kind] = ActivityPoints(
                activity=kind, count=line.count + 1, points=round(line.points + faded, 2)
            )
        total = sum(line.points for line in lines.values())
        capped = max(-self.max_points, min(self.max_points, total))
        return round(capped), sorted(lines.values(), key=lambda line: -abs(line.points))


class FastLane(BaseModel):
    """Clear purchase intent goes to sales at once (seed 002 §6.4, last paragraph)."""

    model_config = RULE

    activities: list[ActivityType] = Field(default_factory=list)
    within_days: float = Field(default=30, gt=0)
    message_keywords: list[str] = Field(
        default_factory=list, description="Words in the inquiry that ask for a price or offer."
    )

    def signal(
        self, profile: LeadProfile, activities: Sequence[tuple[str, datetime]], now: datetime
    ) -> str | None:
        for kind, at in sorted(activities, key=lambda a: a[1], reverse=True):
            if kind in self.activities and (now - at).total_seconds() <= self.within_days * 86400:
                return kind
        text = (profile.message or "").casefold()
        word = next((w for w in self.message_keywords if w.casefold() in text), None)
        return f"inquiry mentions {word!r}" if word else None


class Grade(BaseModel):
    """The alphanumeric grade of seed 002 §6.4.1: timeframe digit + volume letter, e.g. 1A."""

    model_config = RULE

    timeframe: list[SymbolBand] = Field(min_length=1)
    volume: list[SymbolBand] = Field(min_length=1)
    unknown: str = Field(default="?", min_length=1, max_length=1)

    def of(self, profile: LeadProfile) -> str:
        def symbol(table: list[SymbolBand], value: Value) -> str:
            if value is None:
                return self.unknown
            return next((b.symbol for b in table if b.matches(value)), self.unknown)

        return symbol(self.timeframe, profile.answers.purchase_timeframe_months) + symbol(
            self.volume, profile.answers.order_volume_eur
        )


class Disqualifier(Band):
    """A knock-out: a lead whose field matches is disqualified (with the reason)."""

    field: FieldName
    reason: str


class Retirement(BaseModel):
    """When a lead leaves the process (its data stays): seed 002 §6.4.1."""

    model_config = RULE

    max_iterations: int = Field(default=10, ge=1)
    min_order_volume_eur: float | None = Field(
        default=None, ge=0, description="Below this expected volume the lead is retired."
    )
    requalify_every_days: float | None = Field(
        default=None, gt=0, description="Nurtured leads are qualified again at this interval."
    )


class ScoringModel(BaseModel):
    model_config = RULE

    version: str | None = Field(
        default=None,
        max_length=80,
        description="A name for this version of the rules (e.g. 2026-12 lower MQL bar); "
        "every decision records it with the rules' content hash.",
    )
    presets: list[Literal["bant"]] = Field(default_factory=list)
    criteria: list[Criterion] = Field(default_factory=list)
    classes: Classes
    thresholds: Thresholds
    behaviour: Behaviour = Field(default_factory=Behaviour)
    fast_lane: FastLane = Field(default_factory=FastLane)
    grade: Grade | None = None
    disqualify: list[Disqualifier] = Field(default_factory=list)
    retire: Retirement = Field(default_factory=Retirement)
    predictive: Predictive = Field(default_factory=Predictive)

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        ids = [c.id for c in self.criteria]
        doubled = sorted({i for i in ids if ids.count(i) > 1})
        if doubled:
            raise ValueError(f"criterion ids must be unique; used twice: {', '.join(doubled)}")
        if not self.matrix:
            raise ValueError("no criteria: list some under `criteria` or name a preset (bant)")
        return self

    @property
    def matrix(self) -> list[Criterion]:
        """Preset criteria first (a criterion with the same id replaces one), then the rest."""
        own = {c.id: c for c in self.criteria}
        preset = [own.pop(c.id, c) for name in self.presets for c in PRESETS[name]]
        return preset + [c for c in self.criteria if c.id in own]


@dataclass(frozen=True)
class Signals:
    """What qualification knows beyond the profile: the lead's history so far."""

    activities: Sequence[tuple[str, datetime]] = ()
    iteration: int = 1
    returned: bool = False
    win_probability: float | None = None
    trigger: str = "inquiry"
    customer: bool = False
    """The previous sales cycle was won: a new inquiry is upsell or cross-sell for sales."""


def score_lead(profile: LeadProfile, model: ScoringModel) -> tuple[int, list[CriterionScore]]:
    breakdown = [criterion.rate(profile) for criterion in model.matrix]
    return sum(line.points for line in breakdown), breakdown


def qualify(
    profile: LeadProfile, model: ScoringModel, signals: Signals, now: datetime
) -> Qualification:
    """Score, class, grade, status and decision of one lead, with the reasons."""
    fit, breakdown = score_lead(profile, model)
    behaviour, lines = model.behaviour.score(signals.activities, now)
    score = fit + behaviour
    lead_class = model.classes.classify(profile.answers.purchase_timeframe_months)
    fast_lane = model.fast_lane.signal(profile, signals.activities, now)
    status = model.thresholds.status(score)
    reason = None
    if (
        fast_lane is not None
    ):  # "Hot Leads sind … Interessenten, die ein konkretes Kaufinteresse zeigen"
        status, lead_class = "sql", "hot"
    elif signals.returned and status == "sql":
        status, reason = "mql", "returned by sales: not ready yet"
    decision: Decision = (
        "sales" if fast_lane or lead_class == "hot" or status == "sql" else "nurture"
    )
    if signals.returned and not fast_lane:
        decision = "nurture"
    elif signals.customer and decision == "nurture":
        decision, reason = "sales", "customer asks again: upsell or cross-sell"
    promote = model.predictive.sales_above
    chance = signals.win_probability
    if decision == "nurture" and promote is not None and chance is not None and chance >= promote:
        decision, reason = "sales", f"predicted win probability {chance:.0%}"
    knockout = next((c for c in model.disqualify if _matches(c, profile)), None)
    volume = profile.answers.order_volume_eur
    minimum = model.retire.min_order_volume_eur
    if knockout is not None:
        status, decision, reason = "disqualified", "retire", knockout.reason
    elif decision == "nurture" and signals.iteration >= model.retire.max_iterations:
        status, decision = "retired", "retire"
        reason = f"not sales-ready after {signals.iteration} qualifications"
    elif decision == "nurture" and minimum is not None and volume is not None and volume < minimum:
        status, decision = "retired", "retire"
        reason = f"expected volume {volume:,.0f} EUR below {minimum:,.0f} EUR"
    return Qualification(
        profile=profile,
        score=score,
        breakdown=breakdown,
        lead_class=lead_class,
        status=status,
        decision=decision,
        iteration=signals.iteration,
        fit_score=fit,
        behaviour_score=behaviour,
        behaviour=lines,
        grade=model.grade.of(profile) if model.grade else None,
        fast_lane=fast_lane,
        reason=reason,
        trigger=signals.trigger,
        win_probability=signals.win_probability,
    )


def lead_features(profile: LeadProfile, model: ScoringModel) -> dict[str, str]:
    """What the win model counts for this lead: one value per criterion."""
    return features(profile, [(c.id, c.field, c.rate(profile).rating) for c in model.matrix])


def _matches(condition: Disqualifier, profile: LeadProfile) -> bool:
    value = field_value(profile, condition.field)
    return value is not None and condition.matches(value)


def qualify_lead(
    event: LeadEnriched,
    model: ScoringModel,
    signals: Signals | None = None,
    now: datetime | None = None,
) -> LeadQualified:
    """The first qualification of a freshly enriched lead (or a re-qualification with signals)."""
    at = now or event.occurred_at
    payload = qualify(event.payload, model, signals or Signals(), at)
    return LeadQualified(**event.follow("LeadQualified", payload=payload))


def explain(q: Qualification) -> list[str]:
    """How the score came about, line by line, for a sales rep or RevOps."""
    lines = [
        f"score {q.score} = fit {q.fit_score} + behaviour {q.behaviour_score}"
        f"  →  {q.lead_class}, {q.status}, grade {q.grade or '-'}, decision {q.decision}"
        f"  (qualification #{q.iteration}, after {q.trigger})",
        "fit (rating × weight):",
    ]
    for c in q.breakdown:
        shown = "unknown" if c.value is None else c.value
        lines.append(f"  {c.criterion:<22} {shown:<24} {c.rating} × {c.weight} = {c.points}")
    if q.behaviour:
        lines.append("behaviour (points after decay):")
        lines += [f"  {b.activity:<22} {b.count:>3}×  {b.points:+.2f}" for b in q.behaviour]
    if q.fast_lane:
        lines.append(f"fast lane: {q.fast_lane}")
    if q.reason:
        lines.append(f"reason: {q.reason}")
    chance = (
        "not enough closed deals yet" if q.win_probability is None else f"{q.win_probability:.0%}"
    )
    lines.append(f"learned win probability: {chance}")
    if q.profile.missing and (q.profile.missing.must or q.profile.missing.should):
        lines.append(
            "still unknown: " + ", ".join(q.profile.missing.must + q.profile.missing.should)
        )
    return lines
