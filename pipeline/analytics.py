"""KPI maths the SQL hands over to Python: distribution fairness (Gini) and
volume anomalies (a day outside a channel's usual band)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from statistics import mean, pstdev

ANOMALY_WINDOW_DAYS = 28
ANOMALY_MIN_HISTORY_DAYS = 7
ANOMALY_BAND_SIGMAS = 3.0
ANOMALY_MIN_SPREAD = 1.0
"""A channel with a flat history still tolerates ±1 lead a day times the sigmas."""


def gini(values: Sequence[float]) -> float:
    """0: everyone carries the same load; towards 1: one carries it all."""
    n = len(values)
    total = sum(values)
    if n < 2 or total <= 0:
        return 0.0
    differences = sum(abs(a - b) for a in values for b in values)
    return differences / (2 * n * total)


@dataclass(frozen=True)
class Anomaly:
    day: date
    channel: str
    leads: int
    expected: float
    low: float
    high: float

    @property
    def direction(self) -> str:
        return "spike" if self.leads > self.high else "drop"


def volume_anomalies(
    daily: dict[str, dict[date, int]],
    window: int = ANOMALY_WINDOW_DAYS,
    min_history: int = ANOMALY_MIN_HISTORY_DAYS,
    sigmas: float = ANOMALY_BAND_SIGMAS,
) -> list[Anomaly]:
    """Days on which a channel's lead count left mean ± sigmas × spread of the
    `window` days before it (days without leads count as 0; a channel needs
    `min_history` days of history before it can be judged)."""
    found: list[Anomaly] = []
    for channel, counts in sorted(daily.items()):
        if not counts:
            continue
        first, last = min(counts), max(counts)
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        series = [counts.get(d, 0) for d in days]
        for i in range(min_history, len(series)):
            history = series[max(0, i - window) : i]
            expected = mean(history)
            spread = max(pstdev(history), ANOMALY_MIN_SPREAD)
            low, high = max(expected - sigmas * spread, 0.0), expected + sigmas * spread
            if not low <= series[i] <= high:
                found.append(Anomaly(days[i], channel, series[i], expected, low, high))
    return found
