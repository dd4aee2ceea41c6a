"""The statistics glue against published worked examples, and its input checks."""

import math
import statistics

import pytest
from scipy.stats import norm

from routing.stats.significance import (
    TestResult,
    latency_percentiles,
    two_proportion_test,
    welch_t_test,
    welch_t_test_from_stats,
    wilson_interval,
)


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        # Newcombe (1998), Statistics in Medicine 17:857-872, worked examples, method 3 (score interval
        # without continuity correction).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0000, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_matches_newcombe(successes, n, low, high):
    assert wilson_interval(successes, n) == pytest.approx((low, high), abs=5e-5)


@pytest.mark.parametrize("confidence", [0.5, 0.8, 0.95, 0.999])
def test_wilson_agrees_with_statsmodels(confidence):
    """The closed form (no scipy import) against statsmodels' implementation, ends included."""
    from statsmodels.stats.proportion import proportion_confint

    for n in (1, 2, 3, 7, 40, 263, 10**6):
        for successes in sorted({0, 1, n // 3, n // 2, n - 1, n} & set(range(n + 1))):
            low, high = proportion_confint(successes, n, alpha=1 - confidence, method="wilson")
            assert wilson_interval(successes, n, confidence) == pytest.approx((low, high), abs=1e-14)
        assert wilson_interval(0, n, confidence).low == 0.0 and wilson_interval(n, n, confidence).high == 1.0


def test_wilson_narrows_with_lower_confidence():
    low95, high95 = wilson_interval(81, 263)
    low80, high80 = wilson_interval(81, 263, confidence_level=0.80)
    assert low95 < low80 < 81 / 263 < high80 < high95


@pytest.mark.parametrize(
    ("args", "field"),
    [((0, 0), "n must be positive"), ((5, 4), "successes must be between"), ((-1, 4), "successes")],
)
def test_wilson_rejects_bad_counts(args, field):
    with pytest.raises(ValueError, match=field):
        wilson_interval(*args)


@pytest.mark.parametrize("confidence", [0, 1, 1.5])
def test_wilson_rejects_bad_confidence(confidence):
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 2, confidence)


@pytest.mark.parametrize(
    ("s1", "n1", "s2", "n2", "z"),
    [
        # Larson & Farber, Elementary Statistics, 8.4: seat belts, 86% of 150 cars vs 74% of 200 pickups.
        (129, 150, 148, 200, 2.73),
        # Triola, Elementary Statistics, 9.1: deaths without (31/2823) and with (16/7765) seat belts.
        (31, 2823, 16, 7765, 6.11),
    ],
)
def test_two_proportion_z_matches_textbooks(s1, n1, s2, n2, z):
    result = two_proportion_test(s1, n1, s2, n2)
    assert result.statistic == pytest.approx(z, abs=0.005)
    assert result.pvalue == pytest.approx(2 * norm.sf(abs(result.statistic)))


@pytest.mark.parametrize(("s1", "n1", "s2", "n2"), [(129, 150, 148, 200), (31, 2823, 16, 7765), (1, 2, 0, 3), (5, 10, 4, 10)])
def test_two_proportion_agrees_with_statsmodels(s1, n1, s2, n2):
    from statsmodels.stats.proportion import proportions_ztest

    result = two_proportion_test(s1, n1, s2, n2)
    assert (result.statistic, result.pvalue) == pytest.approx(proportions_ztest([s1, s2], [n1, n2]), rel=1e-12)


def test_two_proportion_is_antisymmetric():
    forward = two_proportion_test(129, 150, 148, 200)
    backward = two_proportion_test(148, 200, 129, 150)
    assert backward.statistic == pytest.approx(-forward.statistic)
    assert backward.pvalue == pytest.approx(forward.pvalue)


@pytest.mark.parametrize(("s1", "s2"), [(0, 0), (10, 20)])
def test_two_proportion_without_variance_is_not_significant(s1, s2):
    assert two_proportion_test(s1, 10, s2, 20) == TestResult(0.0, 1.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [((1, 0, 1, 2), "n1 must be positive"), ((1, 2, 3, 2), "s2 must be between 0 and n2")],
)
def test_two_proportion_rejects_bad_counts(args, message):
    with pytest.raises(ValueError, match=message):
        two_proportion_test(*args)


# Wikipedia, "Welch's t-test", example 1 (unequal sample variances): t = -2.46, nu ~ 24.99, p = 0.021.
A1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
A2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]


def test_welch_matches_wikipedia_example():
    result = welch_t_test(A1, A2)
    assert result.statistic == pytest.approx(-2.46, abs=0.005)
    assert result.pvalue == pytest.approx(0.021, abs=0.0005)


def test_welch_from_stats_agrees_with_samples():
    result = welch_t_test_from_stats(
        statistics.mean(A1), statistics.stdev(A1), len(A1), statistics.mean(A2), statistics.stdev(A2), len(A2)
    )
    assert result.statistic == pytest.approx(welch_t_test(A1, A2).statistic)
    assert result.pvalue == pytest.approx(welch_t_test(A1, A2).pvalue)


def test_welch_from_stats_matches_navarro():
    # Navarro, Learning Statistics with R, 13.4: Anastasia (74.533, 8.999, 15) vs Bernadette
    # (69.056, 5.775, 18): t = 2.034, p = 0.054.
    result = welch_t_test_from_stats(74.533, 8.999, 15, 69.056, 5.775, 18)
    assert result.statistic == pytest.approx(2.034, abs=0.0005)
    assert result.pvalue == pytest.approx(0.054, abs=0.0005)


def test_welch_rejects_tiny_samples_and_negative_sd():
    with pytest.raises(ValueError, match="b needs at least 2 values"):
        welch_t_test([1.0, 2.0], [3.0])
    with pytest.raises(ValueError, match="n1 must be at least 2"):
        welch_t_test_from_stats(1, 1, 1, 2, 1, 5)
    with pytest.raises(ValueError, match="sd2 must not be negative"):
        welch_t_test_from_stats(1, 1, 5, 2, -1, 5)


def test_welch_with_no_spread_is_degenerate_not_an_error():
    assert welch_t_test_from_stats(10, 0, 5, 12, 0, 5).pvalue == 0.0
    assert math.isnan(welch_t_test_from_stats(10, 0, 5, 10, 0, 5).pvalue)


def test_percentiles_interpolate_linearly():
    # Wikipedia, "Percentile", linear interpolation between closest ranks (C = 1): the 40th percentile
    # of {15, 20, 35, 40, 50} is 29.
    assert latency_percentiles([15, 20, 35, 40, 50], qs=(40,)) == {40: 29.0}
    result = latency_percentiles(range(1, 101))
    assert result == pytest.approx({50: 50.5, 95: 95.05, 99: 99.01})


def test_percentiles_reject_empty_and_out_of_range():
    with pytest.raises(ValueError, match="values must not be empty"):
        latency_percentiles([])
    with pytest.raises(ValueError, match=r"qs must lie in \[0, 100\]"):
        latency_percentiles([1.0], qs=(50, 101))


def test_intervals_have_scipys_shape():
    interval = wilson_interval(81, 263)
    assert (interval.low, interval.high) == tuple(interval) and interval.low < 81 / 263 < interval.high
