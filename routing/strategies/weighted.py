"""The first scorer: success rate and relative speed, trusted only after enough calls per target."""

from __future__ import annotations

import random
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from routing.models import FINITE, Candidate, Outcome, Target, Task
from routing.stats.book import StatsBook
from routing.strategies.base import Choice


class WeightedScoreConfig(BaseModel):
    """`score = success_rate * success_weight + speed_score * speed_weight`, per task type."""

    model_config = ConfigDict(extra="forbid", **FINITE)

    success_weight: float = Field(default=0.7, ge=0)
    speed_weight: float = Field(default=0.3, ge=0)
    min_samples: int = Field(default=100, ge=1, description="Below this, the default order is kept.")
    explore_rate: float = Field(default=0.0, ge=0, le=1, description="Share of picks made at random.")

    @model_validator(mode="after")
    def _weights_sum_to_one(self) -> WeightedScoreConfig:
        total = self.success_weight + self.speed_weight
        if abs(total - 1.0) > 0.01:
            raise ValueError(f"success_weight + speed_weight must be 1 (within 0.01), got {total:g}")
        return self


RANKINGS_KEPT = 4096
"""(task type, eligible targets) rankings kept for reuse while their statistics are unchanged."""


class WeightedScore:
    """The first scorer: success and relative speed, trusted only after `min_samples` per target.

    `speed_score` is the fastest candidate's median latency over this one's (1 for the fastest), so
    it needs no absolute latency budget. Until every candidate has `min_samples` outcomes for the task
    type, the configured default order (the order targets were given in) stands: scores from a handful
    of calls would reorder targets on noise. `explore_rate` keeps data flowing to the others.
    """

    name = "weighted"

    def __init__(self, config: WeightedScoreConfig | None = None, seed: int | None = None) -> None:
        self.config = config or WeightedScoreConfig()
        self._rng = random.Random(seed)
        self._ranked: dict[tuple, tuple] = {}  # (task type, names) -> (stats, counts, ranking, trusted)

    def choose(self, task: Task, targets: Sequence[Target], book: StatsBook) -> Choice:
        cfg = self.config
        task_type = task.task_type
        stats = [book.get(t.name, task_type) for t in targets]
        counts = [s.n if s is not None else 0 for s in stats]
        key = (task_type, tuple(t.name for t in targets))
        ranked = self._ranked.pop(key, None)
        if ranked is None or ranked[1] != counts or any(a is not b for a, b in zip(ranked[0], stats)):
            ranked = (stats, counts, *self._rank(targets, stats, ranked[2] if ranked else ()))
        elif len(self._ranked) >= RANKINGS_KEPT:
            del self._ranked[next(iter(self._ranked))]
        self._ranked[key] = ranked
        candidates, trusted = ranked[2], ranked[3]
        k = len(candidates)
        if k > 1 and self._rng.random() < cfg.explore_rate:
            pick = self._rng.choice(candidates).target
            why = "explored at random"
        else:
            pick = candidates[0].target
            why = (
                f"best score {candidates[0].score:.3f} over {candidates[0].samples} calls"
                if trusted
                else f"default order (fewer than {cfg.min_samples} calls per target for {task_type!r})"
            )
        top = candidates[0].target
        explore_share = cfg.explore_rate / k if k > 1 else 0.0
        probability = (1 - cfg.explore_rate if k > 1 else 1.0) * (pick == top) + explore_share
        return Choice(candidates, pick, min(1.0, probability), why)

    def _rank(self, targets: Sequence[Target], stats: list, before: tuple) -> tuple[tuple[Candidate, ...], bool]:
        """(the candidates best first, whether scores are trusted); a candidate of `before` whose figures
        are unchanged is reused (after one outcome, usually all but one)."""
        cfg = self.config
        trusted = all(s is not None and s.n >= cfg.min_samples for s in stats)
        p50s = [s.p50_latency_ms if s is not None else None for s in stats]
        fastest = min((p for p in p50s if p), default=None)
        reusable = {c.target: c for c in before}
        candidates = []
        for position, (target, s, p50) in enumerate(zip(targets, stats, p50s)):
            success = s.success_rate if s is not None else None
            speed = fastest / p50 if fastest and p50 else 0.0
            score = (success or 0.0) * cfg.success_weight + speed * cfg.speed_weight
            shown = score if trusted else -position
            old = reusable.get(target.name)
            if (
                old is not None
                and old.score == shown
                and old.samples == (s.n if s is not None else 0)
                and old.success_rate == success
                and old.p50_latency_ms == p50
                and old.details["speed_score"] == speed
            ):
                candidates.append(old)
                continue
            candidates.append(
                Candidate(
                    target=target.name,
                    score=shown,
                    samples=s.n if s is not None else 0,
                    success_rate=success,
                    p50_latency_ms=p50,
                    details={"speed_score": speed, "weighted_score": score},
                )
            )
        if trusted:
            candidates.sort(key=lambda c: c.score, reverse=True)
        return tuple(candidates), trusted

    def observe(self, outcome: Outcome) -> None:
        """Nothing of its own to learn: it reads the shared StatsBook."""
