"""`adaptive-router feedback TASK_ID`: a user's rating or acceptance of a routed task's answer."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.common import DatabaseOption, console, existing_store, fail


def feedback(
    task_id: Annotated[str, typer.Argument(help="The routed task's id (the gateway's response id).")],
    rating: Annotated[int | None, typer.Option(help="1 (poor) to 5 (excellent).", min=1, max=5)] = None,
    accepted: Annotated[bool | None, typer.Option("--accepted/--rejected", help="Did the user keep the answer?")] = None,
    comment: Annotated[str | None, typer.Option(help="Free text, kept with the feedback.")] = None,
    database: DatabaseOption = None,
) -> None:
    """Record feedback on a routed task's answer; learners and experiments use it as reward."""
    from flows.operations import give_feedback
    from routing.errors import RoutingError
    from routing.feedback import Feedback

    store = existing_store(database)
    try:
        row = give_feedback(store, Feedback(task_id=task_id, rating=rating, accepted=accepted, comment=comment))
    except RoutingError as exc:
        fail(exc)
    console.print(f"feedback on {task_id} ({row['target']}): {row['verdict']}, reward {row['reward']:+.1f}", highlight=False)
