"""Qualify: the weighted scoring matrix of seed 002 §6.4.1, read from YAML.

Each criterion has a rating table (values → rating 1–4) and a weight 1–4, kept
apart so RevOps can change a weight without re-rating; score = Σ rating × weight.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.profile import FieldName, Value, field_value
from schemas.lead import (
    CriterionScore,
    Decision,
    LeadClass,
    LeadEnriched,
    LeadProfile,
    LeadQualified,
    LifecycleStatus,
    Qualification,
)

RULE = ConfigDict(frozen=True, extra="forbid")


class RatingBand(BaseModel):
    """One row of a rating table; the first row that matches gives the rating.

    Numbers match `min <= value <= max`; text matches any of `values` (case
    ignored; yes/no for yes-no answers); a row with neither matches anything.
    """

    model_config = RULE

    rating: int = Field(ge=1, le=4)
    min: float | None = None
    max: float | None = None
    values: list[str] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if self.values is not None and (self.min is not None or self.max is not None):
            raise ValueError("a rating row uses either min/max or values, not both")
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


def _as_text(value: Value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


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
        shown = (
            None
            if value is None
            else ", ".join(value)
            if isinstance(value, list)
            else _as_text(value)
        )
        return CriterionScore(
            criterion=self.id,
            value=shown,
            rating=rating,
            weight=self.weight,
            points=rating * self.weight,
        )


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


class ScoringModel(BaseModel):
    model_config = RULE

    criteria: list[Criterion] = Field(min_length=1)
    classes: Classes
    thresholds: Thresholds

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        ids = [c.id for c in self.criteria]
        doubled = sorted({i for i in ids if ids.count(i) > 1})
        if doubled:
            raise ValueError(f"criterion ids must be unique; used twice: {', '.join(doubled)}")
        return self


def score_lead(profile: LeadProfile, model: ScoringModel) -> tuple[int, list[CriterionScore]]:
    breakdown = [criterion.rate(profile) for criterion in model.criteria]
    return sum(line.points for line in breakdown), breakdown


def qualify_lead(event: LeadEnriched, model: ScoringModel) -> LeadQualified:
    profile = event.payload
    score, breakdown = score_lead(profile, model)
    lead_class = model.classes.classify(profile.answers.purchase_timeframe_months)
    status = model.thresholds.status(score)
    decision: Decision = "sales" if lead_class == "hot" or status == "sql" else "nurture"
    return LeadQualified(
        **event.follow(
            "LeadQualified",
            payload=Qualification(
                profile=profile,
                score=score,
                breakdown=breakdown,
                lead_class=lead_class,
                status=status,
                decision=decision,
                iteration=1,
            ),
        )
    )
