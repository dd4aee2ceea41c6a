"""`adaptive-router`: the command line, in Prefect's style (typer + rich).

Every command is a plain function in the module of its concern, registered here in the order `--help`
lists them; groups (`ab-test`, `policy`, `db`, `fleet`) are typer sub-apps. Modules import Prefect, DuckDB and scipy inside
the commands that need them, so `--help` and the read-only commands start fast.
"""

from __future__ import annotations

import os

import typer

from flows.cli import costs, decisions, demo, feedback, gateway, mcp, ops, replay, similar, status
from flows.cli.experiments import ab_test_app, policy_app
from flows.cli.fleet import fleet_app
from flows.cli.store import db_app

ENVIRONMENT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # offline machines: no analytics, no telemetry
    "AGNO_TELEMETRY": "false",
    # Prefect gives its ephemeral API 20 s to start; a busy 2-core machine needed ~30 s. Read when Prefect
    # is first imported, so it is set here, before any command imports it.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
}

app = typer.Typer(help="Route work to the best target and learn from every outcome.", no_args_is_help=True)


@app.callback()
def _defaults() -> None:
    """Route work to the best target and learn from every outcome."""
    for name, value in ENVIRONMENT_DEFAULTS.items():
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
    "similar": similar.similar,
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
    "feedback": feedback.feedback,
    "gateway": gateway.gateway,
    "mcp": mcp.mcp,
}
for command_name, command in COMMANDS.items():
    app.command(command_name)(command)
app.add_typer(ab_test_app, name="ab-test")
app.add_typer(policy_app, name="policy")
app.add_typer(db_app, name="db")
app.add_typer(fleet_app, name="fleet")
