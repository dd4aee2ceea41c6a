"""A budget shared by several processes through one SQLite ledger holds within its stated bound."""

from __future__ import annotations

import pytest

from blocks.store.ledger import SharedBudgetLedger
from routing.models import Target, Task
from routing.spend.budgets import BudgetExceededError
from tests.ledger_support import BUDGET, LIMIT, NOW, run_three


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
