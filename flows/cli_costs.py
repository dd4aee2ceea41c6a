"""Cost commands of `adaptive-router`: budgets, per-task-type strategies, and statistics.

The store (and with it Prefect) is imported inside each command, so `--help` stays fast.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from routing.spend.budgets import Budget, Period, Scope
from routing.stats.significance import wilson_interval
from routing.strategies.optimizer import Objective, Priority, StrategyWeights, savings_hints
from routing.strategies.pareto import TargetPerformance, pareto_frontier

console = Console()
Database = Annotated[str | None, typer.Option("--database", "-d", help="DuckDB file.")]


def _fail(exc: Exception) -> typer.Exit:
    if isinstance(exc, ValidationError):
        message = "; ".join(f"{'.'.join(map(str, e['loc'])) or e['type']}: {e['msg']}" for e in exc.errors())
    else:
        message = str(exc)
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=1)


def set_budget(
    period: Annotated[Period, typer.Argument(help="daily, weekly or monthly.")],
    limit: Annotated[float, typer.Argument(help="Dollars per period.", min=0)],
    scope: Annotated[Scope, typer.Option(help="overall, target or task_type.")] = Scope.OVERALL,
    scope_value: Annotated[str | None, typer.Option(help="The target or task type the budget is for.")] = None,
    policy: Annotated[str, typer.Option(help="Over budget: reject the call, or queue it until the reset.")] = "reject",
    remove: Annotated[bool, typer.Option(help="Delete this budget instead.")] = False,
    database: Database = None,
) -> None:
    """Set (or remove) a spending limit that routers enforce before every call."""
    from blocks.store import DuckDBStore, StoreError
    from blocks.store.budgets import remove_budget, save_budget

    store = DuckDBStore(database=database)
    try:
        budget = Budget(period=period, scope=scope, scope_value=scope_value, limit=limit, policy=policy)
        if remove:
            removed = remove_budget(store, budget)
            console.print(f"{'removed' if removed else 'no such budget:'} {budget}")
            return
        save_budget(store, budget)
    except (ValueError, StoreError) as exc:
        raise _fail(exc) from exc
    console.print(f"set {budget}, policy {budget.policy}")


def set_strategy(
    task_type: Annotated[str, typer.Argument(help="The task type it applies to.")],
    priority: Annotated[Priority, typer.Argument(help="interactive (latency first), batch (cost first), critical (success first) or balanced.")],
    success: Annotated[float | None, typer.Option(help="Weight of success (with --cost and --latency).")] = None,
    cost: Annotated[float | None, typer.Option(help="Weight of cost.")] = None,
    latency: Annotated[float | None, typer.Option(help="Weight of latency.")] = None,
    database: Database = None,
) -> None:
    """Choose what a task type optimises for; the cost-aware strategy reads it."""
    from blocks.store import DuckDBStore, StoreError
    from blocks.store.objectives import save_objective

    weights = [w for w in (success, cost, latency) if w is not None]
    try:
        if weights and len(weights) != 3:
            raise ValueError("give all three weights (--success, --cost, --latency) or none")
        explicit = StrategyWeights(success=success, cost=cost, latency=latency) if weights else None
        objective = Objective(priority=priority, weights=explicit)
        save_objective(DuckDBStore(database=database), task_type, objective)
    except (ValueError, StoreError) as exc:
        raise _fail(exc) from exc
    w = objective.weights
    console.print(f"{task_type}: {priority.value} (success {w.success:g}, cost {w.cost:g}, latency {w.latency:g})")


def stats(database: Database = None) -> None:
    """Per target and task type: calls, success with its 95% interval, latency, spend, the frontier,
    and where a cheaper target is only slightly worse: dollars per hour saved against what it costs."""
    from blocks.store import DuckDBStore, StoreError
    from blocks.store.budgets import load_budgets, spend_rows
    from blocks.store.objectives import load_objectives

    store = DuckDBStore(database=database)
    try:
        store.ingest(seal=False, wait=False)  # a read never waits on another process's ingest
        rows = store.query(
            """SELECT task_type, target, count(*) AS calls, sum(success::INT) AS successes,
                      quantile_cont(duration_ms, 0.5) AS p50, quantile_cont(duration_ms, 0.95) AS p95,
                      coalesce(avg(actual_cost), 0) AS mean_cost, coalesce(sum(actual_cost), 0) AS spent,
                      epoch(max(timestamp) - min(timestamp)) AS seconds
               FROM executions GROUP BY ALL ORDER BY task_type, target"""
        )
        budgets = load_budgets(store)
        spent = spend_rows(store, budgets, datetime.now(UTC))
        objectives = load_objectives(store)
    except StoreError as exc:
        raise _fail(exc) from exc
    if not rows:
        console.print("no executions recorded yet")
        return
    for task_type in dict.fromkeys(r["task_type"] for r in rows):
        group = [r for r in rows if r["task_type"] == task_type]
        perfs = [TargetPerformance(target=r["target"], success_rate=r["successes"] / r["calls"],
                                   cost=r["mean_cost"], p95_latency_ms=r["p95"]) for r in group]
        frontier = {p.target for p in pareto_frontier(perfs)}
        objective = objectives.get(task_type)
        title = f"{task_type}" + (f" ({objective.priority.value})" if objective else "")
        table = Table(title=title, caption="* on the Pareto frontier of success, cost and p95 latency")
        for column in ("target", "calls", "success (95% CI)", "p50 ms", "p95 ms", "$ per call", "spent $"):
            table.add_column(column, justify="left" if column == "target" else "right")
        for r in group:
            low, high = wilson_interval(r["successes"], r["calls"])
            table.add_row(
                r["target"] + (" *" if r["target"] in frontier else ""), str(r["calls"]),
                f"{r['successes'] / r['calls']:.0%} ({low:.0%}-{high:.0%})", f"{r['p50']:.0f}", f"{r['p95']:.0f}",
                f"{r['mean_cost']:.5f}", f"{r['spent']:.4f}",
            )
        console.print(table)
        hours = max(1.0, max(r["seconds"] for r in group) / 3600)
        for hint in savings_hints(perfs, calls_per_hour=sum(r["calls"] for r in group) / hours)[:3]:
            console.print(f"  [cyan]hint[/cyan] {hint}")
    if budgets:
        table = Table(title="Budgets this period")
        for column in ("budget", "policy", "spent $", "limit $", "used"):
            table.add_column(column)
        for budget, row in zip(budgets, spent):
            table.add_row(str(budget), budget.policy, f"{row.spent:.4f}", f"{budget.limit:.4f}",
                          f"{row.spent / budget.limit:.0%}" if budget.limit else "-")
        console.print(table)
