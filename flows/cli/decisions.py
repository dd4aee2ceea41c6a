"""`route "PROMPT"` routes one task and says why; `explain` shows any past decision from the store."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from flows.cli.common import (
    DatabaseOption,
    console,
    describe_failure,
    existing_store,
    fail,
    open_store,
    quiet_prefect,
)


def route(
    prompt: Annotated[str, typer.Argument(help="The prompt or query to route.")],
    task_type: Annotated[str, typer.Option(help="What kind of work it is; statistics are kept per type.")] = "general",
    runtime: Annotated[
        str | None,
        typer.Option(help="A saved runtime (adaptive-router-settings block) on your Prefect server; default: the local fleet."),
    ] = None,
    strategy: Annotated[str, typer.Option(help="Strategy of the local runtime.")] = "thompson",
    willingness_to_pay: Annotated[
        float, typer.Option(help="Dollars one success is worth to the local runtime (0: ignore cost).", min=0)
    ] = 0.01,
    database: DatabaseOption = None,
) -> None:
    """Route one task through the routing subflow; print the answer, the target, the cost and why."""
    from routing.errors import RoutingError
    from routing.models import Task

    try:
        task = Task(task_type=task_type, payload=prompt)
    except ValueError as exc:
        fail(exc)
    store = open_store(database)
    log = store.path.parent / "logs" / "route.log"
    quiet_prefect(log)
    from flows.local import LOCAL_RUNTIME, local_runtime
    from flows.route import route as route_task

    try:
        if runtime is None:
            store.current_version()
            with local_runtime(store, strategy=strategy, willingness_to_pay=willingness_to_pay or None) as local:
                result = route_task(task, runtime=LOCAL_RUNTIME)
                local.store.ingest()
        else:
            result = route_task(task, runtime=runtime)
    except RoutingError as exc:
        fail(exc)
    except Exception as exc:  # noqa: BLE001 - one line for the user, the traceback to the log
        fail(describe_failure(exc, log))
    decision = result.decision
    console.print(result.output or "(no answer)", highlight=False)
    console.print(
        f"[bold]{result.target}[/bold] answered, ${result.cost:.6f}, {len(result.attempts)} attempt(s); "
        f"{decision.strategy} picked {decision.pick} with p={decision.probability:.2f}: {decision.reason}",
        highlight=False,
    )
    console.print(f"task {task.id}: `adaptive-router explain {task.id}` shows the whole decision", style="dim")


def explain(
    task_id: Annotated[str | None, typer.Argument(help="The task to explain (default: the latest).")] = None,
    last: Annotated[int, typer.Option("--last", "-n", help="Explain the latest N decisions.", min=1)] = 1,
    database: DatabaseOption = None,
) -> None:
    """Why a target was picked: the ranking with its scores, the pick's propensity, the reason, and
    every attempt with its outcome."""
    from blocks.store import StoreError
    from blocks.store.history import decisions

    try:
        rows = decisions(existing_store(database), task_id, last)
    except StoreError as exc:
        fail(exc)
    if not rows:
        fail(f"no decision recorded for task {task_id!r}" if task_id else "no decisions recorded yet")
    for row in rows:
        _print_decision(row)


def _print_decision(row: dict[str, Any]) -> None:
    console.print(
        f"[bold]task {row['task_id']}[/bold] ({row['task_type']}, {row['timestamp']:%Y-%m-%d %H:%M:%S} UTC): "
        f"{row['strategy']} picked [bold]{row['pick']}[/bold] with probability {row['probability']:.3f}",
        highlight=False,
    )
    console.print(f"  why: {row['reason']}", highlight=False)
    ranking = Table(title="ranking", title_justify="left")
    for column in ("#", "target", "score", "calls", "success", "p50 ms", "details"):
        ranking.add_column(column, justify="left" if column in ("target", "details") else "right")
    for place, candidate in enumerate(row["candidates"], 1):
        success = candidate.get("success_rate")
        p50 = candidate.get("p50_latency_ms")
        details = ", ".join(f"{k} {v:.3g}" for k, v in (candidate.get("details") or {}).items())
        ranking.add_row(
            str(place), candidate["target"], f"{candidate['score']:.3f}", str(candidate.get("samples", 0)),
            "-" if success is None else f"{success:.0%}", "-" if p50 is None else f"{p50:.0f}", details,
        )
    console.print(ranking)
    attempts = Table(title="attempts", title_justify="left")
    for column in ("#", "target", "outcome", "ms", "cost $", "error"):
        attempts.add_column(column, justify="left" if column in ("target", "outcome", "error") else "right")
    for attempt in row["attempts"]:
        outcome = "success" if attempt["success"] else (attempt["error_type"] or "failed")
        attempts.add_row(
            str(attempt["attempt"]), attempt["target"], outcome, f"{attempt['duration_ms']:.0f}",
            f"{attempt['actual_cost'] or 0:.6f}", (attempt["error_message"] or "")[:80],
        )
    console.print(attempts if row["attempts"] else "  no attempts recorded (still spooled, or none was admitted)")
