"""Who gets the credit for a won deal: the touch points of the lead's journey
under seven attribution models, side by side (seed 001 pillar 3, 003 metrics).

A touch is an inquiry attached to the lead (its channel and campaign) or a
tracked activity that names a campaign. Only touches up to the win count.

- first_touch / last_touch: all credit to the first / last touch (the first
  may be a tracked activity before the lead's first inquiry).
- lead_creation: all credit to the inquiry that created the lead – the
  campaign the money report and the `leads` view's `source_campaign` credit.
- linear: equal shares.
- u_shaped: 40 % first touch, 40 % the touch that created the lead, 20 % shared
  by the touches in between.
- w_shaped: 30 % first touch, 30 % lead creation, 30 % the last touch up to the
  opportunity (the win, if the CRM reported no opportunity), 10 % shared by the rest.
- time_decay: a touch's weight halves every `half_life_days` before the win.

Position models: where key positions fall on the same touch their weights add
up; when no other touches are left, the key weights are scaled to 100 %.

The data-driven models (Markov, Shapley), which also learn from journeys that
did not convert, are in `data_driven.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

MODELS = (
    "first_touch",
    "lead_creation",
    "last_touch",
    "linear",
    "u_shaped",
    "w_shaped",
    "time_decay",
)
DEFAULT_HALF_LIFE_DAYS = 7.0
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class TouchPoint:
    at: datetime
    channel: str
    campaign: str
    creates_lead: bool = False


@dataclass(frozen=True)
class Journey:
    """A won lead: its touches, when it became an opportunity and was won, for how much."""

    touches: tuple[TouchPoint, ...]
    won_at: datetime
    revenue: float
    opportunity_at: datetime | None = None

    def counted(self) -> list[TouchPoint]:
        """Touches up to the win, oldest first (all of them if clocks put each after it)."""
        ordered = sorted(self.touches, key=lambda t: t.at)
        before = [t for t in ordered if t.at <= self.won_at]
        return before or ordered


def position_based(count: int, keys: Sequence[tuple[int, float]], rest: float) -> list[float]:
    """Shares for `count` touches: weights at key positions, `rest` spread over the others."""
    shares = [0.0] * count
    for index, weight in keys:
        shares[index] += weight
    others = [i for i in range(count) if i not in {index for index, _ in keys}]
    if others:
        for i in others:
            shares[i] += rest / len(others)
        return shares
    total = sum(shares)
    return [share / total for share in shares]


def shares(
    journey: Journey, half_life_days: float = DEFAULT_HALF_LIFE_DAYS
) -> dict[str, list[float]]:
    """Each model's share per counted touch (each list sums to 1)."""
    touches = journey.counted()
    n = len(touches)
    if n == 0:
        return {model: [] for model in MODELS}
    first, last = 0, n - 1
    created = next((i for i, t in enumerate(touches) if t.creates_lead), first)
    converted_at = journey.opportunity_at or journey.won_at
    opportunity = max((i for i, t in enumerate(touches) if t.at <= converted_at), default=last)
    ages = [(journey.won_at - t.at).total_seconds() / 86400 for t in touches]
    decay = [0.5 ** (max(age, 0.0) / half_life_days) for age in ages]
    return {
        "first_touch": [1.0 if i == first else 0.0 for i in range(n)],
        "lead_creation": [1.0 if i == created else 0.0 for i in range(n)],
        "last_touch": [1.0 if i == last else 0.0 for i in range(n)],
        "linear": [1.0 / n] * n,
        "u_shaped": position_based(n, [(first, 0.4), (created, 0.4)], 0.2),
        "w_shaped": position_based(n, [(first, 0.3), (created, 0.3), (opportunity, 0.3)], 0.1),
        "time_decay": [d / sum(decay) for d in decay],
    }


def attribute(
    journeys: Iterable[Journey],
    key: Callable[[TouchPoint], K],
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
) -> dict[K, dict[str, float]]:
    """Won revenue credited to each key (channel, campaign, …) under every model."""
    credited: dict[K, dict[str, float]] = {}
    for journey in journeys:
        touches = journey.counted()
        for model, model_shares in shares(journey, half_life_days).items():
            for touch, share in zip(touches, model_shares, strict=True):
                row = credited.setdefault(key(touch), dict.fromkeys(MODELS, 0.0))
                row[model] += journey.revenue * share
    return credited
