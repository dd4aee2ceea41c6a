"""Off-policy estimators: hand-computed values, and coverage of a value known analytically."""

from __future__ import annotations

import math

import numpy as np
import pytest

from routing.evaluation.offpolicy import Logged, doubly_robust, fit_reward_model, ips, snips

ACTIONS = ["a", "b", "c"]
# Mean reward of each action per context, the logging policy and a target policy.
MEANS = {0: {"a": 0.2, "b": 0.5, "c": 0.8}, 1: {"a": 0.7, "b": 0.4, "c": 0.1}}
LOGGING = {0: {"a": 0.5, "b": 0.3, "c": 0.2}, 1: {"a": 0.2, "b": 0.3, "c": 0.5}}
TARGET = {0: {"a": 0.1, "b": 0.1, "c": 0.8}, 1: {"a": 0.8, "b": 0.1, "c": 0.1}}
# Contexts are equally likely: V = Σ_x 0.5 Σ_a π(a|x) μ(x, a)
TRUE_VALUE = sum(0.5 * sum(TARGET[x][a] * MEANS[x][a] for a in ACTIONS) for x in (0, 1))


def target(context, action) -> float:
    return TARGET[context][action]


def logged(n: int, seed: int) -> list[Logged]:
    rng = np.random.default_rng(seed)
    logs = []
    for _ in range(n):
        x = int(rng.integers(2))
        a = rng.choice(ACTIONS, p=[LOGGING[x][b] for b in ACTIONS])
        logs.append(Logged(x, str(a), float(rng.random() < MEANS[x][a]), LOGGING[x][a]))
    return logs


def test_true_value_is_what_the_tables_say() -> None:
    assert pytest.approx(0.5 * (0.02 + 0.05 + 0.64) + 0.5 * (0.56 + 0.04 + 0.01)) == TRUE_VALUE


def test_hand_computed_example() -> None:
    logs = [
        Logged(0, "a", 1.0, 0.5),
        Logged(0, "c", 1.0, 0.2),
        Logged(1, "a", 0.0, 0.2),
        Logged(1, "c", 1.0, 0.5),
    ]
    # weights: 0.1/0.5 = 0.2, 0.8/0.2 = 4, 0.8/0.2 = 4, 0.1/0.5 = 0.2
    assert ips(logs, target).value == pytest.approx((0.2 + 4 + 0 + 0.2) / 4)
    assert snips(logs, target).value == pytest.approx((0.2 + 4 + 0 + 0.2) / 8.4)
    # DR with q = 0.5 everywhere: direct term 0.5, plus mean of w (r - 0.5)
    correction = (0.2 * 0.5 + 4 * 0.5 + 4 * -0.5 + 0.2 * 0.5) / 4
    assert doubly_robust(logs, target, ACTIONS, lambda x, a: 0.5).value == pytest.approx(0.5 + correction)
    assert ips(logs, target).effective_sample_size == pytest.approx(8.4**2 / (2 * 0.04 + 2 * 16))


@pytest.mark.slow  # Monte Carlo: simulated logs
@pytest.mark.parametrize("estimator", ["ips", "snips", "doubly_robust"])
def test_estimates_cover_the_true_value(estimator) -> None:
    logs = logged(20_000, seed=1)
    if estimator == "doubly_robust":
        estimate = doubly_robust(logs, target, ACTIONS)
    else:
        estimate = {"ips": ips, "snips": snips}[estimator](logs, target)
    assert estimate.covers(TRUE_VALUE)
    assert estimate.value == pytest.approx(TRUE_VALUE, abs=0.02)
    assert 0 < estimate.std_error < 0.02
    assert estimate.ci_high - estimate.ci_low == pytest.approx(2 * 1.959964 * estimate.std_error)


def test_doubly_robust_with_the_true_reward_model_has_less_variance_than_ips() -> None:
    logs = logged(5_000, seed=2)
    exact = doubly_robust(logs, target, ACTIONS, lambda x, a: MEANS[x][a])
    wrong = doubly_robust(logs, target, ACTIONS, lambda x, a: 0.0)
    plain = ips(logs, target)
    assert exact.std_error < 0.6 * plain.std_error
    assert wrong.value == pytest.approx(plain.value)  # q = 0 reduces DR to IPS
    assert exact.covers(TRUE_VALUE)


@pytest.mark.slow  # Monte Carlo: 100 simulated logs of 1,000 decisions
def test_intervals_cover_at_about_the_nominal_rate() -> None:
    covered = sum(
        snips(logged(1_000, seed), target, confidence=0.9).covers(TRUE_VALUE) for seed in range(100)
    )
    assert 80 <= covered <= 98


def test_reward_model_falls_back_from_pairs_to_actions_to_overall() -> None:
    model = fit_reward_model([Logged(0, "a", 1.0, 0.5), Logged(0, "a", 0.0, 0.5), Logged(1, "b", 1.0, 0.5)])
    assert model(0, "a") == 0.5
    assert model(1, "a") == 0.5
    assert model(9, "z") == pytest.approx(2 / 3)


def test_invalid_records_are_named() -> None:
    with pytest.raises(ValueError, match=r"record 1: propensity must be in \(0, 1\], got 0"):
        ips([Logged(0, "a", 1.0, 0.5), Logged(0, "a", 1.0, 0.0)], target)
    with pytest.raises(ValueError, match="record 0: reward must be finite"):
        ips([Logged(0, "a", math.nan, 0.5)], target)
    with pytest.raises(ValueError, match="target policy probability"):
        ips([Logged(0, "a", 1.0, 0.5)], lambda x, a: 1.5)
    with pytest.raises(ValueError, match="no logged records"):
        snips([], target)
    with pytest.raises(ValueError, match="confidence"):
        ips([Logged(0, "a", 1.0, 0.5)], target, confidence=1.0)
