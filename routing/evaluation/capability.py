"""Capability scores (0-100) per target and category, distilled from benchmark results.

A benchmark run scores each target on cases of each category; this table turns those results into one
number per (target, category) that the adaptive scorer starts from before live traffic says more.
Quality is absolute (0-100 per case); speed and cost only mean something relative to the other targets,
so within a category they are normalised as ratios to the best: the fastest (cheapest) target gets 100,
one twice as slow (dear) gets 50. A free target therefore drives every paid one's cost score to 0: cost
weights are small for that reason.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from statistics import fmean

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, model_validator

from routing.models import FINITE, Category, utcnow


class BenchmarkResult(BaseModel):
    """One target's result on one benchmark case; a benchmark flow stores these."""

    model_config = ConfigDict(extra="forbid", frozen=True, **FINITE)

    target: str = Field(min_length=1)
    category: Category
    case_id: str = Field(min_length=1)
    quality: float = Field(ge=0, le=100)
    duration_ms: NonNegativeFloat
    cost: NonNegativeFloat = 0.0
    timestamp: datetime = Field(default_factory=utcnow)


class CategoryWeights(BaseModel):
    """How much quality, speed and cost count in one category's capability score."""

    model_config = ConfigDict(extra="forbid", frozen=True, **FINITE)

    quality: float = Field(ge=0)
    speed: float = Field(ge=0)
    cost: float = Field(ge=0)

    @model_validator(mode="after")
    def _sum_to_one(self) -> CategoryWeights:
        total = self.quality + self.speed + self.cost
        if abs(total - 1.0) > 0.01:
            raise ValueError(f"quality + speed + cost must be 1 (within 0.01), got {total:g}")
        return self


# Where a wrong answer is costly (code, maths) quality dominates; for chit-chat (general, language) a
# fast, cheap answer is worth more. Empathy and research sit between: tone and substance matter most.
DEFAULT_WEIGHTS: dict[Category, CategoryWeights] = {
    Category.CODING: CategoryWeights(quality=0.70, speed=0.15, cost=0.15),
    Category.MATH: CategoryWeights(quality=0.70, speed=0.15, cost=0.15),
    Category.RESEARCH: CategoryWeights(quality=0.60, speed=0.20, cost=0.20),
    Category.EMPATHY: CategoryWeights(quality=0.60, speed=0.25, cost=0.15),
    Category.LANGUAGE: CategoryWeights(quality=0.50, speed=0.25, cost=0.25),
    Category.GENERAL: CategoryWeights(quality=0.40, speed=0.30, cost=0.30),
}


def _relative_to_best(value: float, best: float) -> float:
    """100 for the best (lowest) value, 100 * best / value otherwise; zero counts as best."""
    if value <= 0:
        return 100.0
    return 100.0 * best / value


class CapabilityTable:
    """Scores keyed by (target, category); unknown pairs fall back to a neutral default."""

    def __init__(self, scores: Mapping[tuple[str, Category], float] | None = None) -> None:
        self._scores: dict[tuple[str, Category], float] = {}
        for (target, category), score in (scores or {}).items():
            if not 0 <= score <= 100:
                raise ValueError(f"capability score for {target}/{category} must be in [0, 100], got {score}")
            self._scores[(target, Category(category))] = float(score)

    @classmethod
    def from_results(
        cls,
        results: Iterable[BenchmarkResult],
        weights: Mapping[Category, CategoryWeights] | None = None,
    ) -> CapabilityTable:
        """Mean quality, duration and cost per (target, category), combined with that category's weights.

        `weights` overrides the defaults category by category.
        """
        chosen = {**DEFAULT_WEIGHTS, **(weights or {})}
        groups: dict[tuple[str, Category], list[BenchmarkResult]] = defaultdict(list)
        for r in results:
            groups[(r.target, r.category)].append(r)
        means = {
            key: (fmean(r.quality for r in rs), fmean(r.duration_ms for r in rs), fmean(r.cost for r in rs))
            for key, rs in groups.items()
        }
        fastest: dict[Category, float] = {}
        cheapest: dict[Category, float] = {}
        for (_, category), (_, duration, cost) in means.items():
            fastest[category] = min(duration, fastest.get(category, duration))
            cheapest[category] = min(cost, cheapest.get(category, cost))
        scores = {}
        for (target, category), (quality, duration, cost) in means.items():
            w = chosen[category]
            score = (
                quality * w.quality
                + _relative_to_best(duration, fastest[category]) * w.speed
                + _relative_to_best(cost, cheapest[category]) * w.cost
            )
            scores[(target, category)] = min(100.0, score)  # weights may sum to 1.01
        return cls(scores)

    def get(self, target: str, category: Category, default: float = 50.0) -> float:
        return self._scores.get((target, category), default)

    def to_dict(self) -> dict[str, dict[str, float]]:
        """`{target: {category: score}}`, JSON-ready."""
        out: dict[str, dict[str, float]] = defaultdict(dict)
        for (target, category), score in sorted(self._scores.items()):
            out[target][category.value] = score
        return dict(out)

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, float]]) -> CapabilityTable:
        try:
            return cls({(t, Category(c)): s for t, by_cat in data.items() for c, s in by_cat.items()})
        except ValueError as exc:
            raise ValueError(f"invalid capability table: {exc}") from exc

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CapabilityTable) and self._scores == other._scores

    def __len__(self) -> int:
        return len(self._scores)
