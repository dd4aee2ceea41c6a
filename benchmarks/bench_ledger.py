"""What one reservation and its settlement cost on each budget ledger, in one process.

The in-process `BudgetLedger` (the baseline), the SQLite `SharedBudgetLedger` (processes on one
filesystem) and the `PrefectBudgetLedger` (global concurrency limits on a Prefect server: here the test
harness's server on loopback, with its SQLite database). Median and p99 µs of `reserve` and of
`reconcile` (half the calls release, half charge an overshoot), and their ratio to the baseline.

    python benchmarks/bench_ledger.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

from common import median, p99, report

from blocks.store.ledger import open_ledger
from routing.models import Target, Task
from routing.spend.budgets import Budget, BudgetLedger, Period, Scope

os.environ.setdefault("COLUMNS", "200")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
BUDGETS = [
    Budget(period=Period.DAILY, limit=1000.0),
    Budget(period=Period.MONTHLY, scope=Scope.TARGET, scope_value="a", limit=1000.0),
]


def measure(ledger: BudgetLedger, calls: int) -> dict[str, float]:
    import time

    task, target = Task(task_type="qa", payload="x"), Target(name="a")
    reserve, settle = [], []
    for i in range(calls):
        start = time.perf_counter_ns()
        reservation = ledger.reserve(task, target, 0.02, NOW)
        middle = time.perf_counter_ns()
        ledger.reconcile(reservation, 0.01 if i % 2 else 0.03)
        settle.append((time.perf_counter_ns() - middle) / 1000)
        reserve.append((middle - start) / 1000)
    return {"reserve_p50_us": median(reserve), "reserve_p99_us": p99(reserve),
            "reconcile_p50_us": median(settle), "reconcile_p99_us": p99(settle)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 calls per ledger instead of 300")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args()
    calls = 50 if args.quick else 300
    from prefect.testing.utilities import prefect_test_harness

    rows = []
    with tempfile.TemporaryDirectory() as tmp, prefect_test_harness(server_startup_timeout=120):
        for name, location in [
            ("in-process", None), ("sqlite", str(Path(tmp) / "ledger.sqlite")),
            ("prefect", f"prefect?namespace=bench-{uuid.uuid4().hex[:8]}"),
        ]:  # fmt: skip
            rows.append({"ledger": name, **measure(open_ledger(BUDGETS, location), calls)})
    base = rows[0]
    for row in rows:
        row["reserve_x_baseline"] = row["reserve_p50_us"] / base["reserve_p50_us"]
        row["reconcile_x_baseline"] = row["reconcile_p50_us"] / base["reconcile_p50_us"]
    report("ledger", f"Budget ledgers: reserve and reconcile, {calls} calls each, 2 budgets per call", rows,
           "prefect: the test harness's server on loopback (SQLite); ratios of medians to in-process")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
