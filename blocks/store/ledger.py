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
with lockd). Across machines, use the Prefect server's global concurrency limits instead
(blocks/store/prefect_ledger.py): `open_ledger` picks one of the three from a location string.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qsl

from routing.errors import ConfigError
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

PREFECT = "prefect"
"""The location naming the Prefect server's ledger: 'prefect', or 'prefect?unit=0.0001&namespace=team-a'."""
DEFAULT_UNIT = 1e-6
DEFAULT_NAMESPACE = "adaptive-router-budget"
NAME_BANNED = re.compile(r"[/%&<>:]")
"""Characters Prefect bans in a limit's name, and ':', which separates the parts of the ledger's names."""


def check_unit(unit: float) -> float:
    if not (isinstance(unit, int | float) and math.isfinite(unit) and 0 < unit <= 1):
        raise ConfigError(f"unit must be a number of dollars in (0, 1], e.g. 0.000001, got {unit!r}")
    return float(unit)


def check_namespace(namespace: str) -> str:
    if not namespace or NAME_BANNED.search(namespace):
        raise ConfigError(f"namespace must be a non-empty name without / % & < > or ':', got {namespace!r}")
    return namespace


def prefect_ledger_options(location: str) -> dict[str, float | str] | None:
    """The Prefect ledger's options if `location` names it ('prefect?unit=...&namespace=...'), else None
    (a SQLite file's path; write './prefect' for a file of that name)."""
    base, mark, query = location.partition("?")
    if base != PREFECT:
        return None
    options: dict[str, float | str] = {}
    try:
        pairs = parse_qsl(query, strict_parsing=True) if mark else []
    except ValueError as exc:
        raise ConfigError(f"budget ledger {location!r}: expected prefect?unit=0.000001&namespace=NAME") from exc
    for key, value in pairs:
        if key == "unit":
            try:
                unit = float(value)
            except ValueError:
                raise ConfigError(f"budget ledger {location!r}: unit must be a number, got {value!r}") from None
            options[key] = check_unit(unit)
        elif key == "namespace":
            options[key] = check_namespace(value)
        else:
            raise ConfigError(f"budget ledger {location!r}: unknown option {key!r}; known: unit, namespace")
    return options


def open_ledger(budgets: Sequence[Budget], location: str | Path | None) -> BudgetLedger:
    """The ledger a location names: None -> this process only; 'prefect[?...]' -> the Prefect server's
    global concurrency limits (across machines); any other string or a Path -> a SQLite file (one filesystem)."""
    if location is None:
        return BudgetLedger(budgets)
    options = None if isinstance(location, Path) else prefect_ledger_options(location)
    if options is None:
        return SharedBudgetLedger(budgets, location)
    from blocks.store.prefect_ledger import PrefectBudgetLedger  # imports Prefect's client

    return PrefectBudgetLedger(budgets, **options)


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

    def seed(self, rows: Iterable[SpendRow | Sequence | Mapping]) -> None:
        """Load the store's spend only into a new file: one in use already counts every process's calls."""
        if self.is_new():
            self.load(rows)

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
