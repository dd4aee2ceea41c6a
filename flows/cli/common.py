"""What every command shares: the console, the store option, and one way to fail.

Nothing heavy is imported here: `adaptive-router --help` must not pay for Prefect, scipy or DuckDB.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console

if TYPE_CHECKING:
    from blocks.store import DuckDBStore, Store

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


def show_warnings() -> None:
    """Print the router's warnings on the console, as `warning: ...` lines: a command whose change is
    committed but could not reach everything (live.json not shipped to the published URL) says so
    and still succeeds. Installed once per process; without a handler Python prints them bare on stderr."""
    logger = logging.getLogger("adaptive_router")
    if any(isinstance(h, _ConsoleWarnings) for h in logger.handlers):
        return
    logger.addHandler(_ConsoleWarnings(logging.WARNING))


class _ConsoleWarnings(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        console.print(f"[yellow]warning:[/yellow] {record.getMessage()}", highlight=False)


def open_store(database: str | None) -> DuckDBStore:
    """The store as a Prefect block, for commands that hand it to flows (they import Prefect anyway)."""
    from blocks.store import DuckDBStore

    return DuckDBStore(database=database)


def existing_store(database: str | None) -> Store:
    """The store for a command that only reads: a missing file is an error, never created.

    A plain `Store`, not the Prefect block: the file's path is all a local read needs, and not
    importing Prefect is most of what makes `stats`, `health` and `explain` start fast.
    """
    from blocks.store import Store

    store = Store(database=database)
    try:
        exists = store.path.is_file()
    except OSError as exc:  # e.g. a name too long for the file system
        fail(f"cannot use {str(store.path)[:80]}... as a store: {exc.strerror}")
    if not exists:
        fail(f"no store at {store.path}: run `adaptive-router demo` first, or name one with --database")
    return store


SUCCESS_MEANS = "success: the target answered and the answer passed its check (if the task has one)"

def quiet_prefect(log: Path) -> None:
    """Prepare a command that starts Prefect's ephemeral API in this process.

    From now until the process exits everything Prefect, its ephemeral server and Agno would print goes to `log`: stderr is redirected at
    the file-descriptor level (threads, subprocesses and the tracebacks some libraries print while the
    interpreter shuts down included), and Agno's loggers, which print to stdout, write there too. The
    command's own output goes through `console` on stdout.
    """
    import logging

    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(descriptor, 2)
    os.close(descriptor)
    handler = logging.FileHandler(log, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    from agno.utils.log import LOGGER_NAME, TEAM_LOGGER_NAME, WORKFLOW_LOGGER_NAME

    for name in (LOGGER_NAME, TEAM_LOGGER_NAME, WORKFLOW_LOGGER_NAME):
        agno_logger = logging.getLogger(name)
        for old in list(agno_logger.handlers):
            agno_logger.removeHandler(old)
        agno_logger.addHandler(handler)


def describe_failure(exc: Exception, log: Path) -> str:
    """One line for an error a command cannot handle itself; the traceback goes to `log`."""
    import traceback

    with log.open("a", encoding="utf-8") as out:
        traceback.print_exception(exc, file=out)
    if "ephemeral Prefect API server" in str(exc):
        return (
            f"Prefect's ephemeral API did not start in time (limit {os.environ.get('PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS')} s,"
            " PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS); try again, or run a server with `make serve`"
            f" and export PREFECT_API_URL. Details: {log}"
        )
    return f"{type(exc).__name__}: {exc} (details: {log})"
