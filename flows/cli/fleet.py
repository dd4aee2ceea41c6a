"""`adaptive-router fleet serve`: the local provider fleet in the foreground."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import console, fail

fleet_app = typer.Typer(help="The local provider fleet (an OpenAI-compatible server).", no_args_is_help=True)


@fleet_app.command("serve")
def serve(
    config: Annotated[Path | None, typer.Option(help="Fleet TOML (default: the shipped fleet).")] = None,
    host: str = "127.0.0.1",
    port: int = 8700,
) -> None:
    """Serve the local fleet in the foreground (Ctrl-C stops it)."""
    from blocks.fleet.config import DEFAULT_FLEET_PATH
    from blocks.fleet.launcher import serve as run
    from routing.errors import FleetConfigError

    console.print(f"fleet on http://{host}:{port}/v1")
    try:
        run(config or DEFAULT_FLEET_PATH, host, port)
    except FleetConfigError as exc:
        fail(exc)
