"""Data-driven attribution maths (Markov removal effects, Shapley values) on cases
worked out by hand; pure, no I/O."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.domain.report.data_driven import (
    Credit,
    KeyPath,
    markov,
    removal_effects,
    shapley,
)


def won(*keys: str, value: float = 0.0) -> KeyPath[str]:
    return KeyPath(keys, True, value)


def lost(*keys: str) -> KeyPath[str]:
    return KeyPath(keys, False)


Model = Callable[[list[KeyPath[str]]], dict[str, Credit]]


def approx(credit: dict[str, Credit]) -> dict[str, tuple[object, object]]:
    return {k: (pytest.approx(c.conversions), pytest.approx(c.revenue)) for k, c in credit.items()}


# [a] won 100, [a, b] won 400, [b] twice not converted: start → a ½, → b ½;
# a → conversion ½, → b ½; b → conversion ⅓, → null ⅔.
MIXED = [won("a", value=100), won("a", "b", value=400), lost("b"), lost("b")]


@pytest.mark.parametrize("model", [markov, shapley])
def test_a_single_channel_world_gets_everything(model: Model) -> None:
    paths = [won("a", value=100), won("a", "a", value=200), lost("a"), lost("a", "a")]
    assert approx(model(paths)) == {"a": (2, 300)}


@pytest.mark.parametrize("model", [markov, shapley])
def test_symmetric_channels_share_equally(model: Model) -> None:
    paths = [won("a", "b", value=300), won("b", "a", value=300), lost("a"), lost("b")]
    assert approx(model(paths)) == {"a": (1, 300), "b": (1, 300)}


def test_markov_removal_effects_by_hand() -> None:
    """P(conversion) = ½·⅔ + ½·⅓ = ½. Without a only start → b → conversion is left
    (⅙): a's effect is ⅔; without b, start → a → conversion (¼): b's is ½. In value,
    a conversion ending at a is worth 100, at b 400: E[value] = 125, through a
    ½·(50 + ½·400/3) = 175/3, through b ¾·400/3 = 100."""
    effects = removal_effects(MIXED)
    assert effects.conversions == pytest.approx({"a": 2 / 3, "b": 1 / 2})
    assert effects.revenue == pytest.approx({"a": (175 / 3) / 125, "b": 100 / 125})
    assert approx(markov(MIXED)) == {
        "a": (2 * 4 / 7, 500 * 7 / 19),
        "b": (2 * 3 / 7, 500 * 12 / 19),
    }


def test_a_key_repeated_back_to_back_is_one_step() -> None:
    doubled = [
        KeyPath(tuple(k for key in p.keys for k in (key, key)), p.converted, p.value) for p in MIXED
    ]
    assert removal_effects(doubled) == removal_effects(MIXED)


def test_shapley_by_hand() -> None:
    """Rates: {a} 1, {b} 0, {a, b} 1. The {a, b} conversion: a adds 1 alone and 1
    after b; b adds 0 alone and 0 after a – all of it is a's. Revenue per journey:
    {a} 100, {b} 0, {a, b} 400: a ½·100 + ½·400, b ½·0 + ½·300."""
    assert approx(shapley(MIXED)) == {"a": (2, 100 + 250), "b": (0, 150)}


def test_shapley_weighs_non_converting_journeys_through_the_rates() -> None:
    """{a}: 10 of 100 convert, {b}: 30 of 100, {a, b}: 40 of 100. Of the 40: a's value
    is ½·0.1 + ½·(0.4 − 0.3) = 0.1, b's ½·0.3 + ½·(0.4 − 0.1) = 0.3 – 10 and 30."""
    paths = [won("a")] * 10 + [lost("a")] * 90 + [won("b")] * 30 + [lost("b")] * 70
    paths += [won("a", "b")] * 40 + [lost("b", "a")] * 60
    assert approx(shapley(paths)) == {"a": (20, 0), "b": (60, 0)}


def test_shapley_gives_negative_credit_to_a_key_that_lowers_the_rate() -> None:
    """{a} converts 2 of 2, {a, b} 1 of 2: b's value in {a, b} is ½·0 + ½·(0.5 − 1)."""
    paths = [won("a"), won("a"), won("a", "b"), lost("a", "b")]
    assert approx(shapley(paths)) == {"a": (3.5, 0), "b": (-0.5, 0)}


def test_shapley_is_exact_for_many_keys_either_way_it_finds_the_subsets() -> None:
    """Twenty keys (2^20 coalitions) on one path: scanned, each gets 1/20. With
    enough unrelated key sets observed, the subsets are enumerated instead – the
    same credit."""
    keys = [f"k{i:02}" for i in range(20)]
    alone = shapley([won(*keys, value=20), won("k00", value=10), lost("k01")])
    assert sum(c.conversions for c in alone.values()) == pytest.approx(2)
    small = [won("x", "y", value=9), lost("x"), won("y", value=3)]
    padding = [lost(f"p{i}") for i in range(10)]
    assert shapley(small + padding) == {**shapley(small), **shapley(padding)}
    assert approx({k: alone[k] for k in keys[2:]}) == approx({k: alone[keys[2]] for k in keys[2:]})


def test_no_conversions_no_credit() -> None:
    for model in (markov, shapley):
        assert {k: (c.conversions, c.revenue) for k, c in model([lost("a", "b")]).items()} == {
            "a": (0, 0),
            "b": (0, 0),
        }


paths_strategy = st.lists(
    st.builds(
        KeyPath,
        st.lists(st.sampled_from("abcde"), min_size=1, max_size=6).map(tuple),
        st.booleans(),
        st.integers(0, 1000).map(float),
    ),
    min_size=1,
    max_size=40,
)


@given(paths_strategy)
def test_both_models_share_out_exactly_the_conversions_and_revenue(
    paths: list[KeyPath[str]],
) -> None:
    converted = [p for p in paths if p.converted]
    for model in (markov, shapley):
        credit = model(paths)
        assert sum(c.conversions for c in credit.values()) == pytest.approx(len(converted))
        assert sum(c.revenue for c in credit.values()) == pytest.approx(
            sum(p.value for p in converted), abs=1e-6
        )
