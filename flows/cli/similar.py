"""`adaptive-router similar "TEXT"`: the past executions whose prompts are nearest TEXT.

Registered on the main CLI as `similar`; `similar_app` wraps the same function for tests.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from flows.cli.common import DatabaseOption, console, existing_store, fail
from routing.errors import RoutingError

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
    database: DatabaseOption = None,
) -> None:
    """Embed TEXT and list the nearest past executions: target, outcome, cost and similarity."""
    from blocks.embeddings import MiniLMEmbedder, OpenAIEmbedder
    from blocks.store.similarity import similar_executions

    store = existing_store(database)
    try:
        embedder = OpenAIEmbedder(embeddings_url, embeddings_model) if embeddings_url else MiniLMEmbedder()
        vector = embedder.embed([text])[0]
        found = similar_executions(store, vector, k=k, task_type=task_type)
    except RoutingError as error:
        fail(error)
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
