"""`set-budget` and `set-strategy`: what routers may spend, and what each task type optimises for."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.common import DatabaseOption, console, fail, open_store
from routing.spend.budgets import Budget, Period, Scope
from routing.strategies.objectives import Objective, Priority, StrategyWeights


def set_budget(
    period: Annotated[Period, typer.Argument(help="daily, weekly or monthly.")],
    limit: Annotated[float, typer.Argument(help="Dollars per period.", min=0)],
    scope: Annotated[Scope, typer.Option(help="overall, target or task_type.")] = Scope.OVERALL,
    scope_value: Annotated[str | None, typer.Option(help="The target or task type the budget is for.")] = None,
    policy: Annotated[str, typer.Option(help="Over budget: reject the call, or queue it until the reset.")] = "reject",
    remove: Annotated[bool, typer.Option(help="Delete this budget instead.")] = False,
    database: DatabaseOption = None,
) -> None:
    """Set (or remove) a spending limit that routers enforce before every call."""
    from blocks.store import StoreError
    from blocks.store.budgets import remove_budget, save_budget

    store = open_store(database)
    try:
        budget = Budget(period=period, scope=scope, scope_value=scope_value, limit=limit, policy=policy)
        if remove:
            removed = remove_budget(store, budget)
            console.print(f"{'removed' if removed else 'no such budget:'} {budget}")
            return
        save_budget(store, budget)
    except (ValueError, StoreError) as exc:
        fail(exc)
    console.print(f"set {budget}, policy {budget.policy}")


def set_strategy(
    task_type: Annotated[str, typer.Argument(help="The task type it applies to.")],
    priority: Annotated[Priority, typer.Argument(help="interactive (latency first), batch (cost first), critical (success first) or balanced.")],
    success: Annotated[float | None, typer.Option(help="Weight of success (with --cost and --latency).")] = None,
    cost: Annotated[float | None, typer.Option(help="Weight of cost.")] = None,
    latency: Annotated[float | None, typer.Option(help="Weight of latency.")] = None,
    database: DatabaseOption = None,
) -> None:
    """Choose what a task type optimises for; the cost-aware strategy reads it."""
    from blocks.store import StoreError
    from blocks.store.objectives import save_objective

    weights = [w for w in (success, cost, latency) if w is not None]
    try:
        if weights and len(weights) != 3:
            raise ValueError("give all three weights (--success, --cost, --latency) or none")
        explicit = StrategyWeights(success=success, cost=cost, latency=latency) if weights else None
        objective = Objective(priority=priority, weights=explicit)
        save_objective(open_store(database), task_type, objective)
    except (ValueError, StoreError) as exc:
        fail(exc)
    w = objective.weights
    console.print(f"{task_type}: {priority.value} (success {w.success:g}, cost {w.cost:g}, latency {w.latency:g})")
