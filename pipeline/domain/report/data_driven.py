"""Data-driven attribution: credit learnt from every journey, converting or not,
instead of fixed by a touch's position (issue 20 point 4). Pure maths over key
sequences; `attribution.py` holds the rule-based models.

A journey is the ordered keys (channel, or channel and campaign) of a lead's
touches up to a won deal, or – when it has not converted – its touches since its
last win (all of them if it never won). Both models share out exactly the
conversions and the revenue of the converting journeys.

- markov: a first-order Markov chain over the keys, `(start)` → touches →
  `(conversion)` or `(null)`, its transition probabilities counted from all
  journeys (a key repeated back to back is one step, as ChannelAttribution
  counts it; self-loops change no removal effect). A key's removal effect is the
  share of the chain's conversion probability lost when every path through the
  key ends in `(null)` – which equals P(a converting walk visits the key), so
  it comes exactly from the fundamental matrix (one n×n inversion, numpy),
  not from simulation. Conversions are shared in proportion to the removal
  effects. Revenue likewise, with each conversion worth the mean deal value of
  the journeys whose last touch was the same key (ChannelAttribution's value
  model, in expectation).
- shapley: journeys are grouped by the set of keys they touched; a set's worth
  is its conversion rate (conversions / journeys with exactly that set; 0 for a
  set no journey had) – that is where non-converting journeys count. Each
  converting set's conversions are shared by the Shapley values of its keys in
  that game (revenue: worth = revenue per journey). A key whose presence goes
  with a lower rate than the sets without it gets negative credit; the credits
  of a set still add up to its conversions. Exact for any number of keys: the
  worth is 0 outside observed sets, so a set of k keys costs min(2^k, number of
  distinct sets) look-ups, never a sampled approximation.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations, groupby, pairwise
from math import comb
from typing import Generic, TypeVar

import numpy as np

from pipeline.domain.report.attribution import Journey, TouchPoint

DATA_DRIVEN_MODELS = ("markov", "shapley")
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class KeyPath(Generic[K]):
    """One journey: its touches' keys oldest first, whether it converted, for how much."""

    keys: tuple[K, ...]
    converted: bool
    value: float = 0.0


@dataclass(frozen=True)
class Credit:
    conversions: float = 0.0
    revenue: float = 0.0


@dataclass(frozen=True)
class RemovalEffects(Generic[K]):
    """Per key: share of conversion probability (and of expected value) lost without it."""

    conversions: dict[K, float]
    revenue: dict[K, float]


def attribute_data_driven(
    won: Iterable[Journey],
    not_converted: Iterable[Sequence[TouchPoint]],
    key: Callable[[TouchPoint], K],
) -> dict[K, dict[str, Credit]]:
    """Each key's credit under both models, from the won deals' journeys (their
    counted touches, as the rule-based models see them) and the touches, oldest
    first, of the journeys that have not converted."""
    paths = [KeyPath(tuple(key(t) for t in j.counted()), True, j.revenue) for j in won]
    paths += [KeyPath(tuple(key(t) for t in touches), False) for touches in not_converted]
    by_model = {"markov": markov(paths), "shapley": shapley(paths)}
    keys = {k for credit in by_model.values() for k in credit}
    return {k: {m: credit.get(k, Credit()) for m, credit in by_model.items()} for k in keys}


def removal_effects(paths: Iterable[KeyPath[K]]) -> RemovalEffects[K]:
    """The first-order Markov chain's removal effects, exact (see the module doc)."""
    steps: dict[K, dict[K, float]] = {}
    ends: dict[K, list[float]] = {}  # key → [conversions, nulls, value] of journeys ending there
    first: dict[K, float] = {}
    for path in paths:
        keys = [k for k, _ in groupby(path.keys)]
        if not keys:
            continue
        first[keys[0]] = first.get(keys[0], 0.0) + 1
        for a, b in pairwise(keys):
            steps.setdefault(a, {})
            steps[a][b] = steps[a].get(b, 0.0) + 1
        end = ends.setdefault(keys[-1], [0.0, 0.0, 0.0])
        if path.converted:
            end[0] += 1
            end[2] += path.value
        else:
            end[1] += 1
    states = sorted({*first, *steps, *ends}, key=repr)
    if not any(e[0] for e in ends.values()):
        return RemovalEffects(dict.fromkeys(states, 0.0), dict.fromkeys(states, 0.0))
    index = {k: i for i, k in enumerate(states)}
    leaving = np.array(
        [sum(steps.get(k, {}).values()) + sum(ends.get(k, [0.0, 0.0])[:2]) for k in states]
    )
    q = np.zeros((len(states), len(states)))  # transitions between keys
    for a, targets in steps.items():
        for b, count in targets.items():
            q[index[a], index[b]] = count
    q /= leaving[:, None]
    to_conversion = np.array([ends.get(k, [0.0])[0] for k in states]) / leaving
    to_value = np.array([ends[k][2] if k in ends else 0.0 for k in states]) / leaving
    start = np.array([first.get(k, 0.0) for k in states]) / sum(first.values())
    # the fundamental matrix N = (I - Q)^-1: N[i, k] visits to k expected from i, so
    # P(ever visit k) = (start N)_k / N[k, k]; I - Q of an absorbing chain is invertible
    fundamental = np.linalg.inv(np.eye(len(states)) - q)
    converts = fundamental @ to_conversion  # P(conversion) from each key
    worth = fundamental @ to_value  # expected value from each key
    reach = (start @ fundamental) / np.diag(fundamental)
    p_value = float(start @ worth)
    by_conversion = reach * converts / float(start @ converts)
    by_value = reach * worth / p_value if p_value else np.zeros(len(states))
    return RemovalEffects(
        {k: float(by_conversion[i]) for i, k in enumerate(states)},
        {k: float(by_value[i]) for i, k in enumerate(states)},
    )


def markov(paths: Sequence[KeyPath[K]]) -> dict[K, Credit]:
    """Conversions and revenue shared in proportion to the Markov removal effects."""
    effects = removal_effects(paths)
    return _credit(
        sum(1 for p in paths if p.converted),
        sum(p.value for p in paths if p.converted),
        _normalised(effects.conversions),
        _normalised(effects.revenue),
    )


def shapley(paths: Iterable[KeyPath[K]]) -> dict[K, Credit]:
    """Each converting key set's conversions and revenue shared by Shapley values
    of the conversion-rate (revenue-per-journey) game over the observed key sets."""
    sets: dict[frozenset[K], list[float]] = {}  # key set → [journeys, conversions, revenue]
    for path in paths:
        if not path.keys:
            continue
        counts = sets.setdefault(frozenset(path.keys), [0.0, 0.0, 0.0])
        counts[0] += 1
        if path.converted:
            counts[1] += 1
            counts[2] += path.value
    worth = {s: (c[1] / c[0], c[2] / c[0]) for s, c in sets.items()}
    credit: dict[K, list[float]] = {k: [0.0, 0.0] for s in sets for k in s}
    for players, (journeys, conversions, revenue) in sets.items():
        if not conversions and not revenue:
            continue
        inside = _observed_subsets(players, worth)
        k = len(players)
        for player in players:
            for coalition, (rate, per_journey) in inside:
                if player in coalition:  # worth gained when `player` joins coalition − player
                    weight = 1 / (k * comb(k - 1, len(coalition) - 1))
                else:  # worth `player` would add to coalition; counted against it
                    weight = -1 / (k * comb(k - 1, len(coalition)))
                credit[player][0] += journeys * weight * rate
                credit[player][1] += journeys * weight * per_journey
    return {k: Credit(c[0], c[1]) for k, c in credit.items()}


def _observed_subsets(
    players: frozenset[K], worth: dict[frozenset[K], tuple[float, float]]
) -> list[tuple[frozenset[K], tuple[float, float]]]:
    """The observed key sets inside `players`: by enumerating its subsets while that
    is cheaper than scanning every observed set, else by the scan."""
    if 2 ** len(players) < len(worth):
        subsets = (
            frozenset(c) for size in range(1, len(players) + 1) for c in combinations(players, size)
        )
        return [(s, worth[s]) for s in subsets if s in worth]
    return [(s, w) for s, w in worth.items() if s <= players]


def _normalised(effects: dict[K, float]) -> dict[K, float]:
    total = sum(effects.values())
    return {k: (v / total if total else 0.0) for k, v in effects.items()}


def _credit(
    conversions: float, revenue: float, by_conv: dict[K, float], by_value: dict[K, float]
) -> dict[K, Credit]:
    return {k: Credit(conversions * by_conv[k], revenue * by_value[k]) for k in by_conv}
