"""A learned win probability beside the rule score (maturity stage 5 of seed 001).

Naive Bayes over closed outcomes: for every criterion of the scoring model a
frequency table counts how often leads with each value were won or lost.
Numbers are bucketed by the criterion's own rating table (so "rating 3" of the
order volume), categories count as themselves. Laplace smoothing keeps a value
seen once from deciding alone. RevOps sees where the rules and the outcomes
disagree; the probability changes a decision only if scoring.yaml says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from pipeline.domain.enrich.profile import field_value
from pipeline.domain.rules import RULE
from schemas.lead import LeadProfile


class Predictive(BaseModel):
    """The `predictive` section of scoring.yaml."""

    model_config = RULE

    smoothing: float = Field(default=1.0, gt=0, description="Laplace: pseudo-count per value.")
    min_outcomes: int = Field(
        default=20, ge=1, description="Closed deals needed before a probability is reported."
    )
    sales_above: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Unset: never overrides the rules. Set: a nurtured lead with at least "
        "this win probability goes to sales.",
    )


class WinCounts(BaseModel):
    """Won/lost counts per (criterion, value); one per partition, summed when read."""

    model_config = ConfigDict(frozen=True)

    won: int = 0
    lost: int = 0
    values: dict[str, dict[str, tuple[int, int]]] = Field(default_factory=dict)

    def learn(self, features: dict[str, str], won: bool) -> WinCounts:
        values = {c: dict(v) for c, v in self.values.items()}
        for criterion, value in features.items():
            w, lo = values.setdefault(criterion, {}).get(value, (0, 0))
            values[criterion][value] = (w + 1, lo) if won else (w, lo + 1)
        return WinCounts(won=self.won + int(won), lost=self.lost + int(not won), values=values)

    @staticmethod
    def total(parts: Iterable[WinCounts]) -> WinCounts:
        won = lost = 0
        values: dict[str, dict[str, tuple[int, int]]] = {}
        for part in parts:
            won, lost = won + part.won, lost + part.lost
            for criterion, table in part.values.items():
                into = values.setdefault(criterion, {})
                for value, (w, lo) in table.items():
                    before = into.get(value, (0, 0))
                    into[value] = (before[0] + w, before[1] + lo)
        return WinCounts(won=won, lost=lost, values=values)

    def win_probability(self, features: dict[str, str], settings: Predictive) -> float | None:
        """P(won | features) by naive Bayes; None until enough deals have closed."""
        if self.won + self.lost < settings.min_outcomes or not self.won or not self.lost:
            return None
        a = settings.smoothing
        log_odds = math.log(self.won / self.lost)
        for criterion, value in features.items():
            table = self.values.get(criterion, {})
            kinds = len(table) + (value not in table)  # an unseen value gets its own slot
            w, lo = table.get(value, (0, 0))
            won_total = sum(c[0] for c in table.values())
            lost_total = sum(c[1] for c in table.values())
            log_odds += math.log((w + a) / (won_total + a * kinds))
            log_odds -= math.log((lo + a) / (lost_total + a * kinds))
        return round(1 / (1 + math.exp(-log_odds)), 4)


def features(profile: LeadProfile, criteria: Iterable[tuple[str, str, int]]) -> dict[str, str]:
    """(criterion id, field, rating) → the value counted: a category, or a number's rating."""
    found = {}
    for criterion, name, rating in criteria:
        value = field_value(profile, name)
        if value is None:
            found[criterion] = "unknown"
        elif isinstance(value, bool):
            found[criterion] = "yes" if value else "no"
        elif isinstance(value, int | float):
            found[criterion] = f"rating {rating}"
        elif isinstance(value, list):
            found[criterion] = ",".join(sorted(v.casefold() for v in value))
        else:
            found[criterion] = value.casefold()
    return found
