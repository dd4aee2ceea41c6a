"""Adaptive scoring: a benchmark capability score, corrected by live success rate and latency.

    latency_score = clip(100 - latency_ms / (2 * max_acceptable_ms) * 100, 0, 100)
    base          = capability * w_capability + success_rate * 100 * w_success + latency_score * w_latency
    final         = base * adjustment

`adjustment` is the product of penalties for breaking a hard expectation: 0.5 when the success rate is
below `success_floor`, 0.8 when the latency is above `latency_ceiling_ms`. They multiply rather than
add because a target that is both unreliable and slow should fall well below one that is only one of
them. With fewer than `min_requests` calls the live numbers are noise, so the capability score is used
alone (unweighted, so it stays on the same 0-100 scale as `final`).

`max_acceptable_ms` is the latency that scores 50; latency reaches 0 at twice that. Its default, 500,
is the one value at which the reference cases (capability 85, success 0.99, 120 ms -> 88.95;
capability 88, success 0.60, 450 ms -> 38.025) come out exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, model_validator

from routing.evaluation.capability import CapabilityTable
from routing.models import FINITE, Outcome, Target, Task
from routing.stats.book import StatsBook
from routing.strategies.base import Choice, candidate

if TYPE_CHECKING:
    from routing.published import PublishedState


class AdaptiveScorerConfig(BaseModel):
    """Weights (summing to 1), the latency scale and the thresholds that trigger penalties."""

    model_config = ConfigDict(extra="forbid", frozen=True, **FINITE)

    capability_weight: float = Field(default=0.60, ge=0)
    success_weight: float = Field(default=0.25, ge=0)
    latency_weight: float = Field(default=0.15, ge=0)
    max_acceptable_ms: float = Field(default=500.0, gt=0, description="Latency scoring 50 (0 at twice it).")
    success_floor: float = Field(default=0.90, gt=0, le=1)
    success_penalty: float = Field(default=0.5, gt=0, le=1, description="Multiplier below success_floor.")
    latency_ceiling_ms: float = Field(default=500.0, gt=0)
    latency_penalty: float = Field(
        default=0.8, gt=0, le=1, description="Multiplier above latency_ceiling_ms."
    )
    min_requests: NonNegativeInt = Field(default=10, description="Below this, capability alone is used.")

    @model_validator(mode="after")
    def _weights_sum_to_one(self) -> AdaptiveScorerConfig:
        total = self.capability_weight + self.success_weight + self.latency_weight
        if abs(total - 1.0) > 0.01:
            raise ValueError(
                f"capability_weight + success_weight + latency_weight must be 1 (within 0.01), got {total:g}"
            )
        return self


@dataclass(frozen=True)
class AdaptiveScore:
    """One target's score and the numbers behind it."""

    capability_score: float
    performance_score: float | None  # success and latency terms, weighted; None when not used
    latency_score: float | None
    adjustment: float
    used_performance_data: bool
    success_rate: float | None
    avg_latency_ms: float | None
    final: float

    def details(self) -> dict[str, float]:
        """The decision fields as floats, for `Candidate.details` (absent values left out)."""
        fields = {
            "capability_score": self.capability_score,
            "performance_score": self.performance_score,
            "latency_score": self.latency_score,
            "adjustment": self.adjustment,
            "used_performance_data": float(self.used_performance_data),
            "success_rate": self.success_rate,
            "avg_latency_ms": self.avg_latency_ms,
            "final": self.final,
        }
        return {k: v for k, v in fields.items() if v is not None}


class AdaptiveScorer:
    """Computes `AdaptiveScore`s; see the module docstring for the formula."""

    def __init__(self, config: AdaptiveScorerConfig | None = None) -> None:
        self.config = config or AdaptiveScorerConfig()

    def latency_score(self, latency_ms: float) -> float:
        return min(100.0, max(0.0, 100 - latency_ms / (2 * self.config.max_acceptable_ms) * 100))

    def score(
        self, capability: float, success_rate: float | None, avg_latency_ms: float | None, requests: int
    ) -> AdaptiveScore:
        cfg = self.config
        if not 0 <= capability <= 100:
            raise ValueError(f"capability must be in [0, 100], got {capability}")
        if requests < 0:
            raise ValueError(f"requests must not be negative, got {requests}")
        if requests < cfg.min_requests or success_rate is None or avg_latency_ms is None:
            return AdaptiveScore(capability, None, None, 1.0, False, success_rate, avg_latency_ms, capability)
        if not 0 <= success_rate <= 1:
            raise ValueError(f"success_rate must be in [0, 1], got {success_rate}")
        if avg_latency_ms < 0:
            raise ValueError(f"avg_latency_ms must not be negative, got {avg_latency_ms}")
        latency = self.latency_score(avg_latency_ms)
        performance = success_rate * 100 * cfg.success_weight + latency * cfg.latency_weight
        adjustment = 1.0
        if success_rate < cfg.success_floor:
            adjustment *= cfg.success_penalty
        if avg_latency_ms > cfg.latency_ceiling_ms:
            adjustment *= cfg.latency_penalty
        final = (capability * cfg.capability_weight + performance) * adjustment
        return AdaptiveScore(
            capability, performance, latency, adjustment, True, success_rate, avg_latency_ms, final
        )


class AdaptiveStrategy:
    """Ranks targets by adaptive score: capability for the task's category, performance for its type.

    Deterministic (probability 1.0); ties keep the default order.
    """

    name = "adaptive"

    def __init__(
        self,
        capabilities: CapabilityTable,
        config: AdaptiveScorerConfig | None = None,
        default_capability: float = 50.0,
    ) -> None:
        self.capabilities = capabilities
        self.scorer = AdaptiveScorer(config)
        self.default_capability = default_capability

    def adopt(self, state: PublishedState, prior_cap: int) -> list[str]:
        if not state.capabilities:
            return [f"{self.name}: no capability scores published yet"]
        self.capabilities = state.capability_table()
        return [f"{self.name}: capability scores of {len(self.capabilities)} (target, category) pairs"]

    def choose(self, task: Task, targets: Sequence[Target], book: StatsBook) -> Choice:
        scored = []
        for target in targets:
            stats = book.get(target.name, task.task_type)
            capability = self.capabilities.get(target.name, task.category, self.default_capability)
            if stats is None or stats.n == 0:
                result = self.scorer.score(capability, None, None, 0)
            else:
                result = self.scorer.score(capability, stats.success_rate, stats.mean_latency_ms, stats.n)
            scored.append(candidate(target.name, result.final, stats, result.details()))
        scored.sort(key=lambda c: c.score, reverse=True)
        best = scored[0]
        live = best.details["used_performance_data"]
        source = "capability and live performance" if live else "capability only"
        reason = f"best adaptive score {best.score:.2f} for {task.category.value!r} ({source})"
        return Choice(tuple(scored), best.target, 1.0, reason)

    def observe(self, outcome: Outcome) -> None:
        """Nothing of its own to learn: it reads the shared StatsBook."""
