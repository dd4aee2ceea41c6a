"""Telemetry sampling: which routed tasks keep their detail rows and events, and the weight they carry.

At high volume most of the cost of an outcome is logging it (a spooled decision and execution row,
optionally a Prefect event each), not learning from it. A `DetailSampling` keeps a fraction `rate` of
the routed tasks of each task type; the rest are learned from, budgeted and settled like any other
(the learners and the budget ledger see every outcome in process) but leave no detail row and no event.

Where the counts of the outcomes not kept live: in the weights. A kept row carries `weight = 1/rate`,
its inverse inclusion probability, so the weighted sum over kept rows (`sum(weight)`, `sum(weight *
cost)`, ...) is the Horvitz-Thompson estimator of the sum over every outcome: unbiased whatever the
rates are and however they changed over time, with no second table to keep consistent with the
first, nothing extra to write per dropped outcome (that would cost most of what sampling saves), and
nothing to lose in a crash between flushes. Its relative standard error for a count of N outcomes at
rate r is sqrt((1 - r) / (r N)): 1 % for N = 100,000 at r = 0.1. Percentiles and means are weighted
the same way; confidence intervals use Kish's effective sample size, not the weighted count.

The decision is a hash of the routed task's decision id (else the execution id), never a random draw:
a decision, every attempt it led to and their events share one fate (chains stay whole for `explain`),
any process decides the same (replays and tests are reproducible), and no state is kept.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from routing.models import FINITE

Rate = Annotated[float, Field(gt=0, le=1)]
"""A sampling rate: the share of routed tasks whose detail is kept, in (0, 1]."""

_SPAN = 1 << 64


def _draw(key: str) -> int:
    """A stable uniform draw in [0, 2^64) from `key` (the same in every process, unlike `hash`)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


def keeps(key: str, rate: float) -> bool:
    """Whether the item `key` is in the sample at `rate`."""
    return rate >= 1.0 or _draw(key) < rate * _SPAN


class DetailSampling(BaseModel):
    """Detail-row and event sampling rates per task type (`rates`), else `default_rate`."""

    model_config = ConfigDict(extra="forbid", frozen=True, **FINITE)

    default_rate: Rate = Field(default=1.0, description="Rate of task types not named in `rates`.")
    rates: dict[str, Rate] = Field(default_factory=dict, description="Rate per task type.")

    @cached_property
    def _cuts(self) -> tuple[dict[str, tuple[int, float]], tuple[int, float]]:
        """Each rate as (draws below this are kept, weight), per task type and by default: one
        comparison per routed task (a cached property, not a pydantic private attribute, which is
        several times slower to read)."""
        return {task_type: _cut(rate) for task_type, rate in self.rates.items()}, _cut(self.default_rate)

    def rate(self, task_type: str) -> float:
        return self.rates.get(task_type, self.default_rate)

    def weight(self, key: str, task_type: str) -> float | None:
        """The weight (1/rate) a kept item's row carries, or None when the item is not kept."""
        per_type, default = self._cuts
        cut, weight = per_type.get(task_type, default)
        if cut >= _SPAN:
            return 1.0
        return weight if _draw(key) < cut else None

    @property
    def samples(self) -> bool:
        """False when every rate is 1 (nothing is ever dropped)."""
        return self.default_rate < 1.0 or any(r < 1.0 for r in self.rates.values())


def _cut(rate: float) -> tuple[int, float]:
    return (_SPAN if rate >= 1.0 else int(rate * _SPAN)), 1.0 / rate
