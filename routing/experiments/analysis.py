"""Analysis of an experiment at any peek, and the decision rule.

Per task, a variant records: success (the variant's own pick succeeded, before any fallback rescued
the task: that is what the policy decided), cost and latency over every attempt, whether the pick
errored (a transport or target error, not a wrong answer), and quality and user feedback when known.
The reward is L x success - cost.

The rule, for each treatment against control, in this order:
1. sample-ratio mismatch (chi-square p < srm_alpha): `continue`, flagged; no verdict from broken assignment;
2. a guardrail regressed (mean cost, share of tasks slower than control's p95, error rate: the lower
   bound of its always-valid confidence sequence above the margin): `rollback`;
3. fewer than `min_samples` tasks in a variant: `continue`;
4. the primary metric's confidence sequence entirely below 0: `rollback` (a regression);
   entirely above 0: `ship_treatment`;
5. inside (-mde, +mde): `futile` (no effect worth having); below +mde: `keep_control`;
6. `max_samples` reached: `keep_control`; otherwise `continue`.
Alpha is split across treatments (Bonferroni); every bound is always-valid, so this rule may be applied
at every peek without inflating false positives. Fixed-horizon tests (Welch, chi-square or Fisher,
Cohen's d) and Beta P(best) are reported beside it for reading, not for deciding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from pydantic import BaseModel

from routing.experiments.assignment import ExperimentConfig
from routing.experiments.fixed_horizon import (
    beta_p_best,
    chi_square,
    cohens_d,
    fisher_exact,
    sample_ratio_mismatch,
    t_test,
)
from routing.experiments.sequential import msprt
from routing.stats.significance import wilson_interval


class Verdict(StrEnum):
    CONTINUE = "continue"
    SHIP_TREATMENT = "ship_treatment"
    KEEP_CONTROL = "keep_control"
    ROLLBACK = "rollback"
    FUTILE = "futile"


@dataclass(frozen=True)
class VariantData:
    """One variant's tasks as arrays (quality and feedback NaN where unknown)."""

    name: str
    success: np.ndarray
    cost: np.ndarray
    latency_ms: np.ndarray
    errored: np.ndarray
    quality: np.ndarray
    feedback: np.ndarray

    @classmethod
    def from_rows(cls, name: str, rows: Sequence[Mapping[str, object]]) -> VariantData:
        def column(key: str) -> np.ndarray:
            return np.array([math.nan if r.get(key) is None else float(r[key]) for r in rows], dtype=float)

        return cls(name, column("success"), np.nan_to_num(column("cost")), column("latency_ms"),
                   np.nan_to_num(column("errored")), column("quality"), column("feedback"))  # fmt: skip

    @property
    def n(self) -> int:
        return int(self.success.size)

    def metric(self, name: str, willingness_to_pay: float) -> np.ndarray:
        if name == "success":
            return self.success
        if name == "reward":
            return willingness_to_pay * self.success - self.cost
        raise ValueError(f"unknown metric {name!r}")


class VariantSummary(BaseModel):
    name: str
    n: int
    successes: int
    success_rate: float | None
    success_low: float | None
    success_high: float | None
    mean_reward: float | None
    mean_cost: float | None
    p95_ms: float | None
    error_rate: float | None
    mean_quality: float | None
    mean_feedback: float | None
    p_best: float | None = None


class Bound(BaseModel):
    """An always-valid interval on treatment - control for one metric, and what it says."""

    metric: str
    estimate: float
    low: float
    high: float
    pvalue: float
    margin: float = 0.0
    regressed: bool = False


class Comparison(BaseModel):
    treatment: str
    primary: Bound | None
    guardrails: list[Bound]
    fixed_horizon_pvalue: float | None  # Welch (reward) or chi-square/Fisher (success), one look only
    fixed_horizon_test: str | None
    cohens_d: float | None
    verdict: Verdict
    reason: str


class Analysis(BaseModel):
    metric: str
    decision: Verdict
    reason: str
    winner: str | None = None
    variants: list[VariantSummary]
    comparisons: list[Comparison]
    pvalue: float | None  # the primary metric's always-valid p-value (smallest over treatments)
    srm_pvalue: float
    srm: bool


def _mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def summarise(data: VariantData, willingness_to_pay: float) -> VariantSummary:
    n, successes = data.n, int(np.nansum(data.success))
    low, high = wilson_interval(successes, n) if n else (None, None)
    latency = data.latency_ms[np.isfinite(data.latency_ms)]
    return VariantSummary(
        name=data.name, n=n, successes=successes,
        success_rate=successes / n if n else None, success_low=low, success_high=high,
        mean_reward=_mean(data.metric("reward", willingness_to_pay)) if n else None,
        mean_cost=_mean(data.cost) if n else None,
        p95_ms=float(np.percentile(latency, 95)) if latency.size else None,
        error_rate=_mean(data.errored) if n else None,
        mean_quality=_mean(data.quality), mean_feedback=_mean(data.feedback),
    )  # fmt: skip


def difference_bound(
    metric: str, treatment: np.ndarray, control: np.ndarray, alpha: float, tau_sd: float, binary: bool = False
) -> Bound:
    """The always-valid bound on mean(treatment) - mean(control)."""
    estimate = float(treatment.mean() - control.mean())
    if binary:  # smoothed rates keep the variance positive when a variant has all successes
        rates = [(x.sum() + 0.5) / (x.size + 1) for x in (treatment, control)]
        variances = [r * (1 - r) for r in rates]
    else:
        variances = [float(x.var(ddof=1)) for x in (treatment, control)]
    variance = variances[0] / treatment.size + variances[1] / control.size
    pooled_sd = math.sqrt((variances[0] + variances[1]) / 2)
    tau = tau_sd * pooled_sd if pooled_sd > 0 else tau_sd
    result = msprt(estimate, variance, tau, alpha)
    low, high = result.confidence_interval
    return Bound(metric=metric, estimate=estimate, low=low, high=high, pvalue=result.pvalue)


def guardrails(treatment: VariantData, control: VariantData, alpha: float, config: ExperimentConfig) -> list[Bound]:
    """Cost, p95 latency (as the share of tasks slower than control's p95) and error rate."""
    cost = difference_bound("cost", treatment.cost, control.cost, alpha, config.tau_sd)
    cost.margin = config.cost_margin * float(control.cost.mean())
    threshold = float(np.nanpercentile(control.latency_ms, 95))
    slow = difference_bound("p95_latency", (np.nan_to_num(treatment.latency_ms) > threshold).astype(float),
                            (np.nan_to_num(control.latency_ms) > threshold).astype(float), alpha, config.tau_sd, binary=True)  # fmt: skip
    slow.margin = config.latency_margin
    errors = difference_bound("error_rate", treatment.errored, control.errored, alpha, config.tau_sd, binary=True)
    errors.margin = config.error_margin
    for bound in (cost, slow, errors):
        bound.regressed = bound.low > bound.margin
    return [cost, slow, errors]


def _fixed_horizon(metric: str, treatment: VariantData, control: VariantData, willingness_to_pay: float) -> tuple[float, str]:
    if metric == "success":
        s1, s2 = int(treatment.success.sum()), int(control.success.sum())
        table = [[s1, treatment.n - s1], [s2, control.n - s2]]
        if min(min(row) for row in table) < 5:
            return fisher_exact(table).pvalue, "fisher_exact"
        return chi_square(table).pvalue, "chi_square_yates"
    t = t_test(treatment.metric(metric, willingness_to_pay), control.metric(metric, willingness_to_pay))
    return t.pvalue, "welch_t"


def compare(
    treatment: VariantData, control: VariantData, config: ExperimentConfig, alpha: float, srm: bool
) -> Comparison:
    metric, wtp = config.metric, config.willingness_to_pay
    n = min(treatment.n, control.n)
    guards = guardrails(treatment, control, alpha, config) if n >= max(2, config.guardrail_min_samples) else []
    primary = None
    fixed_p, fixed_name, d = None, None, None
    if n >= 2:
        x, y = treatment.metric(metric, wtp), control.metric(metric, wtp)
        primary = difference_bound(metric, x, y, alpha, config.tau_sd, binary=metric == "success")
        fixed_p, fixed_name = _fixed_horizon(metric, treatment, control, wtp)
        d = cohens_d(x, y) if x.std() + y.std() > 0 else None
        d = None if d is None or math.isnan(d) else d
    verdict, reason = _rule(treatment.name, primary, guards, n, config, srm)
    return Comparison(treatment=treatment.name, primary=primary, guardrails=guards, fixed_horizon_pvalue=fixed_p,
                      fixed_horizon_test=fixed_name, cohens_d=d, verdict=verdict, reason=reason)  # fmt: skip


def _rule(name: str, primary: Bound | None, guards: list[Bound], n: int, config: ExperimentConfig, srm: bool) -> tuple[Verdict, str]:
    if srm:
        return Verdict.CONTINUE, "sample-ratio mismatch: assignment does not match the traffic split, no verdict"
    regressed = [g for g in guards if g.regressed]
    if regressed:
        g = regressed[0]
        return Verdict.ROLLBACK, f"{name}: guardrail {g.metric} regressed (rise at least {g.low:.4g} > margin {g.margin:.4g})"
    if primary is None or n < config.min_samples:
        return Verdict.CONTINUE, f"{n} tasks in the smallest variant, {config.min_samples} needed"
    mde = config.effect_floor
    where = f"{config.metric} difference {primary.estimate:+.4g} in [{primary.low:.4g}, {primary.high:.4g}]"
    if primary.high < 0:
        return Verdict.ROLLBACK, f"{name} is worse on {where}"
    if primary.low > 0:
        return Verdict.SHIP_TREATMENT, f"{name} is better on {where}"
    if -mde < primary.low and primary.high < mde:
        return Verdict.FUTILE, f"no effect of {mde:g} or more is left: {where}"
    if primary.high < mde:
        return Verdict.KEEP_CONTROL, f"{name} cannot be better by {mde:g}: {where}"
    if config.max_samples is not None and n >= config.max_samples:
        return Verdict.KEEP_CONTROL, f"{config.max_samples} tasks per variant reached without a verdict: {where}"
    return Verdict.CONTINUE, f"no verdict yet: {where}"


_PRECEDENCE = (Verdict.ROLLBACK, Verdict.SHIP_TREATMENT, Verdict.CONTINUE, Verdict.KEEP_CONTROL, Verdict.FUTILE)


def analyze(
    variants: Sequence[VariantData], weights: Sequence[float], config: ExperimentConfig, posterior: bool = True
) -> Analysis:
    """`variants[0]` is the control; `weights` the configured traffic split. `posterior=False` skips
    P(best), which is for reading and costs most of the time (simulations analysing thousands of peeks)."""
    control, treatments = variants[0], variants[1:]
    srm_result = sample_ratio_mismatch([v.n for v in variants], weights)
    srm = srm_result.pvalue < config.srm_alpha
    alpha = config.alpha / len(treatments)
    comparisons = [compare(t, control, config, alpha, srm) for t in treatments]
    summaries = [summarise(v, config.willingness_to_pay) for v in variants]
    if posterior and all(v.n > 0 for v in variants):
        for summary, p in zip(summaries, beta_p_best([s.successes for s in summaries], [s.n for s in summaries])):
            summary.p_best = p
    # one regressed treatment sends all traffic back; a treatment is shipped only when none regressed
    decision = min((c.verdict for c in comparisons), key=_PRECEDENCE.index)
    chosen = next(c for c in comparisons if c.verdict is decision)
    winner = chosen.treatment if decision is Verdict.SHIP_TREATMENT else control.name if decision in (Verdict.KEEP_CONTROL, Verdict.ROLLBACK) else None
    pvalues = [c.primary.pvalue for c in comparisons if c.primary is not None]
    return Analysis(
        metric=config.metric, decision=decision, reason=chosen.reason, winner=winner, variants=summaries,
        comparisons=comparisons, pvalue=min(pvalues) if pvalues else None, srm_pvalue=srm_result.pvalue, srm=srm,
    )  # fmt: skip
