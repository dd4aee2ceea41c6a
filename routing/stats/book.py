"""Running per-(target, task type) statistics that every strategy reads.

Kept incremental and cheap: `choose` runs on the hot path and must stay in microseconds, so latencies
are kept as packed doubles (8 bytes a value, no float objects), the median is cached until the next
observation, and the book forgets the least recently observed (target, task type) pairs beyond
`max_entries`, so memory does not grow with the number of task types.
"""

from __future__ import annotations

import bisect
import sys
from array import array
from collections.abc import Iterable

from routing.models import Outcome

DEFAULT_WINDOW = 1000
DEFAULT_MAX_ENTRIES = 100_000
"""(target, task type) pairs a book keeps by default (~20 targets x 5,000 task types)."""


class TargetStats:
    """Outcomes of one target on one task type; latency over the last `window` calls.

    The window is a ring of packed doubles, also kept sorted (insertion and eviction by bisection), so a
    percentile is an index lookup instead of a sort on every decision.
    """

    __slots__ = ("_head", "_p50", "_ring", "_sorted", "n", "successes", "total_cost", "window")

    def __init__(
        self,
        n: int = 0,
        successes: int = 0,
        total_cost: float = 0.0,
        window: int = DEFAULT_WINDOW,
        latencies: Iterable[float] = (),
    ) -> None:
        self.n, self.successes, self.total_cost, self.window = n, successes, total_cost, window
        recent = list(latencies)[-window:] if window else []
        self._ring = array("d", recent)
        self._head = 0  # index of the oldest value once the ring is full
        self._sorted = array("d", sorted(recent))
        self._p50: float | None = None

    def add(self, success: bool, duration_ms: float, cost: float = 0.0) -> None:
        self.n += 1
        self.successes += int(success)
        self.total_cost += cost
        self._p50 = None
        ring, ordered = self._ring, self._sorted
        if len(ring) < self.window:
            ring.append(duration_ms)
        else:
            head = self._head
            del ordered[bisect.bisect_left(ordered, ring[head])]
            ring[head] = duration_ms
            self._head = (head + 1) % self.window
        bisect.insort(ordered, duration_ms)

    @property
    def latencies(self) -> list[float]:
        """The windowed latencies, oldest first."""
        ring, head = self._ring, self._head
        return ring[head:].tolist() + ring[:head].tolist()

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
        p50 = self._p50
        if p50 is None:
            p50 = self._p50 = self.percentile(50)
        return p50

    @property
    def p95_latency_ms(self) -> float | None:
        return self.percentile(95)

    def nbytes(self) -> int:
        """Bytes this object holds (itself and its two arrays)."""
        return sys.getsizeof(self) + sys.getsizeof(self._ring) + sys.getsizeof(self._sorted)


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
        self.window = window
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
