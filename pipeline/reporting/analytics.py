"""KPI maths the SQL hands over to Python: distribution fairness (each rep's
leads against what the routing rules entitled them to, and a Gini) and volume
anomalies (a day outside a channel's usual band)."""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from statistics import mean, pstdev
from typing import Any

from pipeline.domain.distribute.routing import Rep, RoutingQueue, RoutingRules

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
class Handed:
    """A lead a queue gave out: when, to whom, and when it closed (freeing its
    owner's open-lead cap); `account_owner`: it went to the company's account
    owner by rule, not by the queue's strategy."""

    at: datetime
    owner: str
    closed_at: datetime | None = None
    account_owner: bool = False


def expected_leads(
    queue: RoutingQueue, handed: Sequence[Handed], since: datetime | None = None
) -> dict[str, float]:
    """How many of these leads each rep (and the manager) was entitled to as configured.

    Each lead is shared out at the moment it was routed, the way the router
    would share it if leads were divisible: among the reps available then
    (working hours, out of office; judged by the minute) by their weight
    (`weighted`; every other strategy aims at equal shares), each at most up
    to what their caps still allow (`max_per_day` per UTC day, `max_open`
    until the lead closes); what a capped rep cannot take goes to the others,
    what nobody can take to the manager (without one: to every rep by weight,
    as the router does). An account owner's lead is theirs. The leads before
    `since` count for the caps only. So a distribution that follows the rules
    gives each rep leads = expected, whatever their absences and caps.
    """
    weights = {r.id: (r.weight if queue.strategy == "weighted" else 1) for r in queue.reps}
    per_day = {r.id: r.max_per_day for r in queue.reps if r.max_per_day is not None}
    max_open = {r.id: r.max_open for r in queue.reps if r.max_open is not None}
    fallback = {queue.manager.id: 1} if queue.manager else weights
    present = _Presence(queue.reps)
    uncapped: dict[tuple[str, ...], dict[str, float]] = {}  # shares by who is there
    expected: dict[str, float] = {}
    today: dict[str, float] = {}
    day: date | None = None
    open_now: dict[str, float] = {}
    closing: list[tuple[datetime, int, dict[str, float]]] = []  # a heap by closing time
    for n, lead in enumerate(sorted(handed, key=lambda h: h.at)):
        at = lead.at.astimezone(UTC)
        while closing and closing[0][0] <= at:
            for rep, x in heapq.heappop(closing)[2].items():
                open_now[rep] = open_now.get(rep, 0.0) - x
        if at.date() != day:
            day, today = at.date(), {}
        if lead.account_owner:
            shares = {lead.owner: 1.0}
        else:
            there = present.at(at)
            room = {
                rep: min(
                    per_day[rep] - today.get(rep, 0.0) if rep in per_day else math.inf,
                    max_open[rep] - open_now.get(rep, 0.0) if rep in max_open else math.inf,
                )
                for rep in there
                if rep in per_day or rep in max_open
            }
            if all(r >= 1.0 for r in room.values()):  # no cap can bind on one lead
                if there not in uncapped:
                    uncapped[there] = _share(weights, dict.fromkeys(there, math.inf), fallback)
                shares = uncapped[there]
            else:
                shares = _share(weights, {rep: room.get(rep, math.inf) for rep in there}, fallback)
        for rep, x in shares.items():
            if rep in per_day:
                today[rep] = today.get(rep, 0.0) + x
            if rep in max_open:
                open_now[rep] = open_now.get(rep, 0.0) + x
            if since is None or at >= since:
                expected[rep] = expected.get(rep, 0.0) + x
        if max_open and lead.closed_at is not None:
            heapq.heappush(closing, (lead.closed_at.astimezone(UTC), n, shares))
    return expected


class _Presence:
    """Who of the reps is available at a moment (`Rep.available`), asked in time
    order: the answer is kept for the minute it was asked for."""

    def __init__(self, reps: Sequence[Rep]) -> None:
        self.reps = reps
        self.always = all(r.hours is None and not r.out_of_office for r in reps)
        self.minute: datetime | None = None
        self.there = tuple(r.id for r in reps)

    def at(self, moment: datetime) -> tuple[str, ...]:
        if self.always:
            return self.there
        minute = moment.replace(second=0, microsecond=0)
        if minute != self.minute:
            self.minute = minute
            self.there = tuple(r.id for r in self.reps if r.available(minute))
        return self.there


def _share(
    weights: Mapping[str, int], room: Mapping[str, float], fallback: Mapping[str, int]
) -> dict[str, float]:
    """One lead shared by weight among those with room, the rest to `fallback`."""
    shares = _fill(1.0, weights, room)
    left = 1.0 - sum(shares.values())
    if left > 1e-9:
        for rep, x in _fill(left, fallback, dict.fromkeys(fallback, math.inf)).items():
            shares[rep] = shares.get(rep, 0.0) + x
    return shares


def _fill(amount: float, weights: Mapping[str, int], room: Mapping[str, float]) -> dict[str, float]:
    """`amount` shared by weight among those with room, none beyond their room
    (water-filling: a full one's rest is shared by the others)."""
    given: dict[str, float] = {}
    open_to = {rep for rep, r in room.items() if r > 1e-9}
    while amount > 1e-9 and open_to:
        total = sum(weights[rep] for rep in open_to)
        full = {rep for rep in open_to if amount * weights[rep] / total >= room[rep]}
        if not full:
            for rep in open_to:
                given[rep] = given.get(rep, 0.0) + amount * weights[rep] / total
            break
        for rep in full:
            given[rep] = given.get(rep, 0.0) + room[rep]
            amount -= room[rep]
        open_to -= full
    return given


def fairness_rows(
    routing: RoutingRules | None,
    handed: Mapping[str, Sequence[Handed]],
    since: datetime | None = None,
) -> list[dict[str, Any]]:
    """Per queue and rep: leads against the leads they were entitled to
    (`expected_leads`), as shares of the queue and as a ratio (1.0: as
    configured), and the queue's Gini over those ratios (0: all as configured).

    Every configured rep has a row; a manager, or an owner no longer listed,
    once they have leads or are expected to."""
    queues = routing.queues if routing is not None else {}
    rows: list[dict[str, Any]] = []
    for name in sorted({*queues, *handed}):
        given = handed.get(name, [])
        counted = [h for h in given if since is None or h.at >= since]
        leads = Counter(h.owner for h in counted)
        queue = queues.get(name)
        expected = expected_leads(queue, given, since) if queue is not None else {}
        reps = [r.id for r in queue.reps] if queue is not None else []
        reps += sorted({*leads, *expected} - set(reps))
        ratios = {rep: leads[rep] / expected[rep] for rep in reps if expected.get(rep, 0) > 1e-9}
        queue_gini = round(gini(list(ratios.values())), 4)
        total_leads, total_expected = sum(leads.values()), sum(expected.values())
        for rep in sorted(reps):
            mine = expected.get(rep, 0.0)
            rows.append(
                {
                    "queue": name,
                    "rep": rep,
                    "leads": leads[rep],
                    "expected_leads": round(mine, 2),
                    "share_of_leads": round(leads[rep] / total_leads, 4) if total_leads else 0.0,
                    "share_of_capacity": round(mine / total_expected, 4) if total_expected else 0.0,
                    "load_vs_capacity": round(ratios[rep], 4) if rep in ratios else None,
                    "queue_gini": queue_gini,
                }
            )
    return rows


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
