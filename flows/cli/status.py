"""Read-only commands: `health` and `stats`. They read the store and never start Prefect."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from flows.cli.common import SUCCESS_MEANS, DatabaseOption, console, existing_store, fail


def health(
    window: Annotated[int, typer.Option(help="Recent attempts per target to judge by.", min=1)] = 50,
    database: DatabaseOption = None,
) -> None:
    """Every target's circuit-breaker state, failure counts and last error, from recent outcomes."""
    from blocks.store import StoreError
    from blocks.store.history import recent_attempts
    from routing.calls.breaker_history import replay_breakers
    from routing.models import ErrorType

    store = existing_store(database)
    try:
        store.ingest(seal=False, wait=False)  # a read never waits on another process's ingest
        history = recent_attempts(store, window)
    except StoreError as exc:
        fail(exc)
    snapshots = replay_breakers(history, datetime.now(UTC))
    wrong = Counter(r.target for r in history if r.error_type == ErrorType.WRONG_ANSWER)
    table = Table(
        title=f"Target health (last {window} attempts each)",
        caption=f"{SUCCESS_MEANS}; to a breaker a wrong answer is a healthy call",
    )
    for column in ("target", "breaker", "consecutive failures", "transport failures", "wrong answers", "successes", "last error"):
        table.add_column(column)
    colour = {"closed": "green", "half_open": "yellow", "open": "red"}
    for name, snap in sorted(snapshots.items()):
        table.add_row(
            name, f"[{colour[snap.state]}]{snap.state}[/]", str(snap.consecutive_failures),
            str(snap.total_failures), str(wrong[name]), str(snap.total_successes - wrong[name]),
            (snap.last_error or "")[:80],
        )
    console.print(table if snapshots else "no executions recorded yet")


def stats(database: DatabaseOption = None) -> None:
    """Per target and task type: calls, success with its 95% interval, latency, spend, the frontier,
    and where a cheaper target is only slightly worse: dollars per hour saved against what it costs."""
    from blocks.store import StoreError
    from blocks.store.budgets import load_budgets, spend_rows
    from blocks.store.history import performance
    from blocks.store.objectives import load_objectives
    from routing.stats.significance import wilson_interval
    from routing.strategies.optimizer import savings_hints
    from routing.strategies.pareto import TargetPerformance, pareto_frontier

    store = existing_store(database)
    try:
        store.ingest(seal=False, wait=False)  # a read never waits on another process's ingest
        rows = performance(store)
        budgets = load_budgets(store)
        spent = spend_rows(store, budgets, datetime.now(UTC))
        objectives = load_objectives(store)
    except StoreError as exc:
        fail(exc)
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
        calls = {r["target"]: r["calls"] for r in group}
        for hint in savings_hints(perfs, calls_per_hour=sum(calls.values()) / hours, calls=calls)[:3]:
            console.print(f"  [cyan]hint[/cyan] {hint}")
    if budgets:
        table = Table(title="Budgets this period")
        for column in ("budget", "policy", "spent $", "limit $", "used"):
            table.add_column(column)
        for budget, row in zip(budgets, spent):
            table.add_row(str(budget), budget.policy, f"{row.spent:.4f}", f"{budget.limit:.4f}",
                          f"{row.spent / budget.limit:.0%}" if budget.limit else "-")
        console.print(table)
