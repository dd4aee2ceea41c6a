"""Always-valid inference on a difference of means: the mixture SPRT and its confidence sequence.

With the effect θ = mean(treatment) - mean(control), its estimate θ̂ and variance V = s₁²/n₁ + s₂²/n₂,
and a normal mixture N(0, τ²) over θ, the mixture likelihood ratio (Johari, Pekelis & Walsh 2017,
"Always valid inference", eq. 11; Robbins 1970) is

    Λ = sqrt(V / (V + τ²)) · exp(θ̂² τ² / (2 V (V + τ²)))

and 1/Λ is an always-valid p-value: the chance that it ever falls below α, at any number of peeks, is
at most α under H0 (θ = 0). Inverting it gives a confidence sequence that holds at every peek at once:

    θ̂ ± sqrt( V (V + τ²) / τ² · (log((V + τ²) / V) - 2 log α) )

Variances are plug-in estimates (asymptotically valid, as in the paper). τ sets where power is best:
effects of about τ are found soonest; the analysis takes τ as a share of the pooled sd.
"""

from __future__ import annotations

import math

from routing.errors import ConfigError
from routing.experiments.fixed_horizon import ConfidenceInterval, Inference


def _check(variance: float, tau: float, alpha: float) -> None:
    if not variance >= 0:
        raise ConfigError(f"variance must not be negative, got {variance}")
    if not tau > 0:
        raise ConfigError(f"tau must be positive, got {tau}")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be strictly between 0 and 1, got {alpha}")


def log_mixture_ratio(estimate: float, variance: float, tau: float) -> float:
    """log Λ of the normal-mixture SPRT for H0: θ = 0."""
    _check(variance, tau, 0.5)
    tau2 = tau * tau
    if variance == 0:
        return 0.0 if estimate == 0 else math.inf
    return 0.5 * math.log(variance / (variance + tau2)) + estimate**2 * tau2 / (2 * variance * (variance + tau2))


def msprt(estimate: float, variance: float, tau: float, alpha: float = 0.05) -> Inference:
    """The always-valid test at one peek: statistic log Λ, p-value min(1, 1/Λ), and the confidence
    sequence at level 1 - α."""
    _check(variance, tau, alpha)
    log_ratio = log_mixture_ratio(estimate, variance, tau)
    pvalue = 1.0 if log_ratio <= 0 else math.exp(-log_ratio)
    return Inference(log_ratio, pvalue, confidence_sequence(estimate, variance, tau, alpha), 1 - alpha, estimate)


def confidence_sequence(estimate: float, variance: float, tau: float, alpha: float = 0.05) -> ConfidenceInterval:
    """Bounds on θ valid simultaneously at every peek, at level 1 - α."""
    _check(variance, tau, alpha)
    if variance == 0:
        return ConfidenceInterval(estimate, estimate)
    tau2 = tau * tau
    half = math.sqrt(variance * (variance + tau2) / tau2 * (math.log((variance + tau2) / variance) - 2 * math.log(alpha)))
    return ConfidenceInterval(estimate - half, estimate + half)
