"""`adaptive-router demo`: route a seeded task mix across the local fleet and show what was learned."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from flows.cli.common import (
    SUCCESS_MEANS,
    DatabaseOption,
    console,
    describe_failure,
    fail,
    open_store,
    quiet_prefect,
)


def demo(
    tasks: Annotated[int, typer.Option(help="How many tasks to route.", min=1)] = 300,
    seed: Annotated[int, typer.Option(help="Seed of the task mix and the strategy.")] = 7,
    strategy: Annotated[str, typer.Option(help="Routing strategy.")] = "thompson",
    concurrency: Annotated[int, typer.Option(help="Calls in flight at once.", min=1)] = 8,
    fleet_config: Annotated[Path | None, typer.Option(help="Fleet TOML (default: the shipped fleet).")] = None,
    daily_budget: Annotated[float | None, typer.Option(help="Daily spending limit in dollars.", min=0)] = None,
    budget_policy: Annotated[str, typer.Option(help="Over budget: 'reject' or 'queue'.")] = "reject",
    willingness_to_pay: Annotated[
        float, typer.Option(help="Dollars one success is worth: the router maximises L * success - cost (0: ignore cost).", min=0)
    ] = 0.01,
    database: DatabaseOption = None,
) -> None:
    """Route tasks across the local fleet on ephemeral Prefect and show what the router learned."""
    from routing.errors import RoutingError

    store = open_store(database)
    try:
        store.current_version()  # a file that is not a store fails here, before anything is routed
    except RoutingError as exc:
        fail(exc)
    log = store.path.parent / "logs" / "demo.log"
    quiet_prefect(log)
    from flows.demo import run_demo

    console.print(
        f"starting the local fleet and Prefect's ephemeral API (up to a minute on a busy machine); log: {log}",
        style="dim", highlight=False,
    )
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[ok]} ok"),
        TimeElapsedColumn(), console=console,
    ) as progress:
        bar = progress.add_task("starting", total=tasks, ok=0)
        done = {"ok": 0}

        def advance(result) -> None:
            done["ok"] += result.success
            progress.update(bar, advance=1, ok=done["ok"], description="routing")

        try:
            report = run_demo(
                tasks, seed, database, fleet_config, strategy, concurrency, on_result=advance,
                daily_budget=daily_budget, budget_policy=budget_policy,
                willingness_to_pay=willingness_to_pay or None,
            )
        except (RoutingError, ValueError) as exc:
            fail(exc)
        except Exception as exc:  # noqa: BLE001 - one line for the user, the traceback to the log
            fail(describe_failure(exc, log))

    table = Table(
        title=f"{report.tasks} tasks, {report.succeeded} succeeded, {report.attempts} attempts",
        caption=f"per attempt; {SUCCESS_MEANS}; rescues: tasks it answered after another target failed",
    )
    for column in ("target", "calls", "success", "p50 ms", "cost $", "rescues", "breaker"):
        table.add_column(column, justify="left" if column in ("target", "breaker") else "right")
    for row in report.targets:
        table.add_row(
            row.target, str(row.calls), f"{row.success_rate:.0%}", f"{row.p50_latency_ms:.0f}",
            f"{row.cost_usd:.4f}", str(row.rescues), row.breaker,
        )
    console.print(table)
    shift = Table(title="How the first pick shifted as the router learned (share of tasks per quarter)")
    targets = sorted({t for phase in report.picks_by_phase.values() for t in phase})
    shift.add_column("quarter")
    for target in targets:
        shift.add_column(target, justify="right")
    for phase, shares in report.picks_by_phase.items():
        shift.add_row(phase, *(f"{shares.get(t, 0):.0%}" for t in targets))
    console.print(shift)
    if report.daily_budget_usd is not None:
        console.print(
            f"spent ${report.spent_usd:.4f} of a ${report.daily_budget_usd:.4f} daily budget; "
            f"{report.rejected} tasks rejected, {report.queued} queued until the budget resets"
        )
    else:
        console.print(f"spent ${report.spent_usd:.4f}")
    console.print(f"executions are in [bold]{report.database}[/bold]; Prefect's and the targets' logs in {log}")
    console.print(
        "next: `adaptive-router stats` (what each target achieved), `adaptive-router explain --last 3` "
        "(why it was picked), `make serve` (the scheduled flows on a local Prefect server and its UI)"
    )
