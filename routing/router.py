"""The Router: picks a target for a task and learns from what happened.

It composes the pieces (eligibility, statistics, a ranking strategy) and nothing else: no I/O, so a
decision costs microseconds and every rule is testable without Prefect, DuckDB or a network.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from routing.errors import NoEligibleTargetError, UnknownTargetError
from routing.models import Decision, Outcome, Target, Task
from routing.stats.book import StatsBook
from routing.strategies.base import Strategy
from routing.strategies.weighted import WeightedScore
from routing.validation import require_unique

Availability = Callable[[str], bool]

CAPABILITY_SETS_KEPT = 256
"""Distinct required-capability sets whose capable targets are remembered (targets never change)."""


def _always(name: str) -> bool:
    return True


class Router:
    """Routes tasks across `targets`; their order is the default order used until data says otherwise."""

    def __init__(
        self,
        targets: Sequence[Target],
        strategy: Strategy | None = None,
        book: StatsBook | None = None,
        available: Availability | None = None,
    ) -> None:
        if not targets:
            raise ValueError("a Router needs at least one target")
        require_unique((t.name for t in targets), "target names")
        self.targets = {t.name: t for t in targets}
        self.strategy = strategy or WeightedScore()
        self.book = book if book is not None else StatsBook()  # an empty book is falsy
        self.available = available or _always
        self._capable: dict[frozenset, list[Target]] = {}  # by required capabilities

    def target(self, name: str) -> Target:
        try:
            return self.targets[name]
        except KeyError:
            raise UnknownTargetError(name, list(self.targets)) from None

    def eligible(self, task: Task) -> list[Target]:
        """Targets that have every capability the task requires and are available now, in default order."""
        required = task.required_capabilities
        capable = self._capable.get(required)
        if capable is None:
            capable = [t for t in self.targets.values() if required <= t.capabilities]
            if len(self._capable) < CAPABILITY_SETS_KEPT:
                self._capable[required] = capable
        if not capable:
            needed = ", ".join(sorted(required))
            raise NoEligibleTargetError(f"task {task.id}: no target has every required capability ({needed})")
        if self.available is _always:
            return list(capable)  # a copy: callers may change theirs
        available = self.available
        up = [t for t in capable if available(t.name)]
        if not up:
            names = ", ".join(t.name for t in capable)
            raise NoEligibleTargetError(f"task {task.id}: every capable target is unavailable ({names})")
        return up

    def choose(self, task: Task) -> Decision:
        choice = self.strategy.choose(task, self.eligible(task), self.book)
        return Decision.built(
            task_id=task.id,
            task_type=task.task_type,
            strategy=self.strategy.name,
            candidates=choice.candidates,
            pick=choice.pick,
            probability=choice.probability,
            reason=choice.reason,
        )

    def observe(self, outcome: Outcome) -> None:
        self.target(outcome.target)
        self.book.observe(outcome)
        self.strategy.observe(outcome)
