"""Running per-(target, task type) statistics that every strategy reads.

Kept incremental and cheap: `choose` runs on the hot path and must stay in microseconds, so percentiles
are computed lazily over a bounded window and cached until the next observation.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field

from routing.models import Outcome

DEFAULT_WINDOW = 1000


@dataclass
class TargetStats:
    """Outcomes of one target on one task type; latency over the last `window` calls.

    The window is also kept sorted (insertion and eviction by bisection), so a percentile is an index
    lookup instead of a sort on every decision.
    """

    n: int = 0
    successes: int = 0
    total_cost: float = 0.0
    window: int = DEFAULT_WINDOW
    latencies: deque[float] = field(default_factory=deque)
    _sorted: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.latencies = deque(self.latencies, maxlen=self.window)
        self._sorted = sorted(self.latencies)

    def add(self, success: bool, duration_ms: float, cost: float = 0.0) -> None:
        self.n += 1
        self.successes += int(success)
        self.total_cost += cost
        if len(self.latencies) == self.window:
            del self._sorted[bisect.bisect_left(self._sorted, self.latencies[0])]
        self.latencies.append(duration_ms)
        bisect.insort(self._sorted, duration_ms)

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.n if self.n else None

    @property
    def mean_cost(self) -> float | None:
        return self.total_cost / self.n if self.n else None

    def percentile(self, q: float) -> float | None:
        """The q-th percentile (0-100) of the windowed latencies, interpolated as numpy's default does."""
        values = self._sorted
        if not values:
            return None
        rank = (len(values) - 1) * q / 100
        low = int(rank)
        high = min(low + 1, len(values) - 1)
        return values[low] + (values[high] - values[low]) * (rank - low)

    @property
    def p50_latency_ms(self) -> float | None:
        return self.percentile(50)

    @property
    def p95_latency_ms(self) -> float | None:
        return self.percentile(95)


class StatsBook:
    """All running statistics of a router, keyed by (target, task type)."""

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        self.window = window
        self._stats: dict[tuple[str, str], TargetStats] = {}

    def get(self, target: str, task_type: str) -> TargetStats | None:
        return self._stats.get((target, task_type))

    def observe(self, outcome: Outcome) -> None:
        key = (outcome.target, outcome.task_type)
        stats = self._stats.get(key)
        if stats is None:
            stats = self._stats[key] = TargetStats(window=self.window)
        stats.add(outcome.success, outcome.duration_ms, outcome.cost)

    def items(self):
        return self._stats.items()
