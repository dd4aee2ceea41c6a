"""The few tests the router relies on: closed forms where one exists, scipy where not.

Each function validates its inputs (so a bad count fails here, naming the argument, rather than as a
NaN deep inside a ranking) and states the assumptions under which its answer means anything. Results
have scipy's shape: tests return `statistic` and `pvalue`, intervals a `ConfidenceInterval(low, high)`
at a `confidence_level`. The Wilson interval and the z test are the textbook formulas on the
standard library's normal distribution (statsmodels' `proportion_confint` and `proportions_ztest`
compute the same; the tests check it), and numpy and scipy are imported only by the functions that
use them: `stats` on the command line would otherwise spend most of its start importing them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import NamedTuple


@dataclass(frozen=True)
class TestResult:
    """A test statistic and its two-sided p-value, named as scipy names them."""

    __test__ = False  # not a pytest test class, despite the name

    statistic: float
    pvalue: float


class ConfidenceInterval(NamedTuple):
    """An interval's bounds, as scipy.stats returns them (unpacks as `low, high`)."""

    low: float
    high: float


def _check_counts(successes: int, n: int, successes_name: str = "successes", n_name: str = "n") -> None:
    if n <= 0:
        raise ValueError(f"{n_name} must be positive, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"{successes_name} must be between 0 and {n_name} ({n}), got {successes}")


def wilson_interval(successes: int, n: int, confidence_level: float = 0.95) -> ConfidenceInterval:
    """Wilson score interval for a binomial proportion (no continuity correction).

    Assumes `n` independent trials with one success probability. Unlike the Wald interval it stays
    inside [0, 1] and keeps near-nominal coverage at small n or rates near 0 or 1 (Newcombe 1998).
    """
    _check_counts(successes, n)
    if not 0 < confidence_level < 1:
        raise ValueError(f"confidence_level must be strictly between 0 and 1, got {confidence_level}")
    z = NormalDist().inv_cdf(1 - (1 - confidence_level) / 2)
    rate, shrink = successes / n, 1 + z * z / n
    centre = (rate + z * z / (2 * n)) / shrink
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / shrink
    # exact at the ends (the two terms cancel there, up to rounding)
    return ConfidenceInterval(0.0 if successes == 0 else centre - half, 1.0 if successes == n else centre + half)


def two_proportion_test(s1: int, n1: int, s2: int, n2: int) -> TestResult:
    """Pooled two-proportion z test of H0: p1 == p2 (two-sided); statistic > 0 when p1 > p2.

    Assumes independent samples and enough successes and failures in each (roughly >= 5) for the
    normal approximation; the pooled variance is the one implied by H0.
    """
    _check_counts(s1, n1, "s1", "n1")
    _check_counts(s2, n2, "s2", "n2")
    if s1 + s2 in (0, n1 + n2):  # no variance under H0: the samples cannot be told apart
        return TestResult(0.0, 1.0)
    pooled = (s1 + s2) / (n1 + n2)
    z = (s1 / n1 - s2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return TestResult(z, math.erfc(abs(z) / math.sqrt(2)))


def welch_t_test(a: Sequence[float], b: Sequence[float]) -> TestResult:
    """Welch's unequal-variance t test of H0: mean(a) == mean(b) (two-sided); statistic > 0 when a > b.

    Assumes independent samples whose means are near-normal (true of latencies at the sample sizes
    the router waits for, by the central limit theorem, despite their skew). Needs two values each.
    """
    for name, sample in (("a", a), ("b", b)):
        if len(sample) < 2:
            raise ValueError(f"{name} needs at least 2 values, got {len(sample)}")
    from scipy import stats

    result = stats.ttest_ind(a, b, equal_var=False)
    return TestResult(float(result.statistic), float(result.pvalue))


def welch_t_test_from_stats(
    mean1: float, sd1: float, n1: int, mean2: float, sd2: float, n2: int
) -> TestResult:
    """Welch's t test from summary statistics (sample sd, ddof=1), as a stats snapshot carries them.

    Same assumptions as `welch_t_test`. With both sds zero the answer is degenerate (p = 0 when the
    means differ, NaN when they are equal), as scipy reports it.
    """
    for name, n in (("n1", n1), ("n2", n2)):
        if n < 2:
            raise ValueError(f"{name} must be at least 2, got {n}")
    for name, sd in (("sd1", sd1), ("sd2", sd2)):
        if sd < 0:
            raise ValueError(f"{name} must not be negative, got {sd}")
    import numpy as np
    from scipy import stats

    with np.errstate(divide="ignore", invalid="ignore"):
        result = stats.ttest_ind_from_stats(mean1, sd1, n1, mean2, sd2, n2, equal_var=False)
    return TestResult(float(result.statistic), float(result.pvalue))


def latency_percentiles(values: Iterable[float], qs: Sequence[float] = (50, 95, 99)) -> dict[float, float]:
    """Percentiles of `values` by linear interpolation (Hyndman and Fan type 7, numpy's default)."""
    import numpy as np

    data = np.fromiter(values, dtype=float)
    if data.size == 0:
        raise ValueError("values must not be empty")
    if any(not 0 <= q <= 100 for q in qs):
        raise ValueError(f"qs must lie in [0, 100], got {tuple(qs)}")
    return dict(zip(qs, (float(v) for v in np.percentile(data, qs))))
