"""The first scorer: success rate and relative speed, trusted only after enough calls per target."""

from __future__ import annotations

import random
from collections.abc import Sequence
from operator import attrgetter

from pydantic import BaseModel, ConfigDict, Field, model_validator

from routing.models import FINITE, Candidate, Outcome, Target, Task
from routing.stats.book import StatsBook
from routing.strategies.base import Choice

_score = attrgetter("score")


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


class _Ranking:
    """One (task type, eligible targets) ranking and the book state it was built from."""

    __slots__ = ("book", "by_row", "candidates", "fastest", "p50s", "rows", "stats", "trusted", "version")

    def __init__(self, book: StatsBook, names: tuple[str, ...]) -> None:
        self.book, self.version = book, -1
        self.rows = {name: row for row, name in enumerate(names)}
        self.stats: list = []
        self.p50s: list = []
        self.by_row: list = []
        self.candidates: tuple[Candidate, ...] = ()
        self.fastest: float | None = None
        self.trusted = False


class WeightedScore:
    """The first scorer: success and relative speed, trusted only after `min_samples` per target.

    `speed_score` is the fastest candidate's median latency over this one's (1 for the fastest), so
    it needs no absolute latency budget. Until every candidate has `min_samples` outcomes for the task
    type, the configured default order (the order targets were given in) stands: scores from a handful
    of calls would reorder targets on noise. `explore_rate` keeps data flowing to the others.

    A ranking is kept per (task type, eligible targets) and redone from the book's `last_changed`:
    after one outcome only that target's candidate is rebuilt, unless the fastest median or the trust
    changed, which moves every score.
    """

    name = "weighted"

    def __init__(self, config: WeightedScoreConfig | None = None, seed: int | None = None) -> None:
        self.config = config or WeightedScoreConfig()
        self._rng = random.Random(seed)
        self._ranked: dict[tuple, _Ranking] = {}  # least recently used first
        self._latest: tuple | None = None  # the key of the latest decision's ranking
        self._repeated = False  # whether the decision before it used the same ranking

    def choose(self, task: Task, targets: Sequence[Target], book: StatsBook) -> Choice:
        cfg = self.config
        task_type = task.task_type
        names = tuple(t.name for t in targets)
        key = (task_type, names)
        ranking = self._ranked.pop(key, None)
        if ranking is None or ranking.book is not book:
            if len(self._ranked) >= RANKINGS_KEPT:
                del self._ranked[next(iter(self._ranked))]
            ranking = _Ranking(book, names)
        self._ranked[key] = ranking
        self._repeated, self._latest = key == self._latest, key
        if ranking.version != book.version:
            self._update(ranking, names, task_type, book)
        candidates, trusted = ranking.candidates, ranking.trusted
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

    def _update(self, ranking: _Ranking, names: tuple[str, ...], task_type: str, book: StatsBook) -> None:
        """Bring `ranking` up to the book's state: the rows the book's last observation changed when it
        is the only one since, every row otherwise."""
        if ranking.version >= 0 and book.version == ranking.version + 1:
            where = ranking.rows
            rows = [where[name] for name, kind in book.last_changed if kind == task_type and name in where]
        else:
            rows = range(len(names))
            ranking.stats = [None] * len(names)
            ranking.p50s = [None] * len(names)
            ranking.by_row = []
        ranking.version = book.version
        if not rows:
            return
        stats, p50s = ranking.stats, ranking.p50s
        for row in rows:
            s = stats[row] = book.get(names[row], task_type)
            p50s[row] = s.p50_latency_ms if s is not None else None
        min_samples = self.config.min_samples
        trusted = all(s is not None and s.n >= min_samples for s in stats)
        fastest = min((p for p in p50s if p), default=None)
        if not ranking.by_row or trusted != ranking.trusted or fastest != ranking.fastest:
            rows = range(len(names))
            ranking.by_row = [None] * len(names)
        ranking.trusted, ranking.fastest = trusted, fastest
        by_row = ranking.by_row
        cfg = self.config
        for row in rows:
            s, p50 = stats[row], p50s[row]
            success = s.success_rate if s is not None else None
            speed = fastest / p50 if fastest and p50 else 0.0
            score = (success or 0.0) * cfg.success_weight + speed * cfg.speed_weight
            by_row[row] = Candidate(
                names[row], score if trusted else -row, s.n if s is not None else 0, success, p50,
                {"speed_score": speed, "weighted_score": score},
            )
        ranking.candidates = tuple(sorted(by_row, key=_score, reverse=True)) if trusted else tuple(by_row)

    def observe(self, outcome: Outcome) -> None:
        """Nothing of its own to learn (it reads the shared StatsBook, which the Router has just updated),
        but if the latest two decisions used one ranking and `outcome` changed it, it is brought up to
        date now: the next decision, likely the same kind, finds it ready (the work moves, it is not saved)."""
        latest = self._latest
        ranking = self._ranked.get(latest) if self._repeated else None
        if ranking is not None and latest[0] == outcome.task_type and ranking.version != ranking.book.version:
            self._update(ranking, latest[1], outcome.task_type, ranking.book)
