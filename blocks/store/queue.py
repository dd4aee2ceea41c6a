"""The queue of deferred tasks (`queued_tasks`): claiming the due ones and settling them.

A task moves from `queued` to `routing` when a drain claims it, then to `done` or `failed`, or back to
`queued` (with a new `not_before`) when it must wait again. Claiming is one UPDATE ... RETURNING, so
two drains never claim the same task. A task left `routing` by a crashed drain stays there for an
operator to requeue.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal, NamedTuple

from blocks.store.store import Store, utc_naive
from routing.models import RoutedResult

Status = Literal["queued", "routing", "done", "failed"]


class ClaimedTask(NamedTuple):
    task_id: str
    payload: str  # the task as stored JSON, validated by whoever routes it
    queued_at: datetime


def claim_due(store: Store, now: datetime, limit: int) -> list[ClaimedTask]:
    """Mark up to `limit` queued tasks due at `now` (naive UTC) as `routing`; oldest first."""
    with store.connect() as con:
        claimed = con.execute(
            """
            UPDATE queued_tasks SET status = 'routing'
            WHERE task_id IN (
                SELECT task_id FROM queued_tasks
                WHERE status = 'queued' AND (not_before IS NULL OR not_before <= ?)
                ORDER BY queued_at, task_id LIMIT ?)
            RETURNING task_id, task, queued_at
            """,
            [now, limit],
        ).fetchall()
    return sorted((ClaimedTask(*row) for row in claimed), key=lambda c: (c.queued_at, c.task_id))


def set_status(
    store: Store,
    outcomes: Mapping[str, tuple[Status, str | None]],
    not_before: Mapping[str, datetime] | None = None,
) -> None:
    """Give each task its (status, reason); a None reason keeps the old one. Tasks in `not_before`
    wait until that moment (any timezone; naive is UTC)."""
    if not outcomes:
        return
    not_before = not_before or {}
    with store.connect() as con:
        con.executemany(
            "UPDATE queued_tasks SET status = ?, reason = coalesce(?, reason), "
            "not_before = coalesce(?, not_before) WHERE task_id = ?",
            [
                (status, reason, utc_naive(not_before[task_id]) if task_id in not_before else None, task_id)
                for task_id, (status, reason) in outcomes.items()
            ],
        )


def settle(result: RoutedResult) -> tuple[Status, str | None, datetime | None]:
    """Where a routed queued task goes next: (status, reason, not_before). Still over budget: back to
    `queued` until the budget's reset; otherwise `done`, or `failed` with every target's failure."""
    failure = "; ".join(f"{t}: {why}" for t, why in result.failures.items())
    if result.queued_until is not None:
        return "queued", failure, result.queued_until
    return ("done", None, None) if result.success else ("failed", failure, None)
