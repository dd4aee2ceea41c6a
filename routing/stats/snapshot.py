"""What the recalculation flow publishes of every (target, task type): counts, success with its Wilson
interval, latency percentiles and costs, as immutable pydantic models routers load from a file.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    PrivateAttr,
    model_validator,
)

from routing.models import FINITE, utcnow
from routing.stats.book import StatsBook, TargetStats


class StatsEntry(BaseModel):
    """What is known of one target on one task type; latency figures cover `latency_n` calls."""

    model_config = ConfigDict(extra="forbid", frozen=True, **FINITE)

    target: str = Field(min_length=1)
    task_type: str = Field(min_length=1)
    n: PositiveInt
    successes: NonNegativeInt
    p50_latency_ms: NonNegativeFloat
    p95_latency_ms: NonNegativeFloat
    p99_latency_ms: NonNegativeFloat
    mean_latency_ms: NonNegativeFloat
    latency_sd_ms: NonNegativeFloat
    latency_n: PositiveInt | None = Field(default=None, description="Defaults to n.")
    mean_cost: NonNegativeFloat = 0.0
    updated_at: datetime = Field(default_factory=utcnow)

    @model_validator(mode="after")
    def _consistent(self) -> StatsEntry:
        if self.successes > self.n:
            raise ValueError(f"successes ({self.successes}) must not exceed n ({self.n})")
        if self.latency_n is not None and self.latency_n > self.n:
            raise ValueError(f"latency_n ({self.latency_n}) must not exceed n ({self.n})")
        if not self.p50_latency_ms <= self.p95_latency_ms <= self.p99_latency_ms:
            raise ValueError(
                "latency percentiles must satisfy p50_latency_ms <= p95_latency_ms <= p99_latency_ms"
            )
        return self

    @property
    def success_rate(self) -> float:
        return self.successes / self.n

    @property
    def latency_samples(self) -> int:
        return self.latency_n or self.n

    @classmethod
    def from_stats(cls, target: str, task_type: str, stats: TargetStats, updated_at: datetime) -> StatsEntry:
        return cls(
            target=target,
            task_type=task_type,
            n=stats.n,
            successes=stats.successes,
            p50_latency_ms=stats.p50_latency_ms,
            p95_latency_ms=stats.percentile(95),
            p99_latency_ms=stats.percentile(99),
            mean_latency_ms=max(0.0, stats.mean_latency_ms),
            latency_sd_ms=stats.latency_sd_ms,
            latency_n=max(1, min(stats.n, round(stats.latency_n))),
            mean_cost=stats.mean_cost or 0.0,
            updated_at=updated_at,
        )


class StatsSnapshot(BaseModel):
    """Statistics per (target, task type) as a recalculation flow publishes them to routers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entries: tuple[StatsEntry, ...] = ()
    created_at: datetime = Field(default_factory=utcnow)
    _by_type: dict[str, dict[str, StatsEntry]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _unique_pairs(self) -> StatsSnapshot:
        # Rebuilt from scratch: the validator re-runs when a snapshot is validated inside another model.
        by_type: dict[str, dict[str, StatsEntry]] = {}
        for entry in self.entries:
            by_target = by_type.setdefault(entry.task_type, {})
            if entry.target in by_target:
                raise ValueError(
                    f"entries: duplicate entry for target {entry.target!r}, task type {entry.task_type!r}"
                )
            by_target[entry.target] = entry
        self._by_type = by_type
        return self

    @property
    def task_types(self) -> set[str]:
        return set(self._by_type)

    def for_task_type(self, task_type: str) -> dict[str, StatsEntry]:
        """Entries of one task type keyed by target (empty when there are none)."""
        return self._by_type.get(task_type, {})

    def get(self, target: str, task_type: str) -> StatsEntry | None:
        return self.for_task_type(task_type).get(target)

    @classmethod
    def from_book(cls, book: StatsBook, updated_at: datetime | None = None) -> StatsSnapshot:
        """A snapshot of a running StatsBook (latency figures decayed over about its window of calls, counts over all calls)."""
        when = updated_at or utcnow()
        entries = tuple(
            StatsEntry.from_stats(target, task_type, stats, when)
            for (target, task_type), stats in book.items()
            if stats.n
        )
        return cls(entries=entries, created_at=when)
