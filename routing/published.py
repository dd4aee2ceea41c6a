"""What the scheduled flows publish for routers, and how a router adopts it.

A recalculation or benchmark run publishes a `PublishedState`: the statistics snapshot per (target,
task type), per (target, task type, category) success/failure counts to seed bandits with, and the
capability table from the latest benchmark. Routers read it from a file (see blocks/store/snapshots.py),
never from DuckDB, and `apply_published` hands each part to the strategies that can use it.

Each strategy that implements `AdoptsPublished` decides what it takes. Published history seeds a bandit
as at most `prior_cap` calls per (target, context), keeping its success rate: enough to start from the
right order, little enough that live data overturns it within a few hundred calls.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    field_validator,
    model_validator,
)

from routing.evaluation.capability import CapabilityTable
from routing.models import FINITE, Category, utcnow
from routing.router import Router
from routing.stats.snapshot import StatsSnapshot
from routing.strategies.base import AdoptsPublished, walk

DEFAULT_PRIOR_CAP = 100


class BanditPrior(BaseModel):
    """Successes and failures of one target on one (task type, category), from the store."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str = Field(min_length=1)
    task_type: str = Field(min_length=1)
    category: Category
    successes: NonNegativeInt
    failures: NonNegativeInt

    @property
    def n(self) -> int:
        return self.successes + self.failures

    def capped(self, cap: int) -> tuple[int, int]:
        """(successes, failures) scaled down to at most `cap` calls, keeping the success rate."""
        if self.n <= cap:
            return self.successes, self.failures
        successes = round(self.successes * cap / self.n)
        return successes, cap - successes


class PublishedState(BaseModel):
    """Everything routers learn from the scheduled flows, in one JSON document."""

    model_config = ConfigDict(extra="forbid", frozen=True, **FINITE)

    format: Literal[1] = 1
    created_at: datetime = Field(default_factory=utcnow)
    snapshot: StatsSnapshot = Field(default_factory=StatsSnapshot)
    priors: tuple[BanditPrior, ...] = ()
    capabilities: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="{target: {category: score 0-100}}, as CapabilityTable.to_dict()."
    )

    @field_validator("capabilities")
    @classmethod
    def _valid_capabilities(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        CapabilityTable.from_dict(value)  # raises naming the bad category or score
        return value

    @model_validator(mode="after")
    def _unique_priors(self) -> PublishedState:
        seen: set[tuple[str, str, Category]] = set()
        for prior in self.priors:
            key = (prior.target, prior.task_type, prior.category)
            if key in seen:
                raise ValueError(
                    f"priors: duplicate prior for target {key[0]!r}, task type {key[1]!r}, category {key[2]!r}"
                )
            seen.add(key)
        return self

    def capability_table(self) -> CapabilityTable:
        return CapabilityTable.from_dict(self.capabilities)


def apply_published(
    state: PublishedState, router: Router, prior_cap: PositiveInt = DEFAULT_PRIOR_CAP
) -> list[str]:
    """Hand `state` to the router's strategy (and an ensemble's members); returns what was done, in words."""
    if prior_cap < 1:
        raise ValueError(f"prior_cap must be at least 1, got {prior_cap}")
    return [
        line
        for strategy in walk(router.strategy)
        if isinstance(strategy, AdoptsPublished)
        for line in strategy.adopt(state, prior_cap)
    ]
