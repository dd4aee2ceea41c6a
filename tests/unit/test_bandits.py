"""Bandits: convergence, drift recovery, contexts, exact propensities, the Strategy adapter, errors."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import integrate, stats

from routing import Outcome, Router, Target, Task
from routing.strategies.bandits.adapter import BanditStrategy
from routing.strategies.bandits.learners import (
    UCB1,
    EpsilonGreedy,
    GaussianThompsonSampling,
    ThompsonSampling,
)
from routing.strategies.bandits.posteriors import BetaPosteriors

LEARNERS = [EpsilonGreedy, UCB1, ThompsonSampling, GaussianThompsonSampling]
ARMS = ["a", "b", "c"]


def play(bandit, means: dict[str, float], rounds: int, rng: random.Random, context=None) -> list[str]:
    picks = []
    for _ in range(rounds):
        arm = bandit.select(context)
        bandit.update(arm, float(rng.random() < means[arm]), context)
        picks.append(arm)
    return picks


@pytest.mark.parametrize("cls", LEARNERS)
def test_each_learner_converges_to_the_best_arm(cls) -> None:
    bandit = cls(ARMS, seed=1)
    picks = play(bandit, {"a": 0.2, "b": 0.5, "c": 0.8}, 2000, random.Random(2))
    assert Counter(picks[-500:])["c"] / 500 > 0.85
    assert max(bandit.means(), key=lambda a: bandit.means()[a]) == "c"


@pytest.mark.parametrize("cls", LEARNERS)
@pytest.mark.parametrize("forgetting", [{"discount": 0.98}, {"window": 100}])
def test_forgetting_recovers_after_the_best_arm_degrades(cls, forgetting) -> None:
    """'a' drops from 0.9 to 0.2 after 1500 rounds; forgetting moves to 'b' sooner than remembering."""

    def share_of_b_after_drop(**options) -> float:
        bandit = cls(["a", "b"], seed=3, **options)
        rng = random.Random(4)
        play(bandit, {"a": 0.9, "b": 0.6}, 1500, rng)
        return Counter(play(bandit, {"a": 0.2, "b": 0.6}, 300, rng))["b"] / 300

    forgetful, stationary = share_of_b_after_drop(**forgetting), share_of_b_after_drop()
    assert forgetful > 0.7
    assert forgetful > stationary + 0.2


@pytest.mark.parametrize("cls", [EpsilonGreedy, UCB1, ThompsonSampling])
def test_contexts_learn_separately_and_unseen_ones_fall_back_to_the_global_estimate(cls) -> None:
    bandit = cls(["a", "b"], seed=5, prior_strength=10)
    rng = random.Random(6)
    for _ in range(1500):
        play(bandit, {"a": 0.9, "b": 0.1}, 1, rng, context=("qa", "general"))
        play(bandit, {"a": 0.1, "b": 0.7}, 1, rng, context=("code", "coding"))
    assert bandit.probability("a", ("qa", "general")) > 0.9
    assert bandit.probability("b", ("code", "coding")) > 0.9
    # An unseen context reads the global estimate, counted as prior_strength = 10 observations.
    unseen, overall, n = bandit.means(("chat", "general")), bandit.means(), bandit.counts()
    for arm in ("a", "b"):
        assert bandit.counts(("chat", "general"))[arm] == pytest.approx(10)
        if cls is ThompsonSampling:  # Beta(1, 1) prior: mean (1 + s) / (2 + n)
            rate = (overall[arm] * (2 + n[arm]) - 1) / n[arm]
            assert unseen[arm] == pytest.approx((1 + 10 * rate) / 12)
        else:
            assert unseen[arm] == pytest.approx(overall[arm])


def test_prior_strength_zero_keeps_contexts_apart() -> None:
    bandit = ThompsonSampling(["a", "b"], prior_strength=0)
    for _ in range(50):
        bandit.update("a", 1.0, "x")
    assert bandit.means("y") == {"a": 0.5, "b": 0.5}
    assert bandit.means("x")["a"] == pytest.approx(51 / 52)


def trained(cls, seed: int = 7, **options):
    bandit = cls(["a", "b", "c", "d"], seed=seed, **options)
    rng = random.Random(seed)
    for arm, p, n in [("a", 0.3, 10), ("b", 0.5, 14), ("c", 0.55, 30), ("d", 0.7, 3)]:
        for _ in range(n):
            bandit.update(arm, float(rng.random() < p))
    return bandit


@pytest.mark.parametrize("cls", LEARNERS)
def test_propensities_sum_to_one_over_arms_subsets_and_penalties(cls) -> None:
    bandit = trained(cls)
    for arms, penalty in [(None, None), (["b", "c"], None), (None, [0.0, 0.1, 0.3, 0.05]), (["d"], None)]:
        probabilities = bandit.probabilities(arms=arms, penalty=penalty)
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-12)
        assert all(0.0 <= p <= 1.0 for p in probabilities.values())
        assert list(probabilities) == (arms or list(bandit.arms))


@pytest.mark.slow  # Monte Carlo: pick frequencies against propensities
@pytest.mark.parametrize("cls", LEARNERS)
def test_propensities_match_the_frequencies_of_select(cls) -> None:
    bandit = trained(cls, epsilon=0.3) if cls is EpsilonGreedy else trained(cls)
    penalty = [0.0, 0.02, 0.05, 0.1]
    draws = Counter(bandit.select(penalty=penalty) for _ in range(20000))
    for arm, p in bandit.probabilities(penalty=penalty).items():
        assert draws[arm] / 20000 == pytest.approx(p, abs=0.015)


def test_epsilon_greedy_propensity_is_exact() -> None:
    bandit = EpsilonGreedy(["a", "b", "c"], epsilon=0.3)
    assert bandit.probabilities() == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})  # untried first
    for arm, reward in [("a", 0.2), ("b", 0.9), ("c", 0.9)]:
        bandit.update(arm, reward)
    # b and c tie for greedy: each gets half of 1 - epsilon, plus epsilon / k.
    assert bandit.probabilities() == pytest.approx({"a": 0.1, "b": 0.1 + 0.35, "c": 0.1 + 0.35})


def test_ucb1_index_follows_auer() -> None:
    bandit = UCB1(["a", "b"])
    for arm, reward in [("a", 1.0), ("a", 0.0), ("b", 0.4)]:
        bandit.update(arm, reward)
    # a: 0.5 + sqrt(2 ln 3 / 2) = 1.548; b: 0.4 + sqrt(2 ln 3 / 1) = 1.882 -> b.
    assert bandit.probabilities() == {"a": 0.0, "b": 1.0}
    bandit.update("b", 0.0)
    # a: 0.5 + sqrt(2 ln 4 / 2) = 1.677; b: 0.2 + sqrt(2 ln 4 / 2) = 1.377 -> a.
    assert bandit.probabilities() == {"a": 1.0, "b": 0.0}


def test_thompson_propensity_matches_numerical_integration() -> None:
    """P(X_a > X_b) for X_a ~ Beta(4, 8), X_b ~ Beta(6, 5): ∫ f_a F_b by adaptive quadrature."""
    bandit = ThompsonSampling(["a", "b"])
    for arm, wins, losses in [("a", 3, 7), ("b", 5, 4)]:
        for reward in [1.0] * wins + [0.0] * losses:
            bandit.update(arm, reward)
    exact, _ = integrate.quad(lambda x: stats.beta.pdf(x, 4, 8) * stats.beta.cdf(x, 6, 5), 0, 1)
    assert bandit.probability("a") == pytest.approx(exact, abs=2e-3)


def test_thompson_propensities_match_monte_carlo_with_many_arms() -> None:
    rng = np.random.default_rng(8)
    names = [str(i) for i in range(11)]
    bandit = ThompsonSampling(names)
    counts = rng.integers(1, 1500, len(names))
    rates = rng.uniform(0.75, 0.92, len(names))
    for name, n, p in zip(names, counts, rates):
        for _ in range(n):
            bandit.update(name, float(rng.random() < p))
    a = 1 + np.array([bandit.means()[n] * (bandit.counts()[n] + 2) - 1 for n in names])
    b = 2 + np.array([bandit.counts()[n] for n in names]) - a
    draws = rng.beta(a[:, None], b[:, None], size=(len(names), 200_000)).argmax(axis=0)
    reference = np.bincount(draws, minlength=len(names)) / 200_000
    computed = np.array(list(bandit.probabilities().values()))
    assert np.abs(computed - reference).max() < 0.005


@pytest.mark.parametrize(
    ("a", "b", "shift"),
    [
        # Fractional counts put a or b just above 1, where the density's slope is singular at 0 or 1.
        ([1.4, 7.5, 30.2], [9.3, 1.2, 12.7], [0.0, 0.0, 0.0]),
        ([60.0, 55.0, 2.0, 1.0], [40.0, 45.0, 1.0, 1.0], [0.0, 0.02, 0.05, 0.0]),
        ([0.5, 12.5, 3.5], [0.5, 4.5, 0.5], [0.0, 0.0, 0.0]),  # Jeffreys prior: singular densities
    ],
)
def test_pick_propensity_matches_adaptive_quadrature(a, b, shift) -> None:
    """P(X_i - s_i is the largest) = ∫ f_i(x + s_i) Π_{j≠i} F_j(x + s_j) dx, by scipy's adaptive quad
    over scipy.stats.beta."""
    posteriors = BetaPosteriors(len(a)).refresh(a, b)
    shift = np.array(shift)

    def exact(i: int) -> float:
        def integrand(x: float) -> float:
            others = [stats.beta.cdf(x + shift[j], a[j], b[j]) for j in range(len(a)) if j != i]
            return stats.beta.pdf(x + shift[i], a[i], b[i]) * np.prod(others)

        return integrate.quad(integrand, -shift[i], 1 - shift[i], limit=200, points=[0.5, 0.9, 0.99])[0]

    for i in range(len(a)):
        assert posteriors.argmax_probability(i, shift) == pytest.approx(exact(i), abs=2e-4)


@pytest.mark.slow  # Monte Carlo: pick frequencies against propensities
@pytest.mark.parametrize("cls", [ThompsonSampling, GaussianThompsonSampling, EpsilonGreedy])
@pytest.mark.parametrize("willingness_to_pay", [None, 1.0])
def test_logged_propensities_match_the_frequencies_of_the_picks(cls, willingness_to_pay) -> None:
    """Many seeded decisions in one state: each target is always logged with the same propensity, the
    picks follow those propensities (chi-square goodness of fit, targets expected fewer than 5 times
    pooled), and the propensities agree with the full distribution. Priced-in costs shift the draws."""
    names = [f"t{i}" for i in range(6)]
    options = {"epsilon": 0.3} if cls is EpsilonGreedy else {}
    strategy = BanditStrategy(cls, names, seed=14, willingness_to_pay=willingness_to_pay, **options)
    router = Router([Target(name=n) for n in names], strategy)
    rng = random.Random(15)
    for i in range(48):
        rate = 0.6 + 0.02 * (i % 6)
        router.observe(
            Outcome(
                target=names[i % 6],
                task_type="qa",
                success=rng.random() < rate,
                duration_ms=1,
                quality_score=100 * rate * rng.uniform(0.8, 1.2),
                cost=0.01 * (i % 6),
            )
        )
    draws = 4000
    decisions = [router.choose(task()) for _ in range(draws)]
    logged = {d.pick: d.probability for d in decisions}
    assert all(d.probability == logged[d.pick] for d in decisions)
    distribution = strategy.distribution(task(), list(router.targets.values()), router.book)
    assert logged == pytest.approx({name: distribution[name] for name in logged}, abs=1e-3)
    picks = Counter(d.pick for d in decisions)
    frequent = [name for name, p in logged.items() if p * draws >= 5]
    assert len(frequent) >= 2
    expected = [logged[name] * draws for name in frequent]
    observed = [picks[name] for name in frequent]
    rest_expected, rest_observed = draws - sum(expected), draws - sum(observed)
    if rest_expected >= 5:
        expected.append(rest_expected)
        observed.append(rest_observed)
    else:
        expected[-1] += rest_expected
        observed[-1] += rest_observed
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_probabilities_are_recomputed_after_every_update_and_new_arm() -> None:
    """Cached views and posteriors never go stale: a bandit queried between updates agrees with one
    that only sees the final data."""
    rng = random.Random(16)
    history = [(rng.choice("abc"), float(rng.random() < 0.6), rng.choice(["x", "y"])) for _ in range(60)]
    queried, fresh = ThompsonSampling(["a", "b", "c"]), ThompsonSampling(["a", "b", "c"])
    for arm, reward, context in history:
        queried.probabilities(context, ["a", "c"], [0.0, 0.05])
        queried.pick(context)
        queried.update(arm, reward, context)
        fresh.update(arm, reward, context)
    for added in (None, "d"):
        if added:
            queried.add_arm(added)
            fresh.add_arm(added)
        for context in ("x", "y", None):
            subset = queried.probabilities(context, ["a", "c"], [0.0, 0.05])
            assert subset == fresh.probabilities(context, ["a", "c"], [0.0, 0.05])
            assert queried.probabilities(context) == fresh.probabilities(context)


@pytest.mark.parametrize("cls", LEARNERS)
def test_pick_returns_an_arm_with_its_probability(cls) -> None:
    bandit = trained(cls)
    penalty = [0.0, 0.02, 0.05, 0.1]
    full = bandit.probabilities(penalty=penalty)
    for _ in range(20):
        arm, propensity = bandit.pick(penalty=penalty)
        assert propensity == pytest.approx(full[arm], abs=1e-3)


def test_an_arm_that_cannot_win_gets_probability_zero() -> None:
    bandit = ThompsonSampling(["sure", "hopeless", "tied"])
    for _ in range(1000):
        bandit.update("sure", 1.0)
        bandit.update("hopeless", 0.0)
        bandit.update("tied", 1.0)
    probabilities = bandit.probabilities()
    assert probabilities["hopeless"] == 0.0
    assert probabilities["sure"] == pytest.approx(0.5, abs=2e-3)


def test_gaussian_thompson_propensity_matches_the_normal_closed_form() -> None:
    """Two normal draws: P(X_a > X_b) = Φ((μa - μb) / sqrt(σa² + σb²))."""
    bandit = GaussianThompsonSampling(["a", "b"], noise_sd=1.0)
    for arm, rewards in [("a", [0.5, 1.5, 1.0, 1.0]), ("b", [0.0, 1.0])]:
        for reward in rewards:
            bandit.update(arm, reward)
    expected = stats.norm.cdf((1.0 - 0.5) / np.sqrt(1 / 4 + 1 / 2))
    assert bandit.probability("a") == pytest.approx(expected, abs=2e-3)


def test_a_penalty_moves_the_pick_to_the_cheaper_arm() -> None:
    bandit = ThompsonSampling(["dear", "cheap"], seed=9)
    for i in range(200):
        bandit.update("dear", 1.0)
        bandit.update("cheap", float(i % 5 != 0))  # 0.8
    assert bandit.probability("dear") > 0.99
    assert bandit.probability("cheap", penalty=[0.5, 0.0]) > 0.99


def test_arms_are_added_untried() -> None:
    bandit = UCB1(["a"])
    bandit.update("a", 1.0, "ctx")
    bandit.add_arm("b")
    assert bandit.arms == ("a", "b")
    assert bandit.probabilities("ctx") == {"a": 0.0, "b": 1.0}


def test_window_forgets_exactly_the_oldest_observations() -> None:
    bandit = EpsilonGreedy(["a", "b"], window=3)
    for arm, reward in [("a", 1.0), ("a", 1.0), ("b", 0.5), ("a", 0.0), ("b", 0.1)]:
        bandit.update(arm, reward)
    assert bandit.counts() == {"a": 1.0, "b": 2.0}
    assert bandit.means() == pytest.approx({"a": 0.0, "b": 0.3})


def test_discount_weighs_observations_by_age() -> None:
    bandit = EpsilonGreedy(["a"], discount=0.5)
    for reward in (1.0, 0.0, 0.0):
        bandit.update("a", reward)
    # weights 0.25, 0.5, 1 -> mean 0.25 / 1.75
    assert bandit.counts()["a"] == pytest.approx(1.75)
    assert bandit.means()["a"] == pytest.approx(0.25 / 1.75)


def test_unknown_arm_is_an_error_naming_the_known_arms() -> None:
    bandit = ThompsonSampling(["a", "b"])
    with pytest.raises(ValueError, match=r"unknown arm 'z'; known arms: a, b"):
        bandit.update("z", 1.0)
    with pytest.raises(ValueError, match="unknown arm 'z'"):
        bandit.probabilities(arms=["a", "z"])


@pytest.mark.parametrize(
    ("cls", "options", "message"),
    [
        (ThompsonSampling, {"discount": 0.9, "window": 10}, "discount or window, not both"),
        (ThompsonSampling, {"discount": 0.0}, "discount"),
        (ThompsonSampling, {"window": 0}, "window"),
        (ThompsonSampling, {"alpha": 0}, "alpha and beta must be > 0"),
        (EpsilonGreedy, {"epsilon": 1.5}, "epsilon must be in"),
        (UCB1, {"c": -1}, "c must be >= 0"),
        (GaussianThompsonSampling, {"noise_sd": 0}, "noise_sd must be > 0"),
        (UCB1, {"windw": 10}, "windw"),
    ],
)
def test_invalid_options_name_the_option(cls, options, message) -> None:
    with pytest.raises((ValueError, ValidationError), match=message):
        cls(["a"], **options)


def test_invalid_arms_and_rewards() -> None:
    with pytest.raises(ValueError, match="at least one arm"):
        UCB1([])
    with pytest.raises(ValueError, match="duplicate arms: a"):
        UCB1(["a", "a"])
    with pytest.raises(ValueError, match=r"reward must be in \[0, 1\]"):
        ThompsonSampling(["a"]).update("a", 2.0)
    with pytest.raises(ValueError, match="reward must be finite"):
        GaussianThompsonSampling(["a"]).update("a", float("nan"))


def task(task_type: str = "qa") -> Task:
    return Task(task_type=task_type, payload="What is 2 + 2?")


def test_strategy_picks_among_eligible_targets_with_its_true_propensity() -> None:
    strategy = BanditStrategy(ThompsonSampling, ["a", "b", "c"], seed=10)
    router = Router([Target(name=n) for n in "abc"], strategy, available=lambda name: name != "c")
    for _ in range(30):
        router.observe(Outcome(target="a", task_type="qa", success=True, duration_ms=5))
        router.observe(Outcome(target="b", task_type="qa", success=False, duration_ms=5))
    expected = strategy.distribution(task(), [router.target("a"), router.target("b")], router.book)
    decision = router.choose(task())
    assert decision.pick in {"a", "b"}
    assert [c.target for c in decision.candidates] == ["a", "b"]
    # The pick's own integral; the distribution renormalises every arm's (they sum to 1 within ~1e-4).
    assert decision.probability == pytest.approx(expected[decision.pick], abs=1e-3)
    assert decision.strategy == "thompson" and decision.reason.startswith("thompson: drew")
    # a in its context: 30 successes of its own plus the global 30 counted as prior_strength = 10 calls.
    assert decision.candidates[0].details == {"cost_penalty": 0.0, "mean_reward": (1 + 40) / (2 + 40)}


def test_strategy_learns_per_task_type_and_category() -> None:
    strategy = BanditStrategy(EpsilonGreedy, ["a", "b"], seed=11, epsilon=0.0)
    router = Router([Target(name="a"), Target(name="b")], strategy)
    for _ in range(20):
        router.observe(Outcome(target="a", task_type="qa", success=True, duration_ms=1))
        router.observe(Outcome(target="b", task_type="qa", success=False, duration_ms=1))
        router.observe(Outcome(target="a", task_type="code", success=False, duration_ms=1))
        router.observe(Outcome(target="b", task_type="code", success=True, duration_ms=1))
    assert router.choose(task("qa")).pick == "a"
    assert router.choose(task("code")).pick == "b"


def test_willingness_to_pay_trades_quality_for_cost() -> None:
    """Equal quality, 'dear' costs $0.01 more a call: worth it at L = $1000 per success, not at $0.01."""

    def pick_share(willingness_to_pay: float) -> float:
        strategy = BanditStrategy(
            ThompsonSampling, ["dear", "cheap"], seed=12, willingness_to_pay=willingness_to_pay
        )
        router = Router([Target(name="dear"), Target(name="cheap")], strategy)
        for i in range(100):
            router.observe(
                Outcome(target="dear", task_type="qa", success=i % 10 != 0, duration_ms=1, cost=0.011)
            )
            router.observe(
                Outcome(target="cheap", task_type="qa", success=i % 10 > 1, duration_ms=1, cost=0.001)
            )
        return router.strategy.distribution(task(), list(router.targets.values()), router.book)["dear"]

    assert pick_share(0.01) < 0.01
    assert pick_share(1000.0) > 0.6


def test_gaussian_strategy_learns_from_quality() -> None:
    strategy = BanditStrategy(GaussianThompsonSampling, ["a", "b"], seed=13)
    for _ in range(30):
        for target, quality in (("a", 90.0), ("b", 40.0)):
            strategy.observe(
                Outcome(target=target, task_type="qa", success=True, duration_ms=1, quality_score=quality)
            )
    assert strategy.bandit.means(("qa", "general")) == pytest.approx({"a": 0.9, "b": 0.4})
