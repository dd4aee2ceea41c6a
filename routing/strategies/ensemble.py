"""A weighted mixture of strategies, with the exact propensity of the mixture.

Each member states a distribution over the eligible targets (its `distribution()` method, or a point
mass on its pick when its choice is certain); the ensemble draws a member by weight and then that
member's pick from its distribution. The pick's propensity is therefore `Σ_i w_i p_i(pick)`, exactly.
A member with a random pick and no `distribution()` cannot be mixed exactly and is refused.

Every member observes every outcome, including members whose weight is 0, so a member can be run
alone (weight 1) or brought in later without a cold start.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from routing.models import FINITE, Candidate, Outcome, Target, Task, resolve
from routing.stats.book import StatsBook
from routing.strategies.bandits.adapter import BanditStrategy
from routing.strategies.bandits.learners import ThompsonSampling
from routing.strategies.base import Choice, Strategy, draw
from routing.strategies.qlearning import QLearningStrategy
from routing.strategies.weighted import WeightedScore

DEFAULT_WEIGHTS = {"rl": 0.4, "bandit": 0.4, "baseline": 0.2}


class EnsembleWeights(BaseModel):
    """Member weights: non-negative, summing to 1 (within 1e-6)."""

    model_config = ConfigDict(extra="forbid", **FINITE)

    weights: dict[str, float] = Field(min_length=1)

    @model_validator(mode="after")
    def _valid(self) -> EnsembleWeights:
        negative = [name for name, w in self.weights.items() if w < 0]
        if negative:
            raise ValueError(f"weights must be >= 0; negative: {', '.join(negative)}")
        total = sum(self.weights.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"weights must sum to 1, got {total:g}")
        return self


def member_distribution(
    name: str, member: Strategy, task: Task, targets: Sequence[Target], book: StatsBook
) -> dict[str, float]:
    """A member's probability of picking each target (see the module docstring)."""
    distribution = getattr(member, "distribution", None)
    if distribution is not None:
        return distribution(task, targets, book)
    choice = member.choose(task, targets, book)
    propensity = resolve(choice.probability)
    if propensity < 1.0:
        raise ValueError(
            f"ensemble member {name!r} ({member.name}) picks at random (propensity {propensity:.3f})"
            " but has no distribution(); its propensity cannot be mixed exactly"
        )
    return {choice.pick: 1.0}


class EnsembleStrategy:
    """Mixes `members` (name -> Strategy) with `weights` (name -> weight, missing names weigh 0)."""

    name = "ensemble"

    def __init__(
        self,
        members: Mapping[str, Strategy],
        weights: Mapping[str, float] | None = None,
        seed: int | None = None,
    ) -> None:
        weights = dict(weights if weights is not None else DEFAULT_WEIGHTS)
        unknown = sorted(set(weights) - set(members))
        if unknown:
            raise ValueError(
                f"weights name unknown members {', '.join(unknown)}; members: {', '.join(members)}"
            )
        self.members = dict(members)
        self.weights = EnsembleWeights(weights={n: weights.get(n, 0.0) for n in self.members}).weights
        self._rng = random.Random(seed)

    @classmethod
    def default(
        cls,
        targets: Sequence[str],
        seed: int | None = None,
        weights: Mapping[str, float] | None = None,
        willingness_to_pay: float | None = None,
    ) -> EnsembleStrategy:
        """Q-learning ("rl"), Thompson sampling ("bandit") and WeightedScore ("baseline").

        With `willingness_to_pay` L, the bandit prices cost in and Q-learning learns `L * success - cost`;
        the baseline stays cost-blind.
        """
        members = {
            "rl": QLearningStrategy(targets, seed, willingness_to_pay=willingness_to_pay),
            "bandit": BanditStrategy(ThompsonSampling, targets, seed, willingness_to_pay=willingness_to_pay),
            "baseline": WeightedScore(seed=seed),
        }
        return cls(members, weights, seed)

    def distribution(self, task: Task, targets: Sequence[Target], book: StatsBook) -> dict[str, float]:
        return self._mixture(task, targets, book)[0]

    def choose(self, task: Task, targets: Sequence[Target], book: StatsBook) -> Choice:
        mixture, parts = self._mixture(task, targets, book)
        names = list(parts)
        member = self._rng.choices(names, weights=[self.weights[n] for n in names])[0]
        pick = draw(self._rng, parts[member])
        order = {t.name: position for position, t in enumerate(targets)}
        candidates = sorted(
            (
                Candidate(
                    target=target,
                    score=p,
                    details={f"p_{n}": parts[n].get(target, 0.0) for n in names},
                )
                for target, p in mixture.items()
            ),
            key=lambda c: (-c.score, order[c.target]),
        )
        shares = ", ".join(f"{n} {self.weights[n]:g}" for n in names)
        reason = (
            f"ensemble ({shares}): {self.members[member].name} member drew {pick}; "
            f"mixture propensity {mixture[pick]:.3f}"
        )
        return Choice(tuple(candidates), pick, mixture[pick], reason)

    def observe(self, outcome: Outcome) -> None:
        for member in self.members.values():
            member.observe(outcome)

    def _mixture(self, task: Task, targets: Sequence[Target], book: StatsBook):
        """(Σ w_i p_i over targets, each weighted member's distribution)."""
        parts = {
            name: member_distribution(name, member, task, targets, book)
            for name, member in self.members.items()
            if self.weights[name] > 0
        }
        mixture = dict.fromkeys((t.name for t in targets), 0.0)
        for name, distribution in parts.items():
            for target, p in distribution.items():
                mixture[target] += self.weights[name] * p
        return mixture, parts
