"""A budget ledger shared by every process that can open one SQLite file: reservations across workers.

`BudgetLedger` reserves under an in-process lock, so N router processes each admit up to the whole
limit. This ledger keeps spend and in-flight reservations in one SQLite file and makes every
check-and-reserve one `BEGIN IMMEDIATE` transaction (SQLite's write lock serialises them across
processes), so the in-process guarantee holds across processes: for every budget and period, the
actual cost of admitted calls exceeds the limit by at most the sum of their overshoots (actual minus
estimate, where positive); with estimates that are upper bounds, by nothing. One more term: a
reservation whose process died is held for `lease_seconds`, then dropped; if that process's call was
made and its outcome reaches the ledger only later (through `record`), that call's cost can add to
the overshoot. So the bound is: sum of overshoots + costs of calls whose process died in flight.

Where: any filesystem whose POSIX locks work across the processes sharing it (one machine, or NFS
with lockd). Across machines without such a filesystem, point every router at a server-side database
with the same two tables and `SELECT ... FOR UPDATE` (not built here).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path

from routing.models import Target, Task
from routing.spend.budgets import (
    Bucket,
    Budget,
    BudgetCheck,
    BudgetExceededError,
    BudgetLedger,
    Reservation,
    SpendRow,
    Violation,
    _spend_row,
    _utc,
    next_reset,
    period_start,
)
from routing.spend.cost import check_amount

SCHEMA = """
CREATE TABLE IF NOT EXISTS spent (bucket TEXT PRIMARY KEY, amount REAL NOT NULL);
CREATE TABLE IF NOT EXISTS inflight (
    id INTEGER PRIMARY KEY AUTOINCREMENT, estimate REAL NOT NULL, buckets TEXT NOT NULL, expires REAL NOT NULL
);
"""


def _bucket_id(bucket: Bucket) -> str:
    (period, scope, key), start = bucket
    return f"{period}|{scope}|{key or ''}|{start.isoformat()}"


class SharedBudgetLedger(BudgetLedger):
    """`BudgetLedger`'s contract over a SQLite file every router process opens (see the module)."""

    def __init__(self, budgets: Iterable[Budget], path: str | Path, lease_seconds: float = 600.0) -> None:
        super().__init__(budgets)
        self.path = Path(path)
        self.lease_seconds = lease_seconds
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        con.execute("PRAGMA busy_timeout = 60000")
        return con

    def _transaction(self, work):
        """Run `work(con)` inside one BEGIN IMMEDIATE transaction (the cross-process write lock)."""
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                result = work(con)
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
            return result
        finally:
            con.close()

    def _figures(self, con: sqlite3.Connection, buckets: Sequence[Bucket]) -> list[tuple[float, float]]:
        """(spent, reserved in flight) per bucket, leases of dead processes past expiry left out."""
        con.execute("DELETE FROM inflight WHERE expires < ?", (time.time(),))
        ids = [_bucket_id(b) for b in buckets]
        spent = dict(con.execute(
            f"SELECT bucket, amount FROM spent WHERE bucket IN ({','.join('?' * len(ids))})", ids
        ).fetchall()) if ids else {}
        reserved = dict.fromkeys(ids, 0.0)
        for estimate, held in con.execute("SELECT estimate, buckets FROM inflight"):
            for bucket in json.loads(held):
                if bucket in reserved:
                    reserved[bucket] += estimate
        return [(spent.get(i, 0.0), reserved[i]) for i in ids]

    def _violations(self, con, task_type: str, target: str, estimate: float, now: datetime) -> BudgetCheck:
        check_amount("estimate", estimate)
        now = _utc(now)
        if estimate == 0:
            return BudgetCheck()
        applicable = self._applicable(task_type, target, now)
        figures = self._figures(con, [bucket for _, bucket in applicable])
        violations = [
            Violation(budget, bucket[1], next_reset(budget, now), spent, reserved, estimate)
            for (budget, bucket), (spent, reserved) in zip(applicable, figures)
            if spent + reserved + estimate > budget.limit
        ]
        return BudgetCheck(tuple(violations))

    def is_new(self) -> bool:
        """Nothing charged or reserved yet: the file may be seeded with the store's spend."""
        return self._transaction(
            lambda con: con.execute("SELECT (SELECT count(*) FROM spent) + (SELECT count(*) FROM inflight)")
            .fetchone()[0] == 0
        )

    def check(self, task: Task, target: Target, estimate: float, now: datetime) -> BudgetCheck:
        return self._transaction(lambda con: self._violations(con, task.task_type, target.name, estimate, now))

    def reserve(self, task: Task, target: Target, estimate: float, now: datetime) -> Reservation:
        def work(con: sqlite3.Connection) -> Reservation:
            check = self._violations(con, task.task_type, target.name, estimate, now)
            if not check.allowed:
                raise BudgetExceededError(check)
            buckets = self._buckets(task.task_type, target.name, _utc(now))
            cursor = con.execute(
                "INSERT INTO inflight (estimate, buckets, expires) VALUES (?, ?, ?)",
                (estimate, json.dumps([_bucket_id(b) for b in buckets]), time.time() + self.lease_seconds),
            )
            return Reservation(int(cursor.lastrowid), estimate, buckets)

        return self._transaction(work)

    def reconcile(self, reservation: Reservation, actual: float) -> float:
        check_amount("actual", actual)

        def work(con: sqlite3.Connection) -> None:
            # An expired lease is gone already: the call is charged all the same (it was made).
            con.execute("DELETE FROM inflight WHERE id = ?", (reservation.id,))
            self._charge(con, reservation.buckets, actual)

        self._transaction(work)
        return max(0.0, actual - reservation.estimate)

    def record(self, task_type: str, target: str, cost: float, when: datetime) -> None:
        check_amount("cost", cost)
        buckets = self._buckets(task_type, target, _utc(when, "when"))
        self._transaction(lambda con: self._charge(con, buckets, cost))

    def load(self, rows: Iterable[SpendRow | Sequence | Mapping]) -> None:
        """Set spend from aggregate rows, as `BudgetLedger.load` does (the shared file is replaced)."""
        budgeted = {b.key for b in self.budgets}
        parsed = [r for r in map(_spend_row, rows) if r.budget_key in budgeted]

        def work(con: sqlite3.Connection) -> None:
            for row in parsed:
                con.execute(
                    "INSERT OR REPLACE INTO spent VALUES (?, ?)",
                    (_bucket_id((row.budget_key, row.period_start)), row.spent),
                )

        self._transaction(work)

    def spent(self, budget: Budget, now: datetime) -> float:
        bucket = (budget.key, period_start(budget.period, _utc(now)))
        return self._transaction(lambda con: self._figures(con, [bucket])[0][0])

    def remaining(self, task: Task, target: Target, now: datetime) -> float | None:
        applicable = self._applicable(task.task_type, target.name, _utc(now))
        if not applicable:
            return None
        figures = self._transaction(lambda con: self._figures(con, [b for _, b in applicable]))
        return max(0.0, min(b.limit - s - r for (b, _), (s, r) in zip(applicable, figures)))

    @staticmethod
    def _charge(con: sqlite3.Connection, buckets: Sequence[Bucket], amount: float) -> None:
        for bucket in buckets:
            con.execute(
                "INSERT INTO spent VALUES (?, ?) ON CONFLICT (bucket) DO UPDATE SET amount = amount + ?",
                (_bucket_id(bucket), amount, amount),
            )
