"""The contract between the Router and the ways of ranking targets.

A strategy ranks the eligible targets for one task and names its pick with the probability it had of
picking it (its propensity), so logged decisions can later evaluate another strategy off-policy.
What a strategy can take from the scheduled flows (statistics, capability scores, bandit priors) it
declares by implementing `AdoptsPublished`; a composite exposes its members through `Composite`; one
whose learning is independent of its willingness to pay says so with `Repriced`.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from routing.models import Candidate, Deferred, Outcome, Target, Task
from routing.stats.book import StatsBook, TargetStats

if TYPE_CHECKING:
    from routing.published import PublishedState


@dataclass(frozen=True)
class Choice:
    """A strategy's answer: the ranking (best first), the pick, its propensity and why.

    A propensity that costs more than the rest of the choice (Thompson's integral) may be `Deferred`:
    read it with `routing.models.resolve`; the Decision computes it when it is first read.
    """

    candidates: tuple[Candidate, ...]
    pick: str
    probability: float | Deferred
    reason: str


class Strategy(Protocol):
    name: str

    def choose(self, task: Task, targets: Sequence[Target], book: StatsBook) -> Choice:
        """Rank `targets` (all eligible, never empty) for `task` and pick one."""
        ...

    def observe(self, outcome: Outcome) -> None:
        """Learn from one attempt's outcome (the shared StatsBook is updated by the Router)."""
        ...


@runtime_checkable
class Composite(Protocol):
    """A strategy made of member strategies (the ensemble): published state reaches every member."""

    members: Mapping[str, Strategy]


@runtime_checkable
class AdoptsPublished(Protocol):
    """A strategy that learns from what the scheduled flows publish (statistics, capabilities, priors)."""

    def adopt(self, state: PublishedState, prior_cap: int) -> list[str]:
        """Take what it can use from `state`; returns what was done, in words (one line per action)."""
        ...


@runtime_checkable
class Repriced(Protocol):
    """A strategy whose learning does not depend on its willingness to pay: a copy of one that has seen
    some history serves any other price (replay warms one strategy up once for a whole cost curve)."""

    def repriced(self, willingness_to_pay: float | None) -> Strategy:
        """An independent copy of this strategy, with all it learnt, maximising at this price."""
        ...


def walk(strategy: Strategy) -> Iterator[Strategy]:
    """`strategy` and, for a composite such as the ensemble, every member strategy, depth first."""
    yield strategy
    if isinstance(strategy, Composite):
        for member in strategy.members.values():
            yield from walk(member)


def candidate(
    target: str, score: float, stats: TargetStats | None, details: dict[str, float], samples: int | None = None
) -> Candidate:
    """A ranked target with the book's figures for it (`samples` overrides the book's count)."""
    return Candidate(
        target=target,
        score=score,
        samples=samples if samples is not None else stats.n if stats else 0,
        success_rate=stats.success_rate if stats else None,
        p50_latency_ms=stats.p50_latency_ms if stats else None,
        details=details,
    )


def draw(rng: random.Random, probabilities: dict[str, float]) -> str:
    """One pick from a distribution over targets (the pick's propensity is its entry)."""
    return rng.choices(list(probabilities), weights=list(probabilities.values()))[0]
