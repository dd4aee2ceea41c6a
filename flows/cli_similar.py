"""`adaptive-router similar "TEXT"`: the past executions whose prompts are nearest TEXT.

A typer sub-app (`similar_app`, one command) for the main CLI to mount, e.g.
`app.add_typer(similar_app)` or `app.command("similar")(similar)`.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from routing.errors import RoutingError

console = Console()
similar_app = typer.Typer(help="Similarity search over past executions.")


@similar_app.command("similar")
def similar(
    text: Annotated[str, typer.Argument(help="The prompt to find neighbours of.")],
    k: Annotated[int, typer.Option("--k", help="How many executions to show.", min=1)] = 5,
    task_type: Annotated[str | None, typer.Option(help="Only executions of this task type.")] = None,
    embeddings_url: Annotated[
        str | None,
        typer.Option(help="An OpenAI-compatible base URL to embed with (default: the local MiniLM model)."),
    ] = None,
    embeddings_model: Annotated[str, typer.Option(help="Model name for --embeddings-url.")] = "text-embedding-3-small",
    database: Annotated[
        str | None,
        typer.Option("--database", "-d", help="DuckDB file (default: $ADAPTIVE_ROUTER_DB or .adaptive-router/router.duckdb)."),
    ] = None,
) -> None:
    """Embed TEXT and list the nearest past executions: target, outcome, cost and similarity."""
    from blocks.embeddings import MiniLMEmbedder, OpenAIEmbedder
    from blocks.store import DuckDBStore
    from blocks.store.similarity import similar_executions

    try:
        embedder = OpenAIEmbedder(embeddings_url, embeddings_model) if embeddings_url else MiniLMEmbedder()
        vector = embedder.embed([text])[0]
        found = similar_executions(DuckDBStore(database=database), vector, k=k, task_type=task_type)
    except RoutingError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=1) from None
    if not found:
        console.print("no execution with an embedding yet")
        return
    table = Table(title=f"{len(found)} nearest executions")
    for column in ("similarity", "target", "success", "cost", "task type", "when", "prompt"):
        table.add_column(column, justify="right" if column in ("similarity", "cost") else "left")
    for hit in found:
        table.add_row(
            f"{hit.similarity:.3f}",
            hit.target,
            "yes" if hit.success else "no",
            "-" if hit.cost is None else f"${hit.cost:.6f}",
            hit.task_type,
            hit.timestamp.strftime("%Y-%m-%d %H:%M"),
            (hit.description or "")[:60],
        )
    console.print(table)
