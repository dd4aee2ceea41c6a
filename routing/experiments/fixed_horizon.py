"""Fixed-horizon statistics for experiments: thin glue over scipy and statsmodels.

Every test returns an `Inference` shaped like scipy's results (and routing.stats.significance's) (`statistic`, `pvalue`,
`confidence_interval` with `low`/`high`, `confidence_level`), so callers read one shape whatever the
test. Differences are always first sample minus second, as scipy orders them. These are valid at one
planned look; an experiment checked at every peek uses `sequential` for its decision and shows these
beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import integrate, stats
from scipy.stats.contingency import odds_ratio
from statsmodels.stats.power import NormalIndPower, TTestIndPower
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_effectsize

from routing.errors import ConfigError
from routing.stats.significance import ConfidenceInterval


@dataclass(frozen=True)
class Inference:
    """One test's answer; `confidence_interval` is for the effect the test names in `estimate`."""

    statistic: float
    pvalue: float
    confidence_interval: ConfidenceInterval
    confidence_level: float
    estimate: float = math.nan
    df: float | None = None


def _level(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be strictly between 0 and 1, got {confidence}")


def _sample(name: str, values: Sequence[float]) -> np.ndarray:
    data = np.asarray(values, dtype=float)
    if data.ndim != 1 or data.size < 2:
        raise ConfigError(f"{name} needs at least 2 values, got {data.size}")
    if not np.isfinite(data).all():
        raise ConfigError(f"{name} holds a value that is not finite")
    return data


def t_test(a: Sequence[float], b: Sequence[float], equal_var: bool = False, confidence: float = 0.95) -> Inference:
    """Student's (`equal_var=True`) or Welch's t test of mean(a) == mean(b), with the CI of mean(a) - mean(b)."""
    _level(confidence)
    x, y = _sample("a", a), _sample("b", b)
    result = stats.ttest_ind(x, y, equal_var=equal_var)
    ci = result.confidence_interval(confidence)
    return Inference(
        float(result.statistic), float(result.pvalue), ConfidenceInterval(float(ci.low), float(ci.high)),
        confidence, float(x.mean() - y.mean()), float(result.df),
    )


def t_test_from_stats(
    mean1: float, sd1: float, n1: int, mean2: float, sd2: float, n2: int,
    equal_var: bool = False, confidence: float = 0.95,
) -> Inference:  # fmt: skip
    """The same test from summary statistics (sample sd, ddof=1), as the store aggregates them."""
    _level(confidence)
    if min(n1, n2) < 2:
        raise ConfigError(f"each sample needs at least 2 values, got n1={n1}, n2={n2}")
    if min(sd1, sd2) < 0:
        raise ConfigError(f"standard deviations must not be negative, got {sd1}, {sd2}")
    v1, v2 = sd1**2 / n1, sd2**2 / n2
    if equal_var:
        df = n1 + n2 - 2
        pooled = ((n1 - 1) * sd1**2 + (n2 - 1) * sd2**2) / df
        se = math.sqrt(pooled * (1 / n1 + 1 / n2))
    else:
        se = math.sqrt(v1 + v2)
        df = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1)) if se > 0 else n1 + n2 - 2
    diff = mean1 - mean2
    if se == 0:
        return Inference(math.nan, math.nan, ConfidenceInterval(diff, diff), confidence, diff, float(df))
    t = diff / se
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    return Inference(
        t, float(2 * stats.t.sf(abs(t), df)), ConfidenceInterval(diff - half, diff + half), confidence, diff, float(df)
    )


def _table(table: Sequence[Sequence[int]]) -> np.ndarray:
    data = np.asarray(table)
    if data.ndim != 2 or min(data.shape) < 2:
        raise ConfigError(f"a contingency table needs at least 2 rows and 2 columns, got shape {data.shape}")
    if (data < 0).any() or not np.equal(np.mod(data, 1), 0).all():
        raise ConfigError("a contingency table holds non-negative whole counts")
    return data.astype(int)


def _difference_ci(table: np.ndarray, confidence: float) -> tuple[float, ConfidenceInterval]:
    """For a 2x2 table of (success, failure) rows: p(row 0) - p(row 1) with Newcombe's interval."""
    (s1, f1), (s2, f2) = table
    n1, n2 = s1 + f1, s2 + f2
    if min(n1, n2) == 0:
        return math.nan, ConfidenceInterval(math.nan, math.nan)
    low, high = confint_proportions_2indep(s1, n1, s2, n2, method="newcomb", alpha=1 - confidence)
    return s1 / n1 - s2 / n2, ConfidenceInterval(float(low), float(high))


def chi_square(table: Sequence[Sequence[int]], correction: bool = True, confidence: float = 0.95) -> Inference:
    """Pearson's chi-square test of independence; Yates's continuity correction on 2x2 tables when asked.

    For a 2x2 table of (successes, failures) per row the interval is Newcombe's for the difference of
    the two rows' rates; for larger tables there is no single effect and it is NaN.
    """
    _level(confidence)
    data = _table(table)
    result = stats.chi2_contingency(data, correction=correction)
    estimate, ci = _difference_ci(data, confidence) if data.shape == (2, 2) else (math.nan, ConfidenceInterval(math.nan, math.nan))
    return Inference(float(result.statistic), float(result.pvalue), ci, confidence, estimate, float(result.dof))


def fisher_exact(table: Sequence[Sequence[int]], confidence: float = 0.95) -> Inference:
    """Fisher's exact test on a 2x2 table (small counts); the statistic is the sample odds ratio and the
    interval the conditional maximum-likelihood odds ratio's exact interval."""
    _level(confidence)
    data = _table(table)
    if data.shape != (2, 2):
        raise ConfigError(f"Fisher's exact test takes a 2x2 table, got shape {data.shape}")
    result = stats.fisher_exact(data)
    ratio = odds_ratio(data, kind="conditional")
    ci = ratio.confidence_interval(confidence)
    return Inference(float(result.statistic), float(result.pvalue), ConfidenceInterval(float(ci.low), float(ci.high)),
                     confidence, float(ratio.statistic))  # fmt: skip


def cohens_d(a: Sequence[float], b: Sequence[float]) -> float:
    """(mean(a) - mean(b)) / pooled sd (ddof=1): Cohen's (1988) standardised mean difference."""
    x, y = _sample("a", a), _sample("b", b)
    return cohens_d_from_stats(float(x.mean()), float(x.std(ddof=1)), x.size, float(y.mean()), float(y.std(ddof=1)), y.size)


def cohens_d_from_stats(mean1: float, sd1: float, n1: int, mean2: float, sd2: float, n2: int) -> float:
    pooled = math.sqrt(((n1 - 1) * sd1**2 + (n2 - 1) * sd2**2) / (n1 + n2 - 2))
    return (mean1 - mean2) / pooled if pooled > 0 else math.nan


def _rates(p1: float, p2: float) -> float:
    for name, p in (("p1", p1), ("p2", p2)):
        if not 0 < p < 1:
            raise ConfigError(f"{name} must be strictly between 0 and 1, got {p}")
    if p1 == p2:
        raise ConfigError("p1 and p2 are equal: there is no effect to power a test for")
    return float(proportion_effectsize(p1, p2))


def power_two_proportions(p1: float, p2: float, n_per_arm: float, alpha: float = 0.05) -> float:
    """Power of a two-sided two-proportion test at `n_per_arm`, by Cohen's h (arcsine) effect size."""
    return float(NormalIndPower().power(abs(_rates(p1, p2)), nobs1=n_per_arm, alpha=alpha, ratio=1.0))


def sample_size_two_proportions(p1: float, p2: float, power: float = 0.8, alpha: float = 0.05) -> int:
    """Tasks per arm for a two-sided two-proportion test to reach `power` (Cohen's h, equal arms)."""
    n = NormalIndPower().solve_power(abs(_rates(p1, p2)), power=power, alpha=alpha, ratio=1.0)
    return math.ceil(n)


def sample_size_means(effect_size: float, power: float = 0.8, alpha: float = 0.05) -> int:
    """Samples per arm for a two-sided two-sample t test to detect Cohen's d = `effect_size`."""
    if effect_size == 0:
        raise ConfigError("effect_size must not be 0")
    return math.ceil(TTestIndPower().solve_power(abs(effect_size), power=power, alpha=alpha, ratio=1.0))


def beta_p_best(
    successes: Sequence[int], trials: Sequence[int], prior: tuple[float, float] = (1.0, 1.0), points: int = 4001
) -> list[float]:
    """P(each variant has the highest success rate) under independent Beta posteriors:
    P(i best) = ∫ f_i(x) Π_{j≠i} F_j(x) dx, by Simpson's rule on one grid spanning every posterior."""
    if len(successes) != len(trials) or len(trials) < 2:
        raise ConfigError("beta_p_best needs matching successes and trials for at least 2 variants")
    for s, n in zip(successes, trials):
        if not 0 <= s <= n:
            raise ConfigError(f"successes must lie between 0 and trials, got {s} of {n}")
    posteriors = [stats.beta(prior[0] + s, prior[1] + n - s) for s, n in zip(successes, trials)]
    low = min(float(p.ppf(1e-12)) for p in posteriors)
    high = max(float(p.ppf(1 - 1e-12)) for p in posteriors)
    grid = np.linspace(low, high, points)
    densities = np.array([p.pdf(grid) for p in posteriors])
    cdfs = np.array([p.cdf(grid) for p in posteriors])
    shares = []
    for i in range(len(posteriors)):
        others = np.prod(np.delete(cdfs, i, axis=0), axis=0)
        shares.append(float(integrate.simpson(densities[i] * others, x=grid)))
    total = sum(shares)
    return [s / total for s in shares]


def sample_ratio_mismatch(counts: Sequence[int], weights: Sequence[float]) -> Inference:
    """Chi-square goodness of fit of the assignment counts to the configured traffic weights."""
    observed = np.asarray(counts, dtype=float)
    share = np.asarray(weights, dtype=float)
    if observed.size != share.size or observed.size < 2:
        raise ConfigError("sample_ratio_mismatch needs one count per variant and at least 2 variants")
    if (share <= 0).any():
        raise ConfigError(f"traffic weights must be positive, got {list(weights)}")
    if observed.sum() == 0:
        return Inference(0.0, 1.0, ConfidenceInterval(math.nan, math.nan), 0.95)
    result = stats.chisquare(observed, share / share.sum() * observed.sum())
    return Inference(float(result.statistic), float(result.pvalue), ConfidenceInterval(math.nan, math.nan), 0.95,
                     df=float(observed.size - 1))  # fmt: skip
