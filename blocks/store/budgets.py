"""Budgets in the store, and what has been spent against each in its current period.

Spend is summed from the executions table, so it counts every process's calls once they are
ingested; a router adds its own in-flight and recent calls on top, in its ledger (which settles every
call, sampled or not). Sampled rows count `weight` times: exact without sampling, an unbiased estimate
with it (routing/calls/sampling.py gives its error); a budget that must hold to the cent wants its task
types at rate 1, or the shared ledger, which the store seeds only once.
"""

from __future__ import annotations

from datetime import datetime

from blocks.store import weighting as w
from blocks.store.store import Store, utc_naive
from routing.spend.budgets import Budget, Scope, SpendRow, period_start

_SCOPE_COLUMN = {Scope.TARGET: "target", Scope.TASK_TYPE: "task_type"}


def budget_id(budget: Budget) -> str:
    return f"{budget.period}:{budget.scope}:{budget.scope_value or '*'}"


def save_budget(store: Store, budget: Budget) -> None:
    """Create or replace the budget with the same period and scope."""
    with store.connect() as con:
        con.execute(
            "INSERT OR REPLACE INTO budgets VALUES (?, ?, ?, ?, ?, ?, ?)",
            [budget_id(budget), budget.period.value, budget.scope.value, budget.scope_value, budget.limit,
             budget.policy, utc_naive()],
        )


def remove_budget(store: Store, budget: Budget) -> bool:
    with store.connect() as con:
        return bool(con.execute("DELETE FROM budgets WHERE budget_id = ? RETURNING 1", [budget_id(budget)]).fetchall())


def load_budgets(store: Store) -> list[Budget]:
    rows = store.query("SELECT period, scope, scope_value, limit_usd AS limit, policy FROM budgets ORDER BY budget_id")
    return [Budget(**row) for row in rows]


def spend_rows(store: Store, budgets: list[Budget], now: datetime) -> list[SpendRow]:
    """What each budget's scope has spent since the start of its current period."""
    rows = []
    for budget in budgets:
        start = period_start(budget.period, now)
        sql = f"SELECT coalesce({w.total('actual_cost')}, 0) AS spent FROM executions WHERE timestamp >= ?"
        params: list = [utc_naive(start)]
        if budget.scope is not Scope.OVERALL:
            sql += f" AND {_SCOPE_COLUMN[budget.scope]} = ?"
            params.append(budget.scope_value)
        spent = store.query(sql, params)[0]["spent"]
        rows.append(SpendRow(period=budget.period, scope=budget.scope, key=budget.scope_value,
                             period_start=start, spent=spent))
    return rows
