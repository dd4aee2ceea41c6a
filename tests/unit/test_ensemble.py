"""The ensemble's mixture propensity and weights, and the strategy registry that builds every strategy."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pytest
from pydantic import ValidationError

from routing import Outcome, Router, Target, Task, WeightedScore
from routing.stats.book import StatsBook
from routing.strategies.bandits.adapter import BanditStrategy
from routing.strategies.base import Choice
from routing.strategies.ensemble import EnsembleStrategy
from routing.strategies.qlearning import QLearningStrategy
from routing.strategies.registry import STRATEGY_NAMES, build_strategy


class Fixed:
    """A member with a known distribution, counting what it observes."""

    def __init__(self, name: str, distribution: dict[str, float]) -> None:
        self.name = name
        self._distribution = distribution
        self.observed = 0

    def distribution(self, task: Task, targets: Sequence[Target], book: StatsBook) -> dict[str, float]:
        return {t.name: self._distribution.get(t.name, 0.0) for t in targets}

    def choose(self, task, targets, book) -> Choice:  # never called: the ensemble uses distribution()
        raise AssertionError("choose should not be called")

    def observe(self, outcome: Outcome) -> None:
        self.observed += 1


class Coin:
    """A random member without distribution(): its propensity cannot be mixed."""

    name = "coin"

    def choose(self, task, targets, book) -> Choice:
        return Choice((), targets[0].name, 0.5, "coin")

    def observe(self, outcome) -> None:
        pass


TARGETS = [Target(name=n) for n in "abc"]
TASK = Task(task_type="qa", payload="hi")


def members() -> dict:
    return {
        "rl": Fixed("one", {"a": 0.7, "b": 0.2, "c": 0.1}),
        "bandit": Fixed("two", {"b": 1.0}),
        "baseline": Fixed("three", {"a": 0.5, "c": 0.5}),
    }


@pytest.mark.slow  # Monte Carlo: pick frequencies against the mixture
def test_propensity_is_the_weighted_mixture_of_member_distributions() -> None:
    ensemble = EnsembleStrategy(members(), seed=1)
    expected = {
        "a": 0.4 * 0.7 + 0.2 * 0.5,
        "b": 0.4 * 0.2 + 0.4 * 1.0,
        "c": 0.4 * 0.1 + 0.2 * 0.5,
    }
    assert ensemble.distribution(TASK, TARGETS, StatsBook()) == pytest.approx(expected)
    picks = Counter()
    for _ in range(20000):
        choice = ensemble.choose(TASK, TARGETS, StatsBook())
        assert choice.probability == pytest.approx(expected[choice.pick])
        picks[choice.pick] += 1
    for target, p in expected.items():
        assert picks[target] / 20000 == pytest.approx(p, abs=0.015)
    assert [c.target for c in choice.candidates] == ["b", "a", "c"]
    assert choice.reason.startswith("ensemble (rl 0.4, bandit 0.4, baseline 0.2):")


def test_a_member_runs_alone_and_the_others_keep_learning() -> None:
    parts = members()
    ensemble = EnsembleStrategy(parts, {"bandit": 1.0}, seed=2)
    assert ensemble.weights == {"rl": 0.0, "bandit": 1.0, "baseline": 0.0}
    choice = ensemble.choose(TASK, TARGETS, StatsBook())
    assert (choice.pick, choice.probability) == ("b", 1.0)
    assert "two member drew b" in choice.reason
    ensemble.observe(Outcome(target="b", task_type="qa", success=True, duration_ms=1))
    assert [m.observed for m in parts.values()] == [1, 1, 1]


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"rl": 0.5, "bandit": 0.4, "baseline": 0.2}, "must sum to 1, got 1.1"),
        ({"rl": 1.2, "bandit": -0.2}, "negative: bandit"),
        ({"rl": 0.5, "qlearning": 0.5}, "unknown members qlearning"),
        ({}, "must sum to 1, got 0"),
    ],
)
def test_weights_are_validated(weights, message) -> None:
    with pytest.raises((ValueError, ValidationError), match=message):
        EnsembleStrategy(members(), weights)


def test_a_random_member_without_distribution_is_refused() -> None:
    ensemble = EnsembleStrategy({"coin": Coin(), "rl": Fixed("one", {"a": 1.0})}, {"coin": 0.5, "rl": 0.5})
    with pytest.raises(ValueError, match="member 'coin' .* no distribution"):
        ensemble.choose(TASK, TARGETS, StatsBook())


def test_default_ensemble_routes_and_learns_through_the_router() -> None:
    ensemble = EnsembleStrategy.default(["a", "b", "c"], seed=3)
    assert isinstance(ensemble.members["rl"], QLearningStrategy)
    assert isinstance(ensemble.members["bandit"], BanditStrategy)
    assert isinstance(ensemble.members["baseline"], WeightedScore)
    router = Router(TARGETS, ensemble)
    for _ in range(200):
        decision = router.choose(TASK)
        router.observe(
            Outcome(target=decision.pick, task_type="qa", success=decision.pick == "c", duration_ms=1)
        )
    distribution = ensemble.distribution(TASK, TARGETS, router.book)
    assert decision.probability == pytest.approx(
        ensemble.distribution(TASK, TARGETS, router.book)[decision.pick], abs=0.05
    )
    # baseline (0.2) keeps the default order ("a"); RL and the bandit have found "c".
    assert distribution["c"] > 0.7
    assert distribution["a"] >= 0.2


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_registry_builds_every_strategy_that_routes(name) -> None:
    strategy = build_strategy(name, ["a", "b", "c"], seed=4)
    assert strategy.name == name
    router = Router(TARGETS, strategy)
    decision = router.choose(TASK)
    router.observe(Outcome(target=decision.pick, task_type="qa", success=True, duration_ms=1))
    assert 0 < decision.probability <= 1
    assert decision.pick in {"a", "b", "c"}


def test_registry_passes_options_and_rejects_unknown_names() -> None:
    assert build_strategy("epsilon_greedy", ["a"], epsilon=0.25).bandit.epsilon == 0.25
    assert build_strategy("thompson", ["a"], discount=0.99).bandit.options.discount == 0.99
    assert build_strategy("ensemble", ["a"], weights={"bandit": 1.0}).weights["bandit"] == 1.0
    with pytest.raises(ValueError, match=r"unknown strategy 'greedy'; known strategies: weighted, .*ensemble"):
        build_strategy("greedy", ["a"])
    with pytest.raises(ValidationError, match="explore"):
        build_strategy("weighted", ["a"], explore=0.1)
