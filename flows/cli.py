"""`adaptive-router`: the command line, in Prefect's style (typer + rich)."""

from __future__ import annotations

import logging
import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("AGNO_TELEMETRY", "false")

from datetime import UTC
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from flows import cli_ops
from flows.cli_costs import set_budget, set_strategy, stats
from flows.cli_replay import replay

app = typer.Typer(help="Route work to the best target and learn from every outcome.", no_args_is_help=True)
db_app = typer.Typer(help="The DuckDB store: schema migrations and ingestion.", no_args_is_help=True)
fleet_app = typer.Typer(help="The local provider fleet (an OpenAI-compatible server).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(fleet_app, name="fleet")
console = Console()

DatabaseOption = Annotated[
    str | None, typer.Option("--database", "-d", help="DuckDB file (default: $ADAPTIVE_ROUTER_DB or .adaptive-router/router.duckdb).")
]


def _store(database: str | None):
    from blocks.store import DuckDBStore

    return DuckDBStore(database=database)


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=1)


@app.command()
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
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # the progress bar is the demo's output
    for name in ("agno", "agno-team"):  # failed agent runs are outcomes, shown in the table
        logging.getLogger(name).disabled = True  # (agno resets its loggers' levels on every run)
    from blocks.fleet.config import FleetConfigError
    from blocks.store import StoreError
    from flows.demo import run_demo

    with Progress(
        TextColumn("routing"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[ok]} ok"),
        TimeElapsedColumn(), console=console,
    ) as progress:
        bar = progress.add_task("routing", total=tasks, ok=0)
        done = {"ok": 0}

        def advance(result) -> None:
            done["ok"] += result.success
            progress.update(bar, advance=1, ok=done["ok"])

        try:
            report = run_demo(
                tasks, seed, database, fleet_config, strategy, concurrency, on_result=advance,
                daily_budget=daily_budget, budget_policy=budget_policy,
                willingness_to_pay=willingness_to_pay or None,
            )
        except (FleetConfigError, StoreError, ValueError) as exc:
            raise _fail(str(exc)) from exc

    table = Table(title=f"{report.tasks} tasks, {report.succeeded} succeeded, {report.attempts} attempts")
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
    console.print(f"executions are in [bold]{report.database}[/bold]")


def _migrate(database: str | None, verb: str, to: int | None) -> None:
    from blocks.store import StoreError

    store = _store(database)
    try:
        versions = store.upgrade(to) if verb == "applied" else store.downgrade(to)
    except StoreError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"{store.path}: {verb} {versions or 'nothing'}; now at version {store.current_version()}")


@db_app.command()
def upgrade(
    to: Annotated[int | None, typer.Option(help="Target version (default: latest).")] = None,
    database: DatabaseOption = None,
) -> None:
    """Apply pending schema migrations."""
    _migrate(database, "applied", to)


@db_app.command()
def downgrade(
    to: Annotated[int, typer.Option(help="Version to go down to (0 drops every table).")],
    database: DatabaseOption = None,
) -> None:
    """Revert schema migrations above a version."""
    _migrate(database, "reverted", to)


@db_app.command()
def current(database: DatabaseOption = None) -> None:
    """Print the schema version of the store."""
    from blocks.store import StoreError
    from blocks.store.migrations import HEAD

    store = _store(database)
    try:
        version = store.current_version()
    except StoreError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"{store.path}: version {version} (latest {HEAD})")


@db_app.command()
def ingest(database: DatabaseOption = None) -> None:
    """Move spooled outcomes into the store (safe to run any time, from any process)."""
    from blocks.store import StoreError

    try:
        report = _store(database).ingest(seal=False)
    except StoreError as exc:
        raise _fail(str(exc)) from exc
    console.print(
        f"{report.segments} segments: {report.executions} executions, {report.decisions} decisions, "
        f"{report.duplicates} duplicates skipped, {len(report.rejected)} malformed lines kept aside"
    )
    for line in report.rejected:
        console.print(f"  [yellow]rejected[/yellow] {line.segment}:{line.line}: {line.reason}")


@fleet_app.command("serve")
def fleet_serve(
    config: Annotated[Path | None, typer.Option(help="Fleet TOML (default: the shipped fleet).")] = None,
    host: str = "127.0.0.1",
    port: int = 8700,
) -> None:
    """Serve the local fleet in the foreground (Ctrl-C stops it)."""
    from blocks.fleet.config import DEFAULT_FLEET_PATH, FleetConfigError
    from blocks.fleet.launcher import serve

    console.print(f"fleet on http://{host}:{port}/v1")
    try:
        serve(config or DEFAULT_FLEET_PATH, host, port)
    except FleetConfigError as exc:
        raise _fail(str(exc)) from exc


@app.command()
def health(
    window: Annotated[int, typer.Option(help="Recent attempts per target to judge by.", min=1)] = 50,
    database: DatabaseOption = None,
) -> None:
    """Every target's circuit-breaker state, failure counts and last error, from recent outcomes."""
    from datetime import datetime

    from blocks.store import StoreError
    from routing.calls.breaker_history import replay_breakers
    from routing.models import ExecutionRecord

    store = _store(database)
    try:
        store.ingest(seal=False, wait=False)  # a read never waits on another process's ingest
        rows = store.query(
            "SELECT target, timestamp, task_id, task_type, success, duration_ms, error_type, error_message "
            "FROM executions QUALIFY row_number() OVER (PARTITION BY target ORDER BY timestamp DESC) <= ?",
            [window],
        )
    except StoreError as exc:
        raise _fail(str(exc)) from exc
    history = [ExecutionRecord(**{**r, "timestamp": r["timestamp"].replace(tzinfo=UTC)}) for r in rows]
    snapshots = replay_breakers(history, datetime.now(UTC))
    table = Table(title=f"Target health (last {window} attempts each)")
    for column in ("target", "breaker", "consecutive failures", "failures", "successes", "last error"):
        table.add_column(column)
    colour = {"closed": "green", "half_open": "yellow", "open": "red"}
    for name, snap in sorted(snapshots.items()):
        table.add_row(
            name, f"[{colour[snap.state]}]{snap.state}[/]", str(snap.consecutive_failures),
            str(snap.total_failures), str(snap.total_successes), (snap.last_error or "")[:80],
        )
    console.print(table if snapshots else "no executions recorded yet")


# Commands that live in their own modules, listed after the ones above in --help.
app.command("stats")(stats)
app.command("set-budget")(set_budget)
app.command("set-strategy")(set_strategy)
app.command()(cli_ops.recalculate)
app.command()(cli_ops.up)
app.command()(cli_ops.stop)
app.command("replay")(replay)
