"""`adaptive-router`: the command line, in Prefect's style (typer + rich).

Every command is a plain function in the module of its concern, registered here in the order `--help`
lists them; groups (`db`, `fleet`) are typer sub-apps. Modules import Prefect, DuckDB and scipy inside
the commands that need them, so `--help` and the read-only commands start fast.
"""

from __future__ import annotations

import os

import typer

from flows.cli import costs, decisions, demo, ops, replay, status
from flows.cli.fleet import fleet_app
from flows.cli.store import db_app

QUIET_DEFAULTS = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "AGNO_TELEMETRY": "false"}

app = typer.Typer(help="Route work to the best target and learn from every outcome.", no_args_is_help=True)


@app.callback()
def _defaults() -> None:
    """Route work to the best target and learn from every outcome."""
    for name, value in QUIET_DEFAULTS.items():  # offline machines: no analytics, no telemetry
        os.environ.setdefault(name, value)


def strategies() -> None:
    """List the routing strategies `--strategy` and settings blocks accept."""
    from flows.cli.common import console
    from routing.strategies.registry import STRATEGY_NAMES

    console.print("\n".join(STRATEGY_NAMES))


COMMANDS = {
    "demo": demo.demo,
    "route": decisions.route,
    "explain": decisions.explain,
    "stats": status.stats,
    "health": status.health,
    "set-budget": costs.set_budget,
    "set-strategy": costs.set_strategy,
    "strategies": strategies,
    "recalculate": ops.recalculate,
    "up": ops.up,
    "stop": ops.stop,
    "env": ops.env,
    "replay": replay.replay,
}
for command_name, command in COMMANDS.items():
    app.command(command_name)(command)
app.add_typer(db_app, name="db")
app.add_typer(fleet_app, name="fleet")
