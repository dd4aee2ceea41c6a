"""Reading back what happened: recent attempts per target and per-(task type, target) performance.

These reads serve the CLI and the gateway; they never ingest or write.
"""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING, Any

from routing.models import ExecutionRecord

if TYPE_CHECKING:
    from blocks.store.store import DuckDBStore


def recent_attempts(store: DuckDBStore, per_target: int) -> list[ExecutionRecord]:
    """Each target's last `per_target` attempts (the fields a breaker replay needs), oldest first."""
    rows = store.query(
        "SELECT target, timestamp, task_id, task_type, success, duration_ms, error_type, error_message "
        "FROM executions QUALIFY row_number() OVER (PARTITION BY target ORDER BY timestamp DESC) <= ? "
        "ORDER BY timestamp",
        [per_target],
    )
    return [ExecutionRecord(**{**r, "timestamp": r["timestamp"].replace(tzinfo=UTC)}) for r in rows]


def performance(store: DuckDBStore) -> list[dict[str, Any]]:
    """Per (task type, target): calls, successes, p50/p95 latency, mean cost, spend and the span in seconds."""
    return store.query(
        """SELECT task_type, target, count(*) AS calls, sum(success::INT) AS successes,
                  quantile_cont(duration_ms, 0.5) AS p50, quantile_cont(duration_ms, 0.95) AS p95,
                  coalesce(avg(actual_cost), 0) AS mean_cost, coalesce(sum(actual_cost), 0) AS spent,
                  epoch(max(timestamp) - min(timestamp)) AS seconds
           FROM executions GROUP BY ALL ORDER BY task_type, target"""
    )
