"""A scorer that only reorders targets on statistically real differences, from published statistics.

`StatisticalScore` ranks with the same score as `WeightedScore` (success and relative speed) but starts
from the configured default order (the order targets are given in) and lets a target climb over its
upper neighbour only when the data says it is really better:

    a lower target L moves above its upper neighbour U when both have at least `min_samples` calls,
    L's score is higher, and either
      - L's success rate is significantly higher (pooled two-proportion z test, p < alpha), or
      - their success rates are not significantly different and L's mean latency is significantly
        lower (Welch's t test, p < alpha).

The rule is applied by adjacent swaps until nothing moves. A better score alone never reorders (that
is noise until a test says otherwise), nor does significance alone (a significantly more reliable but
far slower target can still rank lower, as the score says). Because only neighbours are compared, a
target that cannot be told apart from its neighbour, or lacks data, stays put and holds its place; and
the tests are not corrected for multiplicity, which errs on the side of keeping the default order.

The order per task type is cached: it is recomputed only when `publish(snapshot)` brings different
statistics for that task type or `invalidate()` is called, so `choose` is a dictionary look-up. Before
any snapshot is published, the shared StatsBook is read when the cache is filled.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import (
    Field,
)

from routing.models import Candidate, Outcome, Target, Task, utcnow
from routing.stats.book import StatsBook
from routing.stats.significance import (
    two_proportion_test,
    welch_t_test_from_stats,
    wilson_interval,
)
from routing.stats.snapshot import StatsEntry, StatsSnapshot
from routing.strategies.base import Choice
from routing.strategies.weighted import WeightedScoreConfig

if TYPE_CHECKING:
    from routing.published import PublishedState


class StatisticalScoreConfig(WeightedScoreConfig):
    """WeightedScore's weights, trust threshold and exploration, plus the tests' significance level."""

    alpha: float = Field(default=0.05, gt=0, lt=1, description="Significance level of each pairwise test.")
    confidence: float = Field(default=0.95, gt=0, lt=1, description="Level of the reported Wilson intervals.")


@dataclass(frozen=True)
class _Ranking:
    candidates: tuple[Candidate, ...]
    reason: str


class StatisticalScore:
    """Preference order per task type that moves a target only on a significant difference."""

    name = "statistical"

    def __init__(self, config: StatisticalScoreConfig | None = None, seed: int | None = None) -> None:
        self.config = config or StatisticalScoreConfig()
        self.snapshot: StatsSnapshot | None = None
        self._rng = random.Random(seed)
        self._cache: dict[tuple[str, tuple[str, ...]], _Ranking] = {}

    def publish(self, snapshot: StatsSnapshot) -> set[str]:
        """Adopt new statistics; returns the task types whose cached order was dropped."""
        old = self.snapshot
        if old is None:
            changed = {task_type for task_type, _ in self._cache} | snapshot.task_types
        else:
            changed = {
                task_type
                for task_type in old.task_types | snapshot.task_types
                if old.for_task_type(task_type) != snapshot.for_task_type(task_type)
            }
        self.snapshot = snapshot
        for task_type in changed:
            self.invalidate(task_type)
        return changed

    def adopt(self, state: PublishedState, prior_cap: int) -> list[str]:
        changed = self.publish(state.snapshot)
        pairs = len(state.snapshot.entries)
        return [f"{self.name}: statistics of {pairs} (target, task type) pairs, {len(changed)} task types re-ranked"]

    def invalidate(self, task_type: str | None = None) -> None:
        """Drop the cached order of one task type, or of all."""
        if task_type is None:
            self._cache.clear()
        else:
            for key in [k for k in self._cache if k[0] == task_type]:
                del self._cache[key]

    def choose(self, task: Task, targets: Sequence[Target], book: StatsBook) -> Choice:
        key = (task.task_type, tuple(t.name for t in targets))
        ranking = self._cache.get(key)
        if ranking is None:
            ranking = self._cache[key] = self._rank(task.task_type, key[1], book)
        return self._pick(ranking)

    def observe(self, outcome: Outcome) -> None:
        """Nothing: the order changes only on `publish` or `invalidate`, never per call."""

    def _entries(self, task_type: str, book: StatsBook) -> dict[str, StatsEntry]:
        if self.snapshot is not None:
            return self.snapshot.for_task_type(task_type)
        now = utcnow()
        return {
            target: StatsEntry.from_stats(target, tt, stats, now)
            for (target, tt), stats in book.items()
            if tt == task_type and stats.n
        }

    def _rank(self, task_type: str, names: tuple[str, ...], book: StatsBook) -> _Ranking:
        cfg = self.config
        entries = self._entries(task_type, book)
        known = [entries[n].p50_latency_ms for n in names if n in entries and entries[n].p50_latency_ms > 0]
        fastest = min(known) if known else None
        scored = {name: self._candidate(name, entries.get(name), fastest) for name in names}
        order = list(names)
        moves = []
        moved = True
        while moved:
            moved = False
            for i in range(len(order) - 1):
                upper, lower = order[i], order[i + 1]
                why = self._beats(entries.get(lower), entries.get(upper))
                if why and scored[lower].score > scored[upper].score:
                    order[i], order[i + 1] = lower, upper
                    moves.append(f"{lower} over {upper}: {why}")
                    moved = True
        if moves:
            reason = f"statistics for {task_type!r}: " + "; ".join(moves)
        else:
            reason = (
                f"default order for {task_type!r}: no significant difference (alpha={cfg.alpha:g}) between "
                f"neighbours with at least {cfg.min_samples} calls"
            )
        return _Ranking(tuple(scored[name] for name in order), reason)

    def _candidate(self, name: str, entry: StatsEntry | None, fastest: float | None) -> Candidate:
        if entry is None:
            return Candidate(target=name, score=0.0, details={"trusted": 0.0})
        cfg = self.config
        speed = fastest / entry.p50_latency_ms if fastest and entry.p50_latency_ms else 0.0
        score = entry.success_rate * cfg.success_weight + speed * cfg.speed_weight
        low, high = wilson_interval(entry.successes, entry.n, cfg.confidence)
        return Candidate(
            target=name,
            score=score,
            samples=entry.n,
            success_rate=entry.success_rate,
            p50_latency_ms=entry.p50_latency_ms,
            details={
                "speed_score": speed,
                "success_low": low,
                "success_high": high,
                "p95_latency_ms": entry.p95_latency_ms,
                "p99_latency_ms": entry.p99_latency_ms,
                "mean_latency_ms": entry.mean_latency_ms,
                "mean_cost": entry.mean_cost,
                "trusted": float(entry.n >= cfg.min_samples),
            },
        )

    def _beats(self, lower: StatsEntry | None, upper: StatsEntry | None) -> str | None:
        """Why `lower` is really better than `upper` (see the module docstring), or None."""
        cfg = self.config
        if lower is None or upper is None or min(lower.n, upper.n) < cfg.min_samples:
            return None
        success = two_proportion_test(lower.successes, lower.n, upper.successes, upper.n)
        if success.pvalue < cfg.alpha:
            return f"more successful (p={success.pvalue:.2g})" if success.statistic > 0 else None
        if min(lower.latency_samples, upper.latency_samples) < 2:
            return None
        latency = welch_t_test_from_stats(
            lower.mean_latency_ms, lower.latency_sd_ms, lower.latency_samples,
            upper.mean_latency_ms, upper.latency_sd_ms, upper.latency_samples,
        )  # fmt: skip
        if latency.pvalue < cfg.alpha and latency.statistic < 0:
            return f"as successful and faster (p={latency.pvalue:.2g})"
        return None

    def _pick(self, ranking: _Ranking) -> Choice:
        """The top of the order, or with probability `explore_rate` a uniformly random candidate."""
        candidates = ranking.candidates
        rate = self.config.explore_rate if len(candidates) > 1 else 0.0
        top = candidates[0].target
        if rate and self._rng.random() < rate:
            pick, reason = self._rng.choice(candidates).target, "explored at random"
        else:
            pick, reason = top, ranking.reason
        share = rate / len(candidates)
        probability = (1 - rate) * (pick == top) + share
        return Choice(candidates, pick, min(1.0, probability), reason)
