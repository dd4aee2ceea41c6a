"""The Pareto frontier of targets for one task type: success (maximised), cost and p95 latency (minimised).

A target off the frontier is beaten or matched on every objective by another one, so no choice of
weights can prefer it; the frontier is what is left to trade off.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from routing.models import FINITE


class TargetPerformance(BaseModel):
    """How one target does on one task type."""

    model_config = ConfigDict(extra="forbid", frozen=True, **FINITE)

    target: str = Field(min_length=1)
    success_rate: float = Field(ge=0, le=1)
    cost: float = Field(ge=0, allow_inf_nan=False, description="Mean dollars per call.")
    p95_latency_ms: float = Field(ge=0, allow_inf_nan=False)


def dominates(a: TargetPerformance, b: TargetPerformance) -> bool:
    """True if `a` is at least as good as `b` on every objective and strictly better on one."""
    no_worse = a.success_rate >= b.success_rate and a.cost <= b.cost and a.p95_latency_ms <= b.p95_latency_ms
    better = a.success_rate > b.success_rate or a.cost < b.cost or a.p95_latency_ms < b.p95_latency_ms
    return no_worse and better


def pareto_frontier(perfs: Sequence[TargetPerformance]) -> list[TargetPerformance]:
    """The targets no other target dominates, in input order; identical points all stay."""
    return [p for p in perfs if not any(dominates(q, p) for q in perfs)]
