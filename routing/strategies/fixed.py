"""A fixed order of targets: the policy `fixed:small,mid` as a Strategy.

The named targets come first, in the order given, then every other eligible target in the default
order, so a fixed policy still falls back when its favourites are unavailable. The pick is the first
eligible target of that order with probability 1: a deterministic policy, which off-policy estimators
evaluate exactly. With no targets named (`fixed`) it is the default order itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from routing.errors import ConfigError
from routing.models import Candidate, Outcome, Target, Task
from routing.stats.book import StatsBook
from routing.strategies.base import Choice


class FixedOrder:
    name = "fixed"

    def __init__(self, order: Sequence[str]) -> None:
        order = [name for name in order if name]
        if len(set(order)) != len(order):
            raise ConfigError(f"a fixed policy names each target once, got {','.join(order)}")
        self.order = tuple(order)

    def ranking(self, targets: Sequence[Target]) -> list[str]:
        position = {name: i for i, name in enumerate(self.order)}
        names = [t.name for t in targets]
        return sorted(names, key=lambda n: (position.get(n, len(position)), names.index(n)))

    def choose(self, task: Task, targets: Sequence[Target], book: StatsBook) -> Choice:
        ranked = self.ranking(targets)
        candidates = tuple(
            Candidate(target=name, score=float(len(ranked) - i)) for i, name in enumerate(ranked)
        )
        reason = f"fixed order {','.join(self.order) or '(default)'}"
        if self.order and ranked[0] not in self.order:
            reason += f": none eligible, default order gives {ranked[0]}"
        return Choice(candidates=candidates, pick=ranked[0], probability=1.0, reason=reason)

    def observe(self, outcome: Outcome) -> None:
        """A fixed order learns nothing."""
