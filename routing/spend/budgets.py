"""Spending limits per day, ISO week or calendar month, overall, per target or per task type.

Periods are computed in UTC: a day starts at 00:00, a week on Monday 00:00 (ISO 8601), a month on the
1st at 00:00. Every `now` must be timezone-aware, so a naive local clock cannot silently shift a period.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, field_validator, model_validator

from routing.errors import RoutingError
from routing.models import FINITE, Target, Task
from routing.spend.cost import check_amount, usd


class Period(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class Scope(StrEnum):
    OVERALL = "overall"
    TARGET = "target"
    TASK_TYPE = "task_type"


BudgetKey = tuple[Period, Scope, str | None]
Bucket = tuple[BudgetKey, datetime]


def _utc(moment: datetime, name: str = "now") -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {moment.isoformat()}")
    return moment.astimezone(UTC)


def period_start(period: Period, now: datetime) -> datetime:
    """Start (UTC) of the `period` that contains `now`."""
    day = _utc(now).replace(hour=0, minute=0, second=0, microsecond=0)
    if period is Period.DAILY:
        return day
    if period is Period.WEEKLY:
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def next_period_start(period: Period, now: datetime) -> datetime:
    """Start (UTC) of the `period` after the one that contains `now`."""
    start = period_start(period, now)
    if period is Period.DAILY:
        return start + timedelta(days=1)
    if period is Period.WEEKLY:
        return start + timedelta(days=7)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


class Budget(BaseModel):
    """At most `limit` dollars per `period` for `scope` (all calls, one target, or one task type).

    `policy` says what to do with a call that does not fit: "reject" it, or "queue" it until
    `next_reset`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, **FINITE)

    period: Period
    scope: Scope = Scope.OVERALL
    scope_value: str | None = Field(default=None, description="Target name or task type; None if overall.")
    limit: float = Field(ge=0, allow_inf_nan=False, description="Dollars per period.")
    policy: Literal["reject", "queue"] = "reject"

    @model_validator(mode="after")
    def _scope_value_fits_scope(self) -> Budget:
        if self.scope is Scope.OVERALL and self.scope_value is not None:
            raise ValueError(f"scope_value must be None for scope 'overall', got {self.scope_value!r}")
        if self.scope is not Scope.OVERALL and not (self.scope_value or "").strip():
            raise ValueError(f"scope_value is required for scope {self.scope.value!r}")
        return self

    @property
    def key(self) -> BudgetKey:
        return (self.period, self.scope, self.scope_value)

    def applies_to(self, task_type: str, target: str) -> bool:
        if self.scope is Scope.TARGET:
            return self.scope_value == target
        if self.scope is Scope.TASK_TYPE:
            return self.scope_value == task_type
        return True

    def __str__(self) -> str:
        where = ""
        if self.scope is not Scope.OVERALL:
            where = f" for {self.scope.value.replace('_', ' ')} {self.scope_value!r}"
        return f"{self.period.value} budget{where} (limit {usd(self.limit)})"


def next_reset(budget: Budget, now: datetime) -> datetime:
    """When `budget`'s current period ends and its spend starts again from zero."""
    return next_period_start(budget.period, now)


class SpendRow(BaseModel):
    """One aggregate row from the store: dollars spent in one period of one budget's scope.

    `period_start` may be a date, or a naive datetime read as UTC (DuckDB's TIMESTAMP has no zone).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, **FINITE)

    period: Period
    scope: Scope
    key: str | None = Field(description="Target name or task type; None, '' or '*' for overall.")
    period_start: datetime
    spent: NonNegativeFloat

    @field_validator("period_start", mode="before")
    @classmethod
    def _as_utc(cls, value: object) -> object:
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime(value.year, value.month, value.day, tzinfo=UTC)
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @model_validator(mode="after")
    def _aligned(self) -> SpendRow:
        if period_start(self.period, self.period_start) != self.period_start:
            raise ValueError(
                f"period_start {self.period_start.isoformat()} does not start a {self.period.value} period"
            )
        if self.scope is Scope.OVERALL and self.key not in (None, "", "*"):
            raise ValueError(f"key must be None, '' or '*' for scope 'overall', got {self.key!r}")
        return self

    @property
    def budget_key(self) -> BudgetKey:
        return (self.period, self.scope, None if self.scope is Scope.OVERALL else self.key)


@dataclass(frozen=True)
class Violation:
    """One budget a call does not fit in, with the figures that say by how much."""

    budget: Budget
    period_start: datetime
    resets_at: datetime
    spent: float
    reserved: float
    estimate: float

    @property
    def fits_after_reset(self) -> bool:
        return self.estimate <= self.budget.limit

    def __str__(self) -> str:
        return (
            f"{self.budget}: {usd(self.spent)} spent and {usd(self.reserved)} in flight since "
            f"{self.period_start:%Y-%m-%d}, this call ~{usd(self.estimate)}"
        )


@dataclass(frozen=True)
class BudgetCheck:
    """Whether a call fits every budget that applies to it, and which ones it does not fit."""

    violations: tuple[Violation, ...] = ()

    @property
    def allowed(self) -> bool:
        return not self.violations

    @property
    def policy(self) -> Literal["reject", "queue"] | None:
        """None if allowed; "queue" only if every violated budget queues and the call fits after a reset."""
        if self.allowed:
            return None
        if all(v.budget.policy == "queue" and v.fits_after_reset for v in self.violations):
            return "queue"
        return "reject"

    @property
    def retry_at(self) -> datetime | None:
        """When a queued call should be checked again: once every violated budget has reset."""
        return max(v.resets_at for v in self.violations) if self.policy == "queue" else None


class BudgetExceededError(RoutingError):
    """A call does not fit a budget; the message names each budget, its limit and what is spent."""

    def __init__(self, check: BudgetCheck) -> None:
        self.check = check
        self.policy = check.policy
        self.retry_at = check.retry_at
        detail = "; ".join(str(v) for v in check.violations)
        when = f"; queued until {self.retry_at.isoformat()}" if self.retry_at else ""
        super().__init__(f"budget exceeded: {detail}{when}")


@dataclass(frozen=True)
class Reservation:
    """An admitted call's estimate, held against the periods it was admitted in until it is reconciled."""

    id: int
    estimate: float
    buckets: tuple[Bucket, ...]


class BudgetLedger:
    """Spend per (budget, period start), plus reservations for calls in flight.

    Guarantee: for every budget and period, the sum of the actual costs of the calls this ledger admitted
    (`reserve`) never exceeds the limit by more than the sum of those calls' overshoots (actual minus
    estimate, where positive), which `reconcile` reports. Why: `reserve` checks and reserves under one
    lock, and admits a call only if spent + in-flight estimates + its estimate <= limit in every budget
    that applies; reconciling replaces an estimate by the actual cost, which moves that total by the
    overshoot at most; and the actual cost is charged to the periods the call was admitted in, even when
    it finishes after a reset. So with every actual <= its estimate, no budget is ever exceeded. Costs
    added by `record` or `load` (calls made elsewhere) were not admitted here and can exceed a limit;
    they then block further paid calls until the reset. A free call (estimate 0) is always admitted.
    """

    def __init__(self, budgets: Iterable[Budget]) -> None:
        self.budgets = tuple(budgets)
        keys = [b.key for b in self.budgets]
        if duplicates := sorted({str(b) for b in self.budgets if keys.count(b.key) > 1}):
            raise ValueError(f"more than one budget for the same period and scope: {', '.join(duplicates)}")
        self._spent: dict[Bucket, float] = {}
        self._inflight: dict[int, Reservation] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def load(self, rows: Iterable[SpendRow | Sequence | Mapping]) -> None:
        """Set spend from aggregate rows (period, scope, key, period_start, spent).

        Each row replaces the spend of its bucket; rows for scopes no budget covers are ignored. Load at
        start-up, or rows that already include the calls reconciled here: a stale row would forget them.
        """
        budgeted = {b.key for b in self.budgets}
        parsed = [_spend_row(row) for row in rows]
        with self._lock:
            for row in parsed:
                if row.budget_key in budgeted:
                    self._spent[(row.budget_key, row.period_start)] = row.spent

    def close(self) -> None:
        """Release what the ledger holds open (a server's client); this one holds nothing."""

    def seed(self, rows: Iterable[SpendRow | Sequence | Mapping]) -> None:
        """Start from the store's spend: a new ledger loads it; a shared one only where it has none."""
        self.load(rows)

    def check(self, task: Task, target: Target, estimate: float, now: datetime) -> BudgetCheck:
        """Would a call of `task` on `target` costing `estimate` fit every budget that applies now?"""
        with self._lock:
            return self._check(task.task_type, target.name, estimate, now)

    def reserve(self, task: Task, target: Target, estimate: float, now: datetime) -> Reservation:
        """Admit a call and hold its estimate; raise `BudgetExceededError` if it does not fit."""
        with self._lock:
            check = self._check(task.task_type, target.name, estimate, now)
            if not check.allowed:
                raise BudgetExceededError(check)
            buckets = self._buckets(task.task_type, target.name, now)
            reservation = Reservation(next(self._ids), estimate, buckets)
            self._inflight[reservation.id] = reservation
            return reservation

    def reconcile(self, reservation: Reservation, actual: float) -> float:
        """Charge the call's actual cost in place of its estimate; return its overshoot (0 if within it)."""
        check_amount("actual", actual)
        with self._lock:
            if self._inflight.pop(reservation.id, None) is None:
                raise ValueError(f"reservation {reservation.id} is not in flight (reconciled twice?)")
            for bucket in reservation.buckets:
                self._spent[bucket] = self._spent.get(bucket, 0.0) + actual
        return max(0.0, actual - reservation.estimate)

    def record(self, task_type: str, target: str, cost: float, when: datetime) -> None:
        """Add a cost that was not reserved here, e.g. a call made by another process."""
        check_amount("cost", cost)
        when = _utc(when, "when")
        with self._lock:
            for bucket in self._buckets(task_type, target, when):
                self._spent[bucket] = self._spent.get(bucket, 0.0) + cost

    def spent(self, budget: Budget, now: datetime) -> float:
        """Dollars charged to `budget` in the period containing `now` (in-flight estimates excluded)."""
        with self._lock:
            return self._spent.get((budget.key, period_start(budget.period, now)), 0.0)

    def remaining(self, task: Task, target: Target, now: datetime) -> float | None:
        """The most a call of `task` on `target` may cost now (a `max_cost`), or None if no budget applies."""
        with self._lock:
            room = [
                b.limit - self._spent.get(bucket, 0.0) - self._reserved(bucket)
                for b, bucket in self._applicable(task.task_type, target.name, now)
            ]
        return max(0.0, min(room)) if room else None

    def _applicable(self, task_type: str, target: str, now: datetime) -> list[tuple[Budget, Bucket]]:
        return [
            (b, (b.key, period_start(b.period, now))) for b in self.budgets if b.applies_to(task_type, target)
        ]

    def _buckets(self, task_type: str, target: str, now: datetime) -> tuple[Bucket, ...]:
        return tuple(bucket for _, bucket in self._applicable(task_type, target, now))

    def _reserved(self, bucket: Bucket) -> float:
        return math.fsum(r.estimate for r in self._inflight.values() if bucket in r.buckets)

    def _check(self, task_type: str, target: str, estimate: float, now: datetime) -> BudgetCheck:
        check_amount("estimate", estimate)
        now = _utc(now)
        if estimate == 0:
            return BudgetCheck()
        violations = []
        for budget, bucket in self._applicable(task_type, target, now):
            spent, reserved = self._spent.get(bucket, 0.0), self._reserved(bucket)
            if spent + reserved + estimate > budget.limit:
                violations.append(
                    Violation(budget, bucket[1], next_reset(budget, now), spent, reserved, estimate)
                )
        return BudgetCheck(tuple(violations))


def _spend_row(row: SpendRow | Sequence | Mapping) -> SpendRow:
    if isinstance(row, SpendRow):
        return row
    if isinstance(row, Mapping):
        return SpendRow.model_validate(row)
    return SpendRow.model_validate(dict(zip(SpendRow.model_fields, row, strict=True)))
