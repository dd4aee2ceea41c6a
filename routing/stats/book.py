"""Running per-(target, task type) statistics that every strategy reads.

Kept incremental, cheap and small: `choose` runs on the hot path and must stay in microseconds, and a router
may hold a pair for every target of thousands of task types. Latencies go into a DecayedSketch (a bounded
log-bucketed histogram: a few hundred bytes however many calls, quantiles within 1-8% as its docstring says,
decayed so it follows drift like a window of the last `window` calls), the median is cached until the next
observation, and the book forgets the least recently observed (target, task type) pairs beyond
`max_entries`, so memory does not grow with the number of task types.
"""

from __future__ import annotations

import sys

from routing.models import Outcome
from routing.stats.sketch import DEFAULT_WINDOW, DecayedSketch, check_window

DEFAULT_MAX_ENTRIES = 100_000
"""(target, task type) pairs a book keeps by default (~20 targets x 5,000 task types)."""

__all__ = ["DEFAULT_MAX_ENTRIES", "DEFAULT_WINDOW", "StatsBook", "TargetStats"]


class TargetStats(DecayedSketch):
    """Outcomes of one target on one task type: counts and costs over all calls, latency figures
    (percentiles, mean, spread) decayed over about the last `window` calls."""

    __slots__ = ("_p50", "successes", "total_cost")

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        super().__init__(window)
        self.successes, self.total_cost = 0, 0.0
        self._p50: float | None = None

    def add(self, success: bool, duration_ms: float, cost: float = 0.0) -> None:
        self.successes += int(success)
        self.total_cost += cost
        self._p50 = None
        self.add_latency(duration_ms)

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.n if self.n else None

    @property
    def mean_cost(self) -> float | None:
        return self.total_cost / self.n if self.n else None

    @property
    def p50_latency_ms(self) -> float | None:
        p50 = self._p50
        if p50 is None:
            p50 = self._p50 = self.percentile(50)
        return p50

    @property
    def p95_latency_ms(self) -> float | None:
        return self.percentile(95)

    def nbytes(self) -> int:
        """Bytes this object holds (itself and its array; its numbers are a few dozen more)."""
        return sys.getsizeof(self) + sys.getsizeof(self._cells)


class StatsBook:
    """All running statistics of a router, keyed by (target, task type).

    At most `max_entries` pairs are kept; observing a new pair beyond that forgets the pair observed
    longest ago (its learners still hold what they learned; the book only feeds scores and snapshots).
    `version` counts observations and `last_changed` names the pairs the latest one changed, so that a
    strategy can redo only what depends on them.
    """

    def __init__(self, window: int = DEFAULT_WINDOW, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.window = check_window(window)
        self.max_entries = max_entries
        self._stats: dict[tuple[str, str], TargetStats] = {}  # least recently observed first
        self.version = 0
        self.last_changed: tuple[tuple[str, str], ...] = ()

    def get(self, target: str, task_type: str) -> TargetStats | None:
        return self._stats.get((target, task_type))

    def observe(self, outcome: Outcome) -> None:
        key = (outcome.target, outcome.task_type)
        stats = self._stats.pop(key, None)
        changed: tuple[tuple[str, str], ...] = (key,)
        if stats is None:
            stats = TargetStats(window=self.window)
            if len(self._stats) >= self.max_entries:
                forgotten = next(iter(self._stats))
                del self._stats[forgotten]
                changed = (key, forgotten)
        self._stats[key] = stats
        self.version += 1
        self.last_changed = changed
        stats.add(outcome.success, outcome.duration_ms, outcome.cost)

    def items(self):
        return self._stats.items()

    def __len__(self) -> int:
        return len(self._stats)

    def nbytes(self) -> int:
        """Bytes held by the book's entries and their keys (the key strings are shared with callers)."""
        return sys.getsizeof(self._stats) + sum(
            s.nbytes() + sys.getsizeof(k) for k, s in self._stats.items()
        )
