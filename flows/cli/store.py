"""`adaptive-router db ...`: schema migrations and ingestion of the spool."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.common import DatabaseOption, console, fail, open_store

db_app = typer.Typer(help="The DuckDB store: schema migrations and ingestion.", no_args_is_help=True)


def _migrate(database: str | None, verb: str, to: int | None) -> None:
    from blocks.store import StoreError

    store = open_store(database)
    try:
        versions = store.upgrade(to) if verb == "applied" else store.downgrade(to)
    except StoreError as exc:
        fail(exc)
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

    store = open_store(database)
    try:
        version = store.current_version()
    except StoreError as exc:
        fail(exc)
    console.print(f"{store.path}: version {version} (latest {HEAD})")


@db_app.command()
def ingest(database: DatabaseOption = None) -> None:
    """Move spooled outcomes into the store (safe to run any time, from any process)."""
    from blocks.store import StoreError

    try:
        report = open_store(database).ingest(seal=False)
    except StoreError as exc:
        fail(exc)
    console.print(
        f"{report.segments} segments: {report.executions} executions, {report.decisions} decisions, "
        f"{report.duplicates} duplicates skipped, {len(report.rejected)} malformed lines kept aside"
    )
    for line in report.rejected:
        console.print(f"  [yellow]rejected[/yellow] {line.segment}:{line.line}: {line.reason}")


@db_app.command()
def check(database: DatabaseOption = None) -> None:
    """Check the store's integrity: it opens, and every column of every table reads end to end."""
    from blocks.store import check_store

    store = open_store(database)
    if not store.path.is_file():
        fail(f"no store at {store.path}")
    report = check_store(store.path)
    for line in report.lines():
        console.print(line, highlight=False)
    if not report.ok:
        raise typer.Exit(code=1)
