"""The A/B statistics against published figures: Wilson and Newcombe intervals
(Newcombe 1998), Student-t quantiles, Welch's test (the textbook example) and the
usual sample sizes."""

from __future__ import annotations

from statistics import mean, variance

import pytest

from pipeline.domain.report.experiment_stats import (
    Sample,
    compare_means,
    compare_proportions,
    mean_interval,
    needed_for_means,
    needed_for_proportions,
    proportion_difference,
    t_value,
    welch,
    wilson,
)


@pytest.mark.parametrize(
    ("x", "n", "low", "high"),
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_intervals_match_newcombe_1998(x: int, n: int, low: float, high: float) -> None:
    ci = wilson(x, n)
    assert (round(ci.low, 4), round(ci.high, 4)) == (low, high)


def test_wilson_of_nothing_is_everything() -> None:
    ci = wilson(0, 0)
    assert (ci.low, ci.high) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("a", "b", "low", "high"),
    [
        ((48, 80), (56, 70), 0.0524, 0.3339),
        ((3, 10), (9, 10), 0.1705, 0.8090),
        ((0, 20), (0, 10), -0.1611, 0.2775),
    ],
)
def test_newcombe_differences_match_the_paper(
    a: tuple[int, int], b: tuple[int, int], low: float, high: float
) -> None:
    ci = proportion_difference(*a, *b)
    assert (round(ci.low, 4), round(ci.high, 4)) == (low, high)


@pytest.mark.parametrize(
    ("df", "t"),
    [
        (1, 12.706205),
        (2, 4.302653),
        (3, 3.182446),
        (5, 2.570582),
        (10, 2.228139),
        (30, 2.042272),
        (1000, 1.962339),
    ],
)
def test_t_quantiles_match_the_tables(df: int, t: float) -> None:
    assert t_value(df) == pytest.approx(t, abs=1e-5)


A1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
A2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]


def sample(values: list[float]) -> Sample:
    return Sample(len(values), mean(values), variance(values))


def test_welch_matches_the_textbook_example() -> None:
    a, b = sample(A1), sample(A2)  # Welch: t = -2.46, df = 24.99, p = 0.021
    ci = welch(a, b)
    assert ci is not None
    se = (a.variance / a.n + b.variance / b.n) ** 0.5
    assert (b.mean - a.mean) / se == pytest.approx(2.46, abs=0.005)
    assert (ci.high - ci.low) / 2 == pytest.approx(2.0595 * se, rel=1e-3)  # t(0.975, 25)
    assert ci.excludes_zero()  # p = 0.021 < 0.05
    assert welch(Sample(1, 3.0, 0.0), b) is None  # one value tells no spread
    assert welch(Sample(5, 3.0, 0.0), Sample(5, 3.0, 0.0)) is None
    one = mean_interval(a)
    assert (
        one is not None and one.low < a.mean < one.high and mean_interval(Sample(1, 2, 0)) is None
    )


def test_sample_sizes_are_the_usual_ones() -> None:
    assert needed_for_proportions(0.2, 0.3) == 294  # 80 % power, 5 % two-sided
    assert needed_for_proportions(0.3, 0.3) is None
    assert needed_for_means(Sample(10, 100, 100), Sample(10, 105, 100)) == 63  # d = 0.5


def test_the_statement_says_whether_it_is_significant_and_what_it_needs() -> None:
    clear = compare_proportions((0, 4), (4, 4), leads=(4, 4))
    assert clear.significant and clear.statement == "+100.0 points: significant at 95 %"
    assert clear.more_leads is None

    early = compare_proportions((20, 100), (30, 100), leads=(100, 100))
    assert not early.significant and early.more_leads == 194  # 294 per variant, 100 so far
    assert early.statement == (
        "+10.0 points: not significant yet; about 194 more leads per variant "
        "would show a difference this size"
    )
    # a rate of MQLs: the MQLs still needed are more leads (half the leads become MQLs)
    step = compare_proportions((20, 100), (30, 100), leads=(200, 200))
    assert step.more_leads == 388

    assert compare_proportions((0, 0), (3, 5), leads=(0, 5)).statement == "not enough data yet"
    assert compare_proportions((3, 10), (3, 10), leads=(10, 10)).statement == "no difference so far"

    faster = compare_means(sample(A2), sample(A1), leads=(15, 15), unit="min")
    assert faster.significant and faster.statement.startswith("-2.2 min: significant")
    none = compare_means(Sample(1, 4.0, 0.0), Sample(0, 0.0, 0.0), leads=(3, 3), unit="min")
    assert none.statement == "not enough data yet"
