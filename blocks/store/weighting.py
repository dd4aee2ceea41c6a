"""SQL for statistics over sampled rows: every count, sum, mean and percentile weighted by `weight`.

A stored execution or decision stands for `weight` = 1/rate outcomes (routing/calls/sampling.py), so
the Horvitz-Thompson sums below estimate the totals over every outcome without bias; with no sampling
every weight is 1 and each expression equals its unweighted form (counts come back as the same
integers, and a group whose rows share one weight keeps `quantile_cont`'s linear interpolation).
Confidence intervals and tests need the evidence, not the estimate: `EFFECTIVE_N` is Kish's effective
sample size, (sum w)^2 / sum w^2, which is the number of rows when the weights are equal.
"""

from __future__ import annotations

WEIGHT = "weight"

EFFECTIVE_N = f"(sum({WEIGHT}) ^ 2 / sum({WEIGHT} ^ 2))"
"""Kish's effective sample size of a group."""

CDF = "_weighted_cdf"
"""Column `weighted_cdf_rows` adds: the weight share of the group at or below each row's value."""


def count(condition: str | None = None) -> str:
    """Estimated number of outcomes (meeting `condition`), as the BIGINT the count columns hold."""
    return f"round({weight_sum(condition)})::BIGINT"


def weight_sum(condition: str | None = None) -> str:
    """Estimated number of outcomes (meeting `condition`), unrounded."""
    return f"coalesce(sum({WEIGHT})" + (f" FILTER (WHERE {condition})" if condition else "") + ", 0)"


def share(condition: str) -> str:
    """Estimated share of outcomes meeting `condition`."""
    return f"({weight_sum(condition)} / sum({WEIGHT}))"


def total(expression: str) -> str:
    """Estimated sum of `expression` over every outcome (NULLs count as nothing)."""
    return f"sum(({expression}) * {WEIGHT})"


def mean(expression: str) -> str:
    """Weighted mean of `expression` over the rows where it is not NULL (NULL when there are none)."""
    return f"(sum(({expression}) * {WEIGHT}) / sum({WEIGHT}) FILTER (WHERE ({expression}) IS NOT NULL))"


def stddev(expression: str) -> str:
    """Weighted standard deviation: `stddev_samp` when the group's weights are equal, else the
    reliability-weighted one with Bessel's correction on the effective sample size; 0 for one row."""
    m, n_eff = mean(expression), EFFECTIVE_N
    variance = f"({mean(f'({expression}) * ({expression})')} - {m} * {m})"
    weighted = f"sqrt(greatest({variance}, 0) * {n_eff} / nullif({n_eff} - 1, 0))"
    return (f"coalesce(CASE WHEN min({WEIGHT}) = max({WEIGHT}) THEN stddev_samp({expression}) "
            f"ELSE {weighted} END, 0)")


def weighted_cdf_rows(partition: str, value: str, source: str) -> str:
    """`source` (a FROM clause body, with its WHERE) with the `_weighted_cdf` of `value` within each
    group of `partition`: the input `quantile` reads."""
    return (
        f"SELECT *, sum({WEIGHT}) OVER (PARTITION BY {partition} ORDER BY {value} ROWS UNBOUNDED PRECEDING) "
        f"/ sum({WEIGHT}) OVER (PARTITION BY {partition}) AS {CDF} FROM {source}"
    )


def quantile(value: str, q: float) -> str:
    """The `q` quantile of `value` in the group: `quantile_cont` when the group's weights are equal
    (then it is unbiased as it stands), else the weighted inverted CDF (the smallest value whose
    weight share reaches q). Needs the rows of `weighted_cdf_rows`."""
    return (
        f"CASE WHEN min({WEIGHT}) = max({WEIGHT}) THEN quantile_cont({value}, {q}) "
        f"ELSE min({value}) FILTER (WHERE {CDF} >= {q} - 1e-12) END"
    )
