"""Summary tables for dashboards and the router, rebuilt from executions; and how long rows are kept.

DuckDB has no materialized views, so each summary is a table rebuilt in one transaction (delete, then
insert the aggregate): readers see the old rows or the new, never a mix. Time-bucketed summaries keep
longer than raw executions (365 days against 90 by default), so a rebuild only touches buckets that
start after the raw-retention horizon: older buckets have lost their raw rows and stay as they were.
Solution patterns are not bucketed and are rebuilt whole over the retained executions.

Retention deletes rows whose time is strictly before `as_of - days`, raw tables and aggregates each
with their own age.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import duckdb
from pydantic import BaseModel, ConfigDict, Field

from blocks.store.store import _transaction


class Summary(StrEnum):
    TIER_DAILY = "tier-daily"
    POOL_HOURLY = "pool-hourly"
    SOLUTION_PATTERNS = "solution-patterns"


_METRICS = """
    count(*) AS executions, count_if(success) AS successes, avg(success::INT) AS success_rate,
    avg(quality_score) AS mean_quality, quantile_cont(duration_ms, 0.5) AS p50_latency_ms,
    quantile_cont(duration_ms, 0.95) AS p95_latency_ms, sum(coalesce(actual_cost, 0)) AS total_cost,
    avg(coalesce(actual_cost, 0)) AS mean_cost
"""


@dataclass(frozen=True)
class _Spec:
    table: str
    bucket: str | None  # the table's time column, truncated to this unit; None: not bucketed
    column: str | None
    select: str


SPECS: dict[Summary, _Spec] = {
    Summary.TIER_DAILY: _Spec(
        "tier_daily_performance", "day", "day",
        f"SELECT timestamp::DATE AS day, coalesce(model_tier, 'unknown') AS model_tier, {_METRICS}, "
        "?::TIMESTAMP AS refreshed_at FROM executions WHERE timestamp >= ? GROUP BY ALL",
    ),
    Summary.POOL_HOURLY: _Spec(
        "pool_hourly_performance", "hour", "hour",
        f"SELECT date_trunc('hour', timestamp) AS hour, coalesce(pool_type, 'unknown') AS pool_type, {_METRICS}, "
        "?::TIMESTAMP AS refreshed_at FROM executions WHERE timestamp >= ? GROUP BY ALL",
    ),
    Summary.SOLUTION_PATTERNS: _Spec(
        "solution_patterns", None, None,
        """
        WITH errors AS (
            SELECT coalesce(category, 'general') AS category, task_type, target, error_type, count(*) AS failures,
                   row_number() OVER (PARTITION BY coalesce(category, 'general'), task_type, target
                                      ORDER BY count(*) DESC, error_type) AS rank
            FROM executions WHERE error_type IS NOT NULL AND timestamp >= ? GROUP BY 1, 2, 3, 4
        ), totals AS (
            SELECT coalesce(category, 'general') AS category, task_type, target, count(*) AS executions,
                   count_if(success) AS successes, avg(success::INT) AS success_rate,
                   avg(quality_score) AS mean_quality, avg(coalesce(actual_cost, 0)) AS mean_cost,
                   quantile_cont(duration_ms, 0.5) AS p50_latency_ms, min(timestamp) AS first_seen,
                   max(timestamp) AS last_seen
            FROM executions WHERE timestamp >= ? GROUP BY ALL
        )
        SELECT t.*, e.error_type AS top_error_type, e.failures / t.executions AS top_error_share,
               ?::TIMESTAMP AS refreshed_at
        FROM totals t LEFT JOIN errors e ON e.rank = 1 AND e.category = t.category
             AND e.task_type = t.task_type AND e.target = t.target
        """,
    ),
}  # fmt: skip


def rebuild_from(summary: Summary, now: datetime, horizon_days: int) -> datetime:
    """Start of the oldest bucket of `summary` a rebuild at `now` replaces (naive UTC)."""
    horizon = now - timedelta(days=horizon_days)
    unit = SPECS[summary].bucket
    if unit is None:
        return horizon
    start = horizon.replace(minute=0, second=0, microsecond=0)
    if unit == "day":
        start = start.replace(hour=0)
    step = timedelta(days=1) if unit == "day" else timedelta(hours=1)
    return start if start == horizon else start + step


def rebuild(con: duckdb.DuckDBPyConnection, summary: Summary, now: datetime, horizon_days: int) -> int:
    """Rebuild `summary` from executions newer than the raw horizon, in one transaction; returns its rows."""
    spec = SPECS[summary]
    since = rebuild_from(summary, now, horizon_days)
    with _transaction(con):
        if spec.column is None:
            con.execute(f"DELETE FROM {spec.table}")
            con.execute(f"INSERT INTO {spec.table} BY NAME {spec.select}", [since, since, now])
        else:
            con.execute(f"DELETE FROM {spec.table} WHERE {spec.column} >= ?", [since])
            con.execute(f"INSERT INTO {spec.table} BY NAME {spec.select}", [now, since])
        return con.execute(f"SELECT count(*) FROM {spec.table}").fetchone()[0]


class RetentionPolicy(BaseModel):
    """How many days rows are kept: raw records, and aggregates computed from them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    raw_days: int = Field(default=90, ge=1, description="executions, decisions, feedback, assignments")
    aggregate_days: int = Field(default=365, ge=1, description="summaries, benchmarks, metrics, publications")


RAW_TABLES = {
    "executions": "timestamp",
    "routing_decisions": "timestamp",
    "feedback": "timestamp",
    "experiment_assignments": "timestamp",
}
AGGREGATE_TABLES = {
    "tier_daily_performance": "day",
    "pool_hourly_performance": "hour",
    "benchmark_results": "timestamp",
    "experiment_metrics": "computed_at",
    "published_states": "created_at",
}


def apply_retention(con: duckdb.DuckDBPyConnection, policy: RetentionPolicy, now: datetime) -> dict[str, int]:
    """Delete every row older than its table's age limit, in one transaction; returns rows deleted per table."""
    deleted = {}
    with _transaction(con):
        for tables, days in ((RAW_TABLES, policy.raw_days), (AGGREGATE_TABLES, policy.aggregate_days)):
            cutoff = now - timedelta(days=days)
            for table, column in tables.items():
                (deleted[table],) = con.execute(
                    f"DELETE FROM {table} WHERE {column} < ?", [cutoff]
                ).fetchone()
    return deleted
