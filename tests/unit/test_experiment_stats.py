"""Experiment statistics against published reference values and their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from routing.errors import ConfigError
from routing.experiments.fixed_horizon import (
    beta_p_best,
    chi_square,
    cohens_d,
    fisher_exact,
    power_two_proportions,
    sample_ratio_mismatch,
    sample_size_means,
    sample_size_two_proportions,
    t_test,
    t_test_from_stats,
)
from routing.experiments.sequential import confidence_sequence, log_mixture_ratio, msprt

# Wikipedia, "Welch's t-test", worked examples (values published to 2-3 significant figures).
A1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
A2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]
B1 = [17.2, 20.9, 22.6, 18.1, 21.7, 21.4, 23.5, 24.2, 14.7, 21.8]
B2 = [21.5, 22.8, 21.0, 23.0, 21.6, 23.6, 22.5, 20.7, 23.4, 21.8, 20.7, 21.7, 21.5, 22.5, 23.6, 21.5, 22.5, 23.5, 21.5, 21.8]


def test_student_and_welch_t_match_the_published_examples() -> None:
    student, welch = t_test(A1, A2, equal_var=True), t_test(A1, A2)
    assert (round(student.statistic, 2), round(student.pvalue, 3), student.df) == (-2.46, 0.021, 28)
    assert (round(welch.statistic, 2), round(welch.pvalue, 3), round(welch.df, 1)) == (-2.46, 0.021, 25.0)
    student, welch = t_test(B1, B2, equal_var=True), t_test(B1, B2)
    assert (round(student.statistic, 2), round(student.pvalue, 3)) == (-2.10, 0.045)
    assert (round(welch.statistic, 2), round(welch.df, 2), round(welch.pvalue, 3)) == (-1.57, 9.90, 0.149)
    # scipy's shape: the interval is for mean(a) - mean(b) and contains the estimate
    low, high = welch.confidence_interval
    assert welch.estimate == pytest.approx(np.mean(B1) - np.mean(B2))
    assert low < welch.estimate < high and welch.confidence_level == 0.95


@pytest.mark.parametrize("equal_var", [True, False])
def test_t_test_from_summary_statistics_equals_the_one_from_data(equal_var: bool) -> None:
    raw = t_test(B1, B2, equal_var=equal_var)
    summary = t_test_from_stats(np.mean(B1), np.std(B1, ddof=1), len(B1), np.mean(B2), np.std(B2, ddof=1), len(B2), equal_var)
    assert summary.statistic == pytest.approx(raw.statistic)
    assert summary.pvalue == pytest.approx(raw.pvalue)
    assert summary.df == pytest.approx(raw.df)
    assert summary.confidence_interval.low == pytest.approx(raw.confidence_interval.low)
    assert summary.confidence_interval.high == pytest.approx(raw.confidence_interval.high)


def test_fisher_exact_matches_the_tea_tasting_and_dieting_examples() -> None:
    tea = fisher_exact([[3, 1], [1, 3]])  # Fisher (1935): p = 0.4857 two-sided, sample odds ratio 9
    assert tea.statistic == 9 and round(tea.pvalue, 4) == 0.4857
    dieting = fisher_exact([[1, 9], [11, 3]])  # Wikipedia, "Fisher's exact test": p = 0.002759
    assert round(dieting.pvalue, 6) == 0.002759
    low, high = dieting.confidence_interval
    assert low < dieting.estimate < high < 1


def test_chi_square_with_and_without_yates() -> None:
    scipy_docs = chi_square([[10, 10, 20], [20, 20, 20]])  # scipy's chi2_contingency documentation
    assert scipy_docs.statistic == pytest.approx(2.7777777777777777) and scipy_docs.pvalue == pytest.approx(0.2493522087772962)
    a, b, c, d = 12, 5, 7, 9
    n = a + b + c + d
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    plain = chi_square([[a, b], [c, d]], correction=False)
    yates = chi_square([[a, b], [c, d]], correction=True)
    assert plain.statistic == pytest.approx(n * (a * d - b * c) ** 2 / margins)  # Pearson's closed form
    assert yates.statistic == pytest.approx(n * (abs(a * d - b * c) - n / 2) ** 2 / margins)  # Yates (1934)
    assert yates.pvalue > plain.pvalue
    assert yates.estimate == pytest.approx(a / (a + b) - c / (c + d))


def test_cohens_d_is_the_pooled_standardised_difference() -> None:
    n1, n2 = len(B1), len(B2)
    pooled = math.sqrt(((n1 - 1) * np.var(B1, ddof=1) + (n2 - 1) * np.var(B2, ddof=1)) / (n1 + n2 - 2))
    assert cohens_d(B1, B2) == pytest.approx((np.mean(B1) - np.mean(B2)) / pooled)
    assert cohens_d([1, 2, 3, 4], [1, 2, 3, 4]) == 0


def test_power_and_sample_size_match_cohens_tables() -> None:
    # two-sided alpha .05, power .80, per group: G*Power 3.1 (exact noncentral t) d = .2 -> 394, .5 -> 64,
    # .8 -> 26; Cohen (1988, Table 2.4.1) prints 393, 64, 26 (his rounding of 393.4)
    assert [sample_size_means(d) for d in (0.2, 0.5, 0.8)] == [394, 64, 26]
    # Cohen (1988), Table 6.4.1: h = .20 needs 392 per group for power .80 (normal approximation: 392.4)
    p1 = 0.5
    p2 = math.sin(math.asin(math.sqrt(p1)) + 0.1) ** 2  # Cohen's h = 2 asin√p2 - 2 asin√p1 = 0.2
    assert sample_size_two_proportions(p1, p2) in (392, 393)
    assert power_two_proportions(p1, p2, 392) == pytest.approx(0.80, abs=0.005)
    with pytest.raises(ConfigError, match="equal"):
        sample_size_two_proportions(0.3, 0.3)


def _miller_p_b_beats_a(alpha_a: int, beta_a: int, alpha_b: int, beta_b: int) -> float:
    """Evan Miller (2015), "Formulas for Bayesian A/B testing": exact P(p_B > p_A) for integer alpha_B."""
    total = 0.0
    for i in range(alpha_b):
        total += math.exp(special.betaln(alpha_a + i, beta_a + beta_b) - math.log(beta_b + i)
                          - special.betaln(1 + i, beta_b) - special.betaln(alpha_a, beta_a))  # fmt: skip
    return total


@pytest.mark.parametrize(("sa", "na", "sb", "nb"), [(10, 100, 15, 100), (3, 7, 5, 9), (40, 50, 41, 50)])
def test_beta_p_best_matches_millers_closed_form(sa: int, na: int, sb: int, nb: int) -> None:
    p_a, p_b = beta_p_best([sa, sb], [na, nb])
    assert p_b == pytest.approx(_miller_p_b_beats_a(1 + sa, 1 + na - sa, 1 + sb, 1 + nb - sb), abs=1e-6)
    assert p_a + p_b == pytest.approx(1)


def test_beta_p_best_of_three_sums_to_one_and_orders_by_rate() -> None:
    shares = beta_p_best([30, 50, 40], [100, 100, 100])
    assert sum(shares) == pytest.approx(1) and shares[1] > shares[2] > shares[0]


def test_sample_ratio_mismatch_is_detected_on_a_45_55_split_of_a_50_50_test() -> None:
    srm = sample_ratio_mismatch([900, 1100], [0.5, 0.5])
    assert srm.statistic == pytest.approx(20.0) and srm.pvalue < 0.001
    assert srm.pvalue == pytest.approx(stats.chi2.sf(20.0, 1))
    assert sample_ratio_mismatch([1010, 990], [0.5, 0.5]).pvalue > 0.5
    assert sample_ratio_mismatch([4480, 5520], [0.45, 0.55]).pvalue > 0.001  # the configured split is no mismatch


def test_the_mixture_ratio_is_the_ratio_of_marginal_likelihoods() -> None:
    """Λ = N(θ̂; 0, V + τ²) / N(θ̂; 0, V) (Johari et al. 2017, normal mixture over θ)."""
    for estimate, variance, tau in [(0.03, 1e-4, 0.1), (-0.2, 0.01, 0.05), (0.0, 0.5, 1.0)]:
        expected = stats.norm.logpdf(estimate, 0, math.sqrt(variance + tau**2)) - stats.norm.logpdf(estimate, 0, math.sqrt(variance))
        assert log_mixture_ratio(estimate, variance, tau) == pytest.approx(expected)


def test_the_confidence_sequence_is_the_inverted_msprt() -> None:
    """At either end of the confidence sequence the always-valid p-value of that difference is exactly α."""
    estimate, variance, tau, alpha = 0.04, 4e-4, 0.1, 0.05
    low, high = confidence_sequence(estimate, variance, tau, alpha)
    for edge in (low, high):
        assert msprt(estimate - edge, variance, tau, alpha).pvalue == pytest.approx(alpha)
    result = msprt(estimate, variance, tau, alpha)
    assert result.confidence_interval == (low, high) and result.confidence_level == 0.95
    # wider than the fixed-horizon interval, the price of peeking at will
    assert high - estimate > stats.norm.ppf(0.975) * math.sqrt(variance)
