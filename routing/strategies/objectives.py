"""What a task type optimises for: a priority (interactive, batch, critical, balanced) and the weights of
success, cost and latency that the cost-aware optimizer scores with. Saved per task type by
`adaptive-router set-strategy`; plain models, so reading them costs no optimizer import.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from routing.models import FINITE


class Priority(StrEnum):
    """What a task type cares about first; picks the preset weights and breaks ties between equal scores."""

    BALANCED = "balanced"  # success, then cost
    INTERACTIVE = "interactive"  # latency first
    BATCH = "batch"  # cost first
    CRITICAL = "critical"  # success first


class StrategyWeights(BaseModel):
    """Weights of the score's three terms (see the module docstring); they sum to 1."""

    model_config = ConfigDict(extra="forbid", frozen=True, **FINITE)

    success: float = Field(default=0.6, ge=0, le=1)
    cost: float = Field(default=0.4, ge=0, le=1)
    latency: float = Field(default=0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> StrategyWeights:
        total = self.success + self.cost + self.latency
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"weights success + cost + latency must sum to 1, got {total:g}")
        return self


PRESETS: Mapping[Priority, StrategyWeights] = MappingProxyType(
    {
        Priority.BALANCED: StrategyWeights(),
        Priority.INTERACTIVE: StrategyWeights(success=0.4, cost=0.1, latency=0.5),
        Priority.BATCH: StrategyWeights(success=0.4, cost=0.6),
        Priority.CRITICAL: StrategyWeights(success=0.95, cost=0.05),
    }
)

TIE_BREAK = {
    Priority.BALANCED: "success",
    Priority.INTERACTIVE: "latency",
    Priority.BATCH: "cost",
    Priority.CRITICAL: "success",
}


class Objective(BaseModel):
    """What to optimise for a task type: a priority, with that priority's preset weights unless given."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    priority: Priority = Priority.BALANCED
    weights: StrategyWeights = StrategyWeights()

    @model_validator(mode="before")
    @classmethod
    def _preset_weights(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("weights") is None:
            priority = data.get("priority", Priority.BALANCED)
            if isinstance(priority, str) and priority in PRESETS:
                return {**data, "weights": PRESETS[priority]}
        return data
