"""Operating the scheduled flows from the command line: `recalculate`, `up`, `stop`.

Plain typer command functions, registered on the `adaptive-router` app by flows/cli/__init__.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import console, fail

HomeOption = Annotated[Path, typer.Option(help="Where `up` keeps logs, pid files and the server's database.")]


def recalculate(
    full: Annotated[
        bool, typer.Option("--full", help="Recompute every target, not only those with new data.")
    ] = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Start the run and return at once.")] = False,
    local: Annotated[
        bool, typer.Option("--local", help="Run the flow in this process, without a server.")
    ] = False,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            "-d",
            help="DuckDB file for --local (default: $ADAPTIVE_ROUTER_DB or .adaptive-router/router.duckdb).",
        ),
    ] = None,
    api_url: Annotated[
        str | None,
        typer.Option(help="Prefect API (default: PREFECT_API_URL, else the server `up` started)."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the run.", min=1)] = 600.0,
    home: HomeOption = Path(".adaptive-router"),
) -> None:
    """Recalculate the routing statistics: run the recalculate-stats deployment and wait for it."""
    if local:
        if database:
            os.environ["ADAPTIVE_ROUTER_DB"] = database
        from flows.recalculate import recalculate_stats

        report = recalculate_stats(full=full)
        console.print(report.title + (f"; published {report.published}" if report.published else ""))
        return
    if database:
        fail(
            "--database applies to --local only: a deployment uses the store its worker is configured with"
        )
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.server import recorded_api_url

    url = api_url or PREFECT_API_URL.value() or recorded_api_url(home)
    if not url:
        fail("no Prefect server: run `adaptive-router up`, set PREFECT_API_URL or pass --api-url")
    name = f"recalculate-stats/{'full' if full else 'incremental'}"
    with temporary_settings(updates={PREFECT_API_URL: url}):
        try:
            run = run_deployment(
                name=name,
                timeout=0 if no_wait else timeout,
                poll_interval=1,
                tags=["adaptive-router", "manual"],
            )
        except Exception as exc:  # the client's errors (unknown deployment, unreachable API) end the command
            fail(f"cannot run {name} on {url}: {exc}")
    link = f"{url.removesuffix('/api')}/runs/flow-run/{run.id}"
    if no_wait:
        console.print(f"started {name}: {link}")
        return
    state = run.state
    if state is None or not state.is_final():
        fail(f"{name} did not finish within {timeout:g} s; it goes on: {link}")
    if not state.is_completed():
        fail(f"{name} ended {state.name}: {state.message or ''} ({link})")
    console.print(f"{run.name} [green]{state.name}[/green] ({link})")


def up(
    host: Annotated[str, typer.Option(help="Address the server listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the server and its UI.")] = 4200,
    pool: Annotated[str, typer.Option(help="Process work pool the deployments use.")] = "adaptive-router",
    schedules: Annotated[bool, typer.Option(help="Let the server's scheduler start scheduled runs.")] = True,
    home: HomeOption = Path(".adaptive-router"),
) -> None:
    """Start a local Prefect server and worker and deploy every scheduled flow of prefect.yaml."""
    from flows.server import StackConfig
    from flows.server import up as start
    from routing.errors import ServerError

    config = StackConfig(host=host, port=port, pool=pool, home=home, schedules=schedules)
    try:
        stack = start(config, echo=console.print)
    except ServerError as exc:
        fail(str(exc))
    console.print(f"{len(stack.deployments)} deployments: {', '.join(stack.deployments)}")
    console.print(f"[bold]Prefect UI: {stack.ui_url}[/bold]   stop with `adaptive-router stop`")
    console.print("For `prefect` commands in another shell (or run `adaptive-router env` later):")
    console.print(f"  export PREFECT_API_URL={stack.api_url}", highlight=False)


def env(home: HomeOption = Path(".adaptive-router")) -> None:
    """Print the `export PREFECT_API_URL=...` line for the server `adaptive-router up` started."""
    from flows.server import recorded_api_url

    url = recorded_api_url(home)
    if url is None:
        fail(f"no server recorded in {home}: run `adaptive-router up` first")
    console.print(f"export PREFECT_API_URL={url}", highlight=False)


def stop(home: HomeOption = Path(".adaptive-router")) -> None:
    """Stop the worker and server that `adaptive-router up` started."""
    from flows.server import stop as end

    for line in end(home):
        console.print(line)

