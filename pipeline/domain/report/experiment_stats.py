"""The statistics of an A/B comparison: is a variant's difference from the control real?

Proportions (answered in target, each funnel conversion) get Wilson score
intervals, which stay inside [0, 1] and behave with few leads or rates near 0
or 1, and their difference Newcombe's interval built from the two Wilson
intervals. Means (minutes to first contact, revenue per lead) get Welch's
interval, which does not assume the variants vary alike. A difference is
significant when its 95 % interval leaves out zero. Where it does not yet, the
leads still needed are estimated for the difference seen so far, at 80 % power
(the usual sample-size formulas): a rough guide, since the true difference is
what is unknown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

CONFIDENCE = 0.95
POWER = 0.80


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def z_value(confidence: float = CONFIDENCE) -> float:
    """The two-sided normal quantile, 1.96 at 95 %."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def t_value(df: float, confidence: float = CONFIDENCE) -> float:
    """The two-sided Student-t quantile for `df` degrees of freedom (Welch's are not
    whole numbers): Newton's method on the t distribution, from the Cornish-Fisher
    estimate around the normal quantile."""
    z = z_value(confidence)
    x = z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
    for _ in range(20):
        step = (_t_cdf(x, df) - (0.5 + confidence / 2)) / _t_pdf(x, df)
        x -= step
        if abs(step) < 1e-10:
            break
    return x


def _t_pdf(x: float, df: float) -> float:
    scale = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(scale - (df + 1) / 2 * math.log1p(x * x / df))


def _t_cdf(x: float, df: float, steps: int = 400) -> float:
    """0.5 plus the density's integral from 0 to x (Simpson's rule)."""
    h = x / steps
    inner = sum((4 if i % 2 else 2) * _t_pdf(i * h, df) for i in range(1, steps))
    return 0.5 + h / 3 * (_t_pdf(0.0, df) + inner + _t_pdf(x, df))


def wilson(successes: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """The Wilson score interval of `successes` out of `n` ([0, 1] for n = 0)."""
    if n <= 0:
        return Interval(0.0, 1.0)
    z, p = z_value(confidence), successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def proportion_difference(
    x1: int, n1: int, x2: int, n2: int, confidence: float = CONFIDENCE
) -> Interval:
    """Newcombe's hybrid score interval of p2 - p1 (method 10 of his 1998 paper)."""
    p1, p2 = x1 / n1, x2 / n2
    w1, w2 = wilson(x1, n1, confidence), wilson(x2, n2, confidence)
    d = p2 - p1
    low = d - math.sqrt((p2 - w2.low) ** 2 + (w1.high - p1) ** 2)
    high = d + math.sqrt((w2.high - p2) ** 2 + (p1 - w1.low) ** 2)
    return Interval(low, high)


@dataclass(frozen=True)
class Sample:
    """What a mean's comparison needs of one variant: count, mean and sample variance."""

    n: int
    mean: float
    variance: float


def mean_interval(sample: Sample, confidence: float = CONFIDENCE) -> Interval | None:
    """The t interval of one variant's mean (None with fewer than two values)."""
    if sample.n < 2:
        return None
    half = t_value(sample.n - 1, confidence) * math.sqrt(sample.variance / sample.n)
    return Interval(sample.mean - half, sample.mean + half)


def welch(a: Sample, b: Sample, confidence: float = CONFIDENCE) -> Interval | None:
    """Welch's interval of b.mean - a.mean; None with fewer than two values in a
    variant or no spread at all (nothing to estimate the uncertainty from)."""
    if a.n < 2 or b.n < 2:
        return None
    va, vb = a.variance / a.n, b.variance / b.n
    if va + vb <= 0:
        return None
    df = (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
    half = t_value(df, confidence) * math.sqrt(va + vb)
    d = b.mean - a.mean
    return Interval(d - half, d + half)


def needed_for_proportions(p1: float, p2: float) -> int | None:
    """Units per variant that show a difference p1 → p2 at 95 % and 80 % power
    (None: no difference to detect)."""
    if p1 == p2:
        return None
    za, zb = z_value(), NormalDist().inv_cdf(POWER)
    mean = (p1 + p2) / 2
    root = za * math.sqrt(2 * mean * (1 - mean)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil(root**2 / (p1 - p2) ** 2)


def needed_for_means(a: Sample, b: Sample) -> int | None:
    """Values per variant that show the difference of the means seen, at the
    variances seen (None: no difference, or no spread to size it by)."""
    d = b.mean - a.mean
    spread = (a.variance + b.variance) / 2
    if d == 0 or spread <= 0:
        return None
    za, zb = z_value(), NormalDist().inv_cdf(POWER)
    return math.ceil(2 * (za + zb) ** 2 * spread / d**2)


@dataclass(frozen=True)
class Verdict:
    """A variant against the control on one measure, and what that means."""

    difference: float | None
    interval: Interval | None
    significant: bool
    more_leads: int | None
    """Leads per variant still to come before a difference this size would show
    (None: significant already, or nothing to size it by)."""
    statement: str


def verdict(
    difference: float | None,
    interval: Interval | None,
    needed_units: int | None,
    units: tuple[int, int],
    units_per_lead: float,
    shown: str,
) -> Verdict:
    """The plain statement: significant or not, and if not how many more leads.

    `units` are what each variant has of the measure's denominator (leads,
    MQLs, contacted leads, …); `units_per_lead` converts units still needed into
    leads (an MQL-to-SQL rate needs more leads than MQLs). `shown` is the
    difference as the reader sees it (e.g. "+4.2 points")."""
    if difference is None or interval is None:
        return Verdict(difference, interval, False, None, "not enough data yet")
    if interval.excludes_zero():
        return Verdict(difference, interval, True, None, f"{shown}: significant at 95 %")
    if needed_units is None:
        return Verdict(difference, interval, False, None, "no difference so far")
    short = max(needed_units - min(units), 0)
    more = math.ceil(short / units_per_lead) if units_per_lead > 0 else None
    if more is None:
        return Verdict(difference, interval, False, None, f"{shown}: not significant yet")
    return Verdict(
        difference,
        interval,
        False,
        more,
        f"{shown}: not significant yet; about {more:,} more leads per variant "
        "would show a difference this size",
    )


def compare_proportions(
    control: tuple[int, int], variant: tuple[int, int], leads: tuple[int, int]
) -> Verdict:
    """Successes out of units in the control and in the variant; `leads` of both,
    to turn units still needed into leads."""
    (x1, n1), (x2, n2) = control, variant
    if n1 == 0 or n2 == 0:
        return verdict(None, None, None, (n1, n2), 1.0, "")
    p1, p2 = x1 / n1, x2 / n2
    d = p2 - p1
    per_lead = min(n1 / leads[0], n2 / leads[1]) if leads[0] and leads[1] else 0.0
    return verdict(
        d,
        proportion_difference(x1, n1, x2, n2),
        needed_for_proportions(p1, p2),
        (n1, n2),
        per_lead,
        f"{d * 100:+.1f} points",
    )


def compare_means(control: Sample, variant: Sample, leads: tuple[int, int], unit: str) -> Verdict:
    """Welch's comparison of two means; `unit` names them in the statement."""
    d = variant.mean - control.mean
    per_lead = min(control.n / leads[0], variant.n / leads[1]) if leads[0] and leads[1] else 0.0
    return verdict(
        d,
        welch(control, variant),
        needed_for_means(control, variant),
        (control.n, variant.n),
        per_lead,
        f"{d:+,.1f} {unit}",
    )
