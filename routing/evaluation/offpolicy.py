"""Estimate what a new policy would have earned, from decisions another policy logged.

Each logged record is (context, action, reward, propensity), the propensity being the probability the
logging policy had of taking that action. For a target policy π(action | context):

- IPS:   V = mean(w_i r_i), w_i = π(a_i | x_i) / propensity_i. Unbiased when every action π can take
  had a positive logging propensity; its variance grows with the weights.
- SNIPS: V = Σ w_i r_i / Σ w_i. Slightly biased, usually far less variable; standard error by the
  delta method, sqrt(Σ w_i² (r_i - V)²) / Σ w_i.
- DR:    V = mean(Σ_a π(a | x_i) q(x_i, a) + w_i (r_i - q(x_i, a_i))), with a reward model q. Unbiased
  if either the propensities or q are right; the default q is the mean logged reward per (context,
  action), falling back to the action's mean, then the overall mean (fitted on the same logs).

Intervals are normal approximations (mean ± z·SE), as in Dudík, Langford & Li (2011).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from typing import NamedTuple

import numpy as np
from pydantic import BaseModel
from scipy.stats import norm

TargetPolicy = Callable[[Hashable, str], float]
RewardModel = Callable[[Hashable, str], float]


class Logged(NamedTuple):
    context: Hashable
    action: str
    reward: float
    propensity: float


class Estimate(BaseModel):
    estimator: str
    value: float
    std_error: float
    ci_low: float
    ci_high: float
    confidence: float
    n: int
    effective_sample_size: float

    def covers(self, value: float) -> bool:
        return self.ci_low <= value <= self.ci_high


def _arrays(logs: Sequence[Logged], policy: TargetPolicy) -> tuple[np.ndarray, np.ndarray]:
    """(importance weights, rewards), validating propensities and target probabilities."""
    if not logs:
        raise ValueError("no logged records")
    weights = np.empty(len(logs))
    rewards = np.empty(len(logs))
    for i, record in enumerate(logs):
        if not 0 < record.propensity <= 1:
            raise ValueError(f"record {i}: propensity must be in (0, 1], got {record.propensity}")
        if not math.isfinite(record.reward):
            raise ValueError(f"record {i}: reward must be finite, got {record.reward}")
        p = policy(record.context, record.action)
        if not 0 <= p <= 1:
            raise ValueError(f"record {i}: target policy probability must be in [0, 1], got {p}")
        weights[i] = p / record.propensity
        rewards[i] = record.reward
    return weights, rewards


def _estimate(name: str, value: float, se: float, weights: np.ndarray, confidence: float) -> Estimate:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    z = float(norm.ppf(0.5 + confidence / 2))
    total = weights.sum()
    ess = float(total**2 / (weights**2).sum()) if total > 0 else 0.0
    return Estimate(
        estimator=name,
        value=float(value),
        std_error=float(se),
        ci_low=float(value - z * se),
        ci_high=float(value + z * se),
        confidence=confidence,
        n=len(weights),
        effective_sample_size=ess,
    )


def _mean_and_se(values: np.ndarray) -> tuple[float, float]:
    se = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else math.inf
    return float(values.mean()), float(se)


def ips(logs: Sequence[Logged], policy: TargetPolicy, confidence: float = 0.95) -> Estimate:
    weights, rewards = _arrays(logs, policy)
    value, se = _mean_and_se(weights * rewards)
    return _estimate("ips", value, se, weights, confidence)


def snips(logs: Sequence[Logged], policy: TargetPolicy, confidence: float = 0.95) -> Estimate:
    weights, rewards = _arrays(logs, policy)
    total = weights.sum()
    if total == 0:
        raise ValueError("the target policy gives probability 0 to every logged action")
    value = float((weights * rewards).sum() / total)
    se = float(np.sqrt((weights**2 * (rewards - value) ** 2).sum()) / total)
    return _estimate("snips", value, se, weights, confidence)


def fit_reward_model(logs: Sequence[Logged]) -> RewardModel:
    """Mean logged reward per (context, action), else per action, else overall."""
    by_pair: dict[tuple[Hashable, str], list[float]] = defaultdict(lambda: [0.0, 0])
    by_action: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for record in logs:
        for bucket in (by_pair[(record.context, record.action)], by_action[record.action]):
            bucket[0] += record.reward
            bucket[1] += 1
    overall = sum(r.reward for r in logs) / len(logs) if logs else 0.0

    def model(context: Hashable, action: str) -> float:
        total, n = by_pair.get((context, action)) or by_action.get(action) or (overall, 1)
        return total / n

    return model


def doubly_robust(
    logs: Sequence[Logged],
    policy: TargetPolicy,
    actions: Sequence[str],
    reward_model: RewardModel | None = None,
    confidence: float = 0.95,
) -> Estimate:
    """DR estimate; `actions` are every action the target policy can take."""
    weights, rewards = _arrays(logs, policy)
    q = reward_model or fit_reward_model(logs)
    values = np.empty(len(logs))
    for i, record in enumerate(logs):
        direct = sum(policy(record.context, a) * q(record.context, a) for a in actions)
        values[i] = direct + weights[i] * (rewards[i] - q(record.context, record.action))
    value, se = _mean_and_se(values)
    return _estimate("doubly_robust", value, se, weights, confidence)
