"""Build any strategy by name, so configuration files and the CLI can name one.

`build_strategy(name, targets, seed, **options)` passes `options` to the strategy's own configuration
(pydantic models or keyword arguments), so a misspelt option fails naming the option.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from routing.errors import UnknownNameError
from routing.strategies.bandits.adapter import BanditStrategy
from routing.strategies.bandits.learners import (
    UCB1,
    EpsilonGreedy,
    GaussianThompsonSampling,
    ThompsonSampling,
)
from routing.strategies.base import Strategy
from routing.strategies.ensemble import EnsembleStrategy
from routing.strategies.qlearning import QLearningStrategy
from routing.strategies.weighted import WeightedScore, WeightedScoreConfig

Factory = Callable[..., Strategy]


def _weighted(targets: Sequence[str], seed: int | None, **options) -> Strategy:
    return WeightedScore(WeightedScoreConfig(**options), seed)


def _bandit(cls) -> Factory:
    def build(targets: Sequence[str], seed: int | None, **options) -> Strategy:
        return BanditStrategy(cls, targets, seed, **options)

    return build


def _qlearning(targets: Sequence[str], seed: int | None, **options) -> Strategy:
    return QLearningStrategy(targets, seed, **options)


def _ensemble(targets: Sequence[str], seed: int | None, **options) -> Strategy:
    return EnsembleStrategy.default(targets, seed, **options)


# Strategies written alongside these ones are imported only when asked for.
def _statistical(targets: Sequence[str], seed: int | None, **options) -> Strategy:
    from routing.strategies.statistical import StatisticalScore, StatisticalScoreConfig

    return StatisticalScore(StatisticalScoreConfig(**options), seed)


def _adaptive(targets: Sequence[str], seed: int | None, capabilities=None, **options) -> Strategy:
    """`capabilities`: a routing.evaluation.capability.CapabilityTable (default: empty, every score 50)."""
    from routing.evaluation.capability import CapabilityTable
    from routing.strategies.adaptive import AdaptiveScorerConfig, AdaptiveStrategy

    return AdaptiveStrategy(capabilities or CapabilityTable(), AdaptiveScorerConfig(**options))


def _cost_aware(targets: Sequence[str], seed: int | None, objectives=None, **options) -> Strategy:
    """`objectives`: {task type: routing.strategies.optimizer.Objective}, e.g. as `adaptive-router set-strategy` saved them."""
    from routing.strategies.cost_aware import CostAwareConfig, CostAwareStrategy

    return CostAwareStrategy(CostAwareConfig(objectives=objectives or {}, **options), seed)


def _contextual(targets: Sequence[str], seed: int | None, **options) -> Strategy:
    from routing.strategies.contextual import ContextualConfig, ContextualThompson

    return ContextualThompson(targets, seed, ContextualConfig(**options))


def _fixed(targets: Sequence[str], seed: int | None, order: Sequence[str] = (), **options) -> Strategy:
    """`order`: the targets to try first, in that order (the spec `fixed:small,mid`)."""
    from routing.strategies.fixed import FixedOrder

    if options:
        raise TypeError(f"fixed takes only an order of targets, got options {', '.join(sorted(options))}")
    unknown = [name for name in order if name not in targets]
    if unknown:
        raise UnknownNameError("target", unknown[0], targets, "in a fixed order")
    return FixedOrder(order)


FACTORIES: dict[str, Factory] = {
    "weighted": _weighted,
    "statistical": _statistical,
    "adaptive": _adaptive,
    "thompson": _bandit(ThompsonSampling),
    "gaussian_thompson": _bandit(GaussianThompsonSampling),
    "ucb1": _bandit(UCB1),
    "epsilon_greedy": _bandit(EpsilonGreedy),
    "qlearning": _qlearning,
    "ensemble": _ensemble,
    "cost_aware": _cost_aware,
    "contextual": _contextual,
    "fixed": _fixed,
}
STRATEGY_NAMES = tuple(FACTORIES)


def build_strategy(name: str, targets: Sequence[str], seed: int | None = None, **options) -> Strategy:
    """A fresh strategy `name` over `targets` (their order is the default order)."""
    try:
        factory = FACTORIES[name]
    except KeyError:
        raise UnknownNameError("strategy", name, STRATEGY_NAMES) from None
    return factory(list(targets), seed, **options)
