"""Reading back what happened: recent attempts per target and per-(task type, target) performance.

These reads serve the CLI and the gateway; they never ingest or write. Aggregates are weighted by
the rows' sampling weights (weighting.py); a list of attempts shows the sampled rows as they are.
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import TYPE_CHECKING, Any

from blocks.store import weighting as w
from routing.models import ExecutionRecord

if TYPE_CHECKING:
    from blocks.store.store import Store


def recent_attempts(store: Store, per_target: int) -> list[ExecutionRecord]:
    """Each target's last `per_target` attempts (the fields a breaker replay needs), oldest first."""
    rows = store.query(
        "SELECT target, timestamp, task_id, task_type, success, duration_ms, error_type, error_message "
        "FROM executions QUALIFY row_number() OVER (PARTITION BY target ORDER BY timestamp DESC) <= ? "
        "ORDER BY timestamp",
        [per_target],
    )
    return [ExecutionRecord(**{**r, "timestamp": r["timestamp"].replace(tzinfo=UTC)}) for r in rows]


def performance(store: Store) -> list[dict[str, Any]]:
    """Per (task type, target): calls, successes, p50/p95 latency, mean cost, spend and the span in seconds."""
    return store.query(
        f"""SELECT task_type, target, {w.count()} AS calls, {w.count('success')} AS successes,
                  {w.quantile('duration_ms', 0.5)} AS p50, {w.quantile('duration_ms', 0.95)} AS p95,
                  coalesce({w.mean('actual_cost')}, 0) AS mean_cost, coalesce({w.total('actual_cost')}, 0) AS spent,
                  epoch(max(timestamp) - min(timestamp)) AS seconds
           FROM ({w.weighted_cdf_rows('task_type, target', 'duration_ms', 'executions')})
           GROUP BY ALL ORDER BY task_type, target"""
    )


def decisions(
    store: Store, task_id: str | None = None, last: int = 1, task_type: str | None = None, pick: str | None = None
) -> list[dict[str, Any]]:
    """One task's decisions, or the `last` decisions (of `task_type`, picking `pick`, when given),
    newest first, with every attempt they led to."""
    filters = {"task_id": task_id, "task_type": task_type, "pick": pick}
    clauses = [f"{column} = ?" for column, value in filters.items() if value is not None]
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    params = [value for value in filters.values() if value is not None]
    rows = store.query(
        f"""SELECT decision_id, task_id, task_type, timestamp, strategy, pick, probability, reason,
                   candidates::VARCHAR AS candidates
            FROM routing_decisions {where} ORDER BY timestamp DESC, decision_id LIMIT ?""",
        [*params, last if task_id is None else 1_000],
    )
    if not rows:
        return []
    attempts = store.query(
        """SELECT task_id, attempt, target, success, duration_ms, actual_cost, error_type, error_message,
                  quality_score
           FROM executions WHERE task_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY task_id, attempt""",
        [[r["task_id"] for r in rows]],
    )
    for row in rows:
        row["candidates"] = json.loads(row["candidates"] or "[]")
        row["attempts"] = [a for a in attempts if a["task_id"] == row["task_id"]]
    return rows
