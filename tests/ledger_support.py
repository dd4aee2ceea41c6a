"""Three OS processes spending against one budget through a ledger location (blocks.store.ledger)."""

from __future__ import annotations

import multiprocessing as mp
import random
import time
from datetime import UTC, datetime

from blocks.store.ledger import open_ledger
from routing.models import Target, Task
from routing.spend.budgets import Budget, BudgetExceededError, Period

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
LIMIT = 1.0
BUDGET = Budget(period=Period.DAILY, limit=LIMIT)


def spend_until_refused(location: str | None, overshoot: float, seed: int, queue, start) -> None:
    """Reserve calls of $0.01-0.03 until the ledger refuses three in a row; report (charged, overshoot)."""
    ledger = open_ledger([BUDGET], location)
    rng, task, target = random.Random(seed), Task(task_type="qa", payload="x"), Target(name="t")
    charged = over = 0.0
    refusals = 0
    ledger.remaining(task, target, NOW)  # connected (a Prefect client opens in ~20 ms) before the race starts
    start.wait(timeout=120)  # all three compete from the first call
    while refusals < 3:
        estimate = rng.choice([0.01, 0.02, 0.03])
        try:
            reservation = ledger.reserve(task, target, estimate, NOW)
        except BudgetExceededError:
            refusals += 1
            continue
        time.sleep(0.005)  # the call: its estimate is held in flight meanwhile
        actual = estimate * (1 + overshoot) if rng.random() < 0.5 else estimate * rng.uniform(0.5, 1.0)
        over += ledger.reconcile(reservation, actual)
        charged += actual
    queue.put((charged, over))


def run_three(location: str | None, overshoot: float) -> list[tuple[float, float]]:
    """(charged, overshoot) of each of three spawned processes sharing `location` (None: each its own)."""
    context = mp.get_context("spawn")
    queue, start = context.Queue(), context.Barrier(3)
    workers = [
        context.Process(target=spend_until_refused, args=(location, overshoot, s, queue, start)) for s in range(3)
    ]
    for w in workers:
        w.start()
    results = [queue.get(timeout=300) for _ in workers]
    for w in workers:
        w.join(timeout=30)
    return results
