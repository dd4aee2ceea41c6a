"""What every command shares: the console, the store option, and one way to fail.

Nothing heavy is imported here: `adaptive-router --help` must not pay for Prefect, scipy or DuckDB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console

if TYPE_CHECKING:
    from blocks.store import DuckDBStore

console = Console()
err_console = Console(stderr=True)

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database", "-d", help="DuckDB file (default: $ADAPTIVE_ROUTER_DB or .adaptive-router/router.duckdb)."
    ),
]


def fail(problem: Exception | str) -> NoReturn:
    """End the command with exit code 1 and one line saying what is wrong (pydantic errors by field)."""
    from pydantic import ValidationError

    from routing.validation import describe

    message = describe(problem) if isinstance(problem, ValidationError) else str(problem)
    console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code=1)


def open_store(database: str | None) -> DuckDBStore:
    from blocks.store import DuckDBStore

    return DuckDBStore(database=database)
