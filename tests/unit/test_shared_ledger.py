"""A budget shared by several processes through one SQLite ledger holds within its stated bound."""

from __future__ import annotations

import multiprocessing as mp
import random
import time
from datetime import UTC, datetime

import pytest

from blocks.store.ledger import SharedBudgetLedger
from routing.models import Target, Task
from routing.spend.budgets import Budget, BudgetExceededError, BudgetLedger, Period

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
LIMIT = 1.0
BUDGET = Budget(period=Period.DAILY, limit=LIMIT)


def spend_until_refused(path: str | None, overshoot: float, seed: int, queue, start) -> None:
    """Reserve calls of $0.01-0.03 until the ledger refuses three in a row; report (charged, overshoot)."""
    ledger = SharedBudgetLedger([BUDGET], path) if path else BudgetLedger([BUDGET])
    rng, task, target = random.Random(seed), Task(task_type="qa", payload="x"), Target(name="t")
    charged = over = 0.0
    refusals = 0
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


def run_three(path: str | None, overshoot: float) -> list[tuple[float, float]]:
    context = mp.get_context("spawn")
    queue, start = context.Queue(), context.Barrier(3)
    workers = [context.Process(target=spend_until_refused, args=(path, overshoot, s, queue, start)) for s in range(3)]
    for w in workers:
        w.start()
    results = [queue.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=30)
    return results


@pytest.mark.slow
@pytest.mark.parametrize("overshoot", [0.0, 0.2])
def test_three_processes_share_one_budget_within_the_stated_bound(tmp_path, overshoot) -> None:
    path = str(tmp_path / "ledger.sqlite")
    results = run_three(path, overshoot)
    charged, over = sum(r[0] for r in results), sum(r[1] for r in results)
    # The bound: the limit plus the sum of reported overshoots (0 when estimates are upper bounds).
    assert charged <= LIMIT + over + 1e-9
    assert sum(r[0] > 0 for r in results) >= 2  # they competed
    assert SharedBudgetLedger([BUDGET], path).spent(BUDGET, NOW) == pytest.approx(charged)
    if overshoot == 0.0:
        assert over == 0.0 and charged <= LIMIT


@pytest.mark.slow
def test_without_the_shared_ledger_three_processes_spend_three_limits() -> None:
    """The failure the shared ledger prevents: each process's own ledger admits up to the whole limit."""
    charged = sum(r[0] for r in run_three(None, 0.0))
    assert charged > 2 * LIMIT


def test_reservations_of_a_dead_process_lapse_after_their_lease(tmp_path) -> None:
    ledger = SharedBudgetLedger([BUDGET], tmp_path / "l.sqlite", lease_seconds=0.0)
    task, target = Task(task_type="qa", payload="x"), Target(name="t")
    ledger.reserve(task, target, LIMIT, NOW)  # never reconciled: its process "died"
    assert ledger.remaining(task, target, NOW) == pytest.approx(LIMIT)
    held = SharedBudgetLedger([BUDGET], tmp_path / "m.sqlite")
    assert held.is_new()
    held.reserve(task, target, 0.6, NOW)
    with pytest.raises(BudgetExceededError, match="in flight"):
        held.reserve(task, target, 0.6, NOW)
    assert not held.is_new()
