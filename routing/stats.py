"""Running per-(target, task type) statistics that every strategy reads.

Kept incremental and cheap: `choose` runs on the hot path and must stay in microseconds, so percentiles
are computed lazily over a bounded window and cached until the next observation.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from routing.models import Outcome

DEFAULT_WINDOW = 1000


@dataclass
class TargetStats:
    """Outcomes of one target on one task type; latency over the last `window` calls."""

    n: int = 0
    successes: int = 0
    total_cost: float = 0.0
    window: int = DEFAULT_WINDOW
    latencies: deque[float] = field(default_factory=deque)
    _p50: float | None = None
    _p95: float | None = None

    def __post_init__(self) -> None:
        self.latencies = deque(self.latencies, maxlen=self.window)

    def add(self, success: bool, duration_ms: float, cost: float = 0.0) -> None:
        self.n += 1
        self.successes += int(success)
        self.total_cost += cost
        self.latencies.append(duration_ms)
        self._p50 = self._p95 = None

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.n if self.n else None

    @property
    def mean_cost(self) -> float | None:
        return self.total_cost / self.n if self.n else None

    @property
    def p50_latency_ms(self) -> float | None:
        if self._p50 is None and self.latencies:
            self._p50, self._p95 = (float(v) for v in np.percentile(self.latencies, [50, 95]))
        return self._p50

    @property
    def p95_latency_ms(self) -> float | None:
        self.p50_latency_ms
        return self._p95


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
