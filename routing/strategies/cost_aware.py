"""The cost-aware strategy: the optimizer's choice per task type once the statistics can be trusted."""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from routing.models import Candidate, Outcome, Target, Task
from routing.stats.book import StatsBook, TargetStats
from routing.strategies.base import Choice, candidate
from routing.strategies.objectives import Objective
from routing.strategies.optimizer import get_optimal_target, pct
from routing.strategies.pareto import TargetPerformance


class CostAwareConfig(BaseModel):
    """Objectives per task type (others use `default`) and the evidence needed before trusting the stats."""

    model_config = ConfigDict(extra="forbid")

    objectives: dict[str, Objective] = Field(default_factory=dict)
    default: Objective = Objective()
    min_samples: int = Field(default=100, ge=1, description="Below this, the default order is kept.")

    def objective(self, task_type: str) -> Objective:
        return self.objectives.get(task_type, self.default)


def _candidate(name: str, score: float, stats: TargetStats | None) -> Candidate:
    details = {}
    if stats is not None and stats.n:
        details = {"mean_cost": stats.mean_cost, "p95_latency_ms": stats.p95_latency_ms}
    return candidate(name, score, stats, details)


class CostAwareStrategy:
    """Success, mean cost and p95 from the StatsBook, traded off per task type within the task's constraints.

    Until every target has `min_samples` calls for the task type, the default order stands (scores from a
    handful of calls would reorder targets on noise). After that the pick is `get_optimal_target`'s; when
    only a split meets the constraints, a target is sampled with probability equal to its share, which is
    the propensity logged. Constraints nothing can meet raise `InfeasibleConstraintsError`. Selections
    are cached on their inputs: a split costs a linprog call (about a millisecond), repeated only when the
    statistics, the constraints or the objective change.
    """

    name = "cost_aware"

    def __init__(self, config: CostAwareConfig | None = None, seed: int | None = None) -> None:
        self.config = config or CostAwareConfig()
        self._rng = random.Random(seed)
        self._select = functools.lru_cache(maxsize=1024)(get_optimal_target)

    def choose(self, task: Task, targets: Sequence[Target], book: StatsBook) -> Choice:
        cfg = self.config
        stats = [book.get(t.name, task.task_type) for t in targets]
        if not all(s is not None and s.n >= cfg.min_samples for s in stats):
            candidates = tuple(_candidate(t.name, -i, s) for i, (t, s) in enumerate(zip(targets, stats)))
            why = f"default order (fewer than {cfg.min_samples} calls per target for {task.task_type!r})"
            return Choice(candidates, targets[0].name, 1.0, why)
        perfs = tuple(
            TargetPerformance(
                target=t.name, success_rate=s.success_rate, cost=s.mean_cost, p95_latency_ms=s.p95_latency_ms
            )
            for t, s in zip(targets, stats)
        )
        selection = self._select(perfs, task.constraints, cfg.objective(task.task_type))
        pick, probability = selection.sample(self._rng)
        ranked = sorted(zip(targets, stats), key=lambda ts: selection.scores[ts[0].name], reverse=True)
        candidates = tuple(_candidate(t.name, selection.scores[t.name], s) for t, s in ranked)
        reason = selection.reasoning
        if selection.split is not None:
            reason += f"; sampled {pick} ({pct(probability)} of traffic)"
        return Choice(candidates, pick, probability, reason)

    def observe(self, outcome: Outcome) -> None:
        """Nothing of its own to learn: it reads the shared StatsBook."""
