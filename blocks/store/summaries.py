"""Summary tables for dashboards and the router, rebuilt from executions; and how long rows are kept.

DuckDB has no materialized views, so each summary is a table rebuilt in one transaction (delete, then
insert the aggregate): readers see the old rows or the new, never a mix. Time-bucketed summaries keep
longer than raw executions (365 days against 90 by default), so a rebuild only touches buckets that
start after the raw-retention horizon: older buckets have lost their raw rows and stay as they were.
Solution patterns are not bucketed and are rebuilt whole over the retained executions.

Spend per target and task type is kept per day, ISO week (Monday) and calendar month, in UTC, like the
budgets of routing/budget.py. The three tables are rebuilt in one transaction, so they always agree, and
costs are summed as DECIMAL(38, 12) (exact, order-independent) before the one rounding to DOUBLE: the
sums are exact to far below a cent and a rebuild of the same rows gives bit-identical tables.

Every count, sum, mean and percentile is weighted by the rows' sampling weights (weighting.py), so
summaries of sampled executions estimate every outcome.

Retention deletes rows whose time is strictly before `as_of - days`, raw tables and aggregates each
with their own age.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Literal

import duckdb
from pydantic import BaseModel, ConfigDict, Field

from blocks.store import weighting as w
from blocks.store.store import _transaction
from routing.spend.budgets import Period, next_period_start, period_start


class Summary(StrEnum):
    TIER_DAILY = "tier-daily"
    POOL_HOURLY = "pool-hourly"
    SOLUTION_PATTERNS = "solution-patterns"
    SPEND = "spend"


_METRICS = f"""
    {w.count()} AS executions, {w.count('success')} AS successes, {w.share('success')} AS success_rate,
    {w.mean('quality_score')} AS mean_quality, {w.quantile('duration_ms', 0.5)} AS p50_latency_ms,
    {w.quantile('duration_ms', 0.95)} AS p95_latency_ms, {w.total('coalesce(actual_cost, 0)')} AS total_cost,
    {w.mean('coalesce(actual_cost, 0)')} AS mean_cost
"""


def _recent(partition: str) -> str:
    """Executions since the rebuild's start (the first parameter), ready for weighted percentiles per
    group of `partition` (the summary's GROUP BY)."""
    return f"({w.weighted_cdf_rows(partition, 'duration_ms', 'executions WHERE timestamp >= ?')})"



Bucket = Literal["hour"] | Period


@dataclass(frozen=True)
class _Spec:
    table: str
    bucket: Bucket | None  # the table's time column holds the start of this period; None: not bucketed
    column: str | None
    select: str


_SPEND_UNITS = {Period.DAILY: "day", Period.WEEKLY: "week", Period.MONTHLY: "month"}


def _spend(period: Period) -> _Spec:
    """Spend per target and task type per `period`; DuckDB's 'week' starts on Monday (ISO 8601)."""
    unit = _SPEND_UNITS[period]
    return _Spec(
        f"spend_{period.value}", period, unit,
        f"SELECT date_trunc('{unit}', timestamp)::DATE AS {unit}, target, task_type, {w.count()} AS executions, "
        f"{w.count('success')} AS successes, "
        f"sum((coalesce(actual_cost, 0) * {w.WEIGHT})::DECIMAL(38, 12))::DOUBLE AS total_cost, "
        f"sum((coalesce(cost_estimate, 0) * {w.WEIGHT})::DECIMAL(38, 12))::DOUBLE AS total_cost_estimate, "
        "?::TIMESTAMP AS refreshed_at FROM executions WHERE timestamp >= ? GROUP BY ALL",
    )  # fmt: skip


SPECS: dict[Summary, tuple[_Spec, ...]] = {
    Summary.TIER_DAILY: (
        _Spec(
            "tier_daily_performance", Period.DAILY, "day",
            f"SELECT timestamp::DATE AS day, coalesce(model_tier, 'unknown') AS model_tier, {_METRICS}, "
            "?::TIMESTAMP AS refreshed_at FROM "
            + _recent("timestamp::DATE, coalesce(model_tier, 'unknown')") + " GROUP BY ALL",
        ),
    ),
    Summary.POOL_HOURLY: (
        _Spec(
            "pool_hourly_performance", "hour", "hour",
            "SELECT date_trunc('hour', timestamp) AS hour, coalesce(pool_type, 'unknown') AS pool_type, "
            f"{_METRICS}, "
            "?::TIMESTAMP AS refreshed_at FROM "
            + _recent("date_trunc('hour', timestamp), coalesce(pool_type, 'unknown')") + " GROUP BY ALL",
        ),
    ),
    Summary.SOLUTION_PATTERNS: (
        _Spec(
            "solution_patterns", None, None,
            f"""
            WITH errors AS (
                SELECT coalesce(category, 'general') AS category, task_type, target, error_type,
                       sum({w.WEIGHT}) AS failures,
                       row_number() OVER (PARTITION BY coalesce(category, 'general'), task_type, target
                                          ORDER BY sum({w.WEIGHT}) DESC, error_type) AS rank
                FROM executions WHERE error_type IS NOT NULL AND timestamp >= ? GROUP BY 1, 2, 3, 4
            ), totals AS (
                SELECT coalesce(category, 'general') AS category, task_type, target, {w.count()} AS executions,
                       {w.count('success')} AS successes, {w.share('success')} AS success_rate,
                       {w.mean('quality_score')} AS mean_quality, {w.mean('coalesce(actual_cost, 0)')} AS mean_cost,
                       {w.quantile('duration_ms', 0.5)} AS p50_latency_ms, min(timestamp) AS first_seen,
                       max(timestamp) AS last_seen, sum({w.WEIGHT}) AS _outcomes
                FROM {_recent("coalesce(category, 'general'), task_type, target")} GROUP BY ALL
            )
            SELECT t.* EXCLUDE (_outcomes), e.error_type AS top_error_type, e.failures / t._outcomes AS top_error_share,
                   ?::TIMESTAMP AS refreshed_at
            FROM totals t LEFT JOIN errors e ON e.rank = 1 AND e.category = t.category
                 AND e.task_type = t.task_type AND e.target = t.target
            """,
        ),
    ),
    Summary.SPEND: tuple(_spend(period) for period in Period),
}  # fmt: skip


def rebuild_from(bucket: Bucket | None, now: datetime, horizon_days: int) -> datetime:
    """Start of the oldest `bucket` a rebuild at `now` replaces: the first one that starts at or after the
    raw horizon (naive UTC). Unbucketed summaries are rebuilt from the horizon itself."""
    horizon = now - timedelta(days=horizon_days)
    if bucket is None:
        return horizon
    if bucket == "hour":
        start = horizon.replace(minute=0, second=0, microsecond=0)
        return start if start == horizon else start + timedelta(hours=1)
    utc = horizon.replace(tzinfo=UTC)
    start = period_start(bucket, utc)
    return (start if start == utc else next_period_start(bucket, utc)).replace(tzinfo=None)


def rebuild(con: duckdb.DuckDBPyConnection, summary: Summary, now: datetime, horizon_days: int) -> int:
    """Rebuild the tables of `summary` from executions newer than the raw horizon, in one transaction;
    returns the rows those tables now hold."""
    rows = 0
    with _transaction(con):
        for spec in SPECS[summary]:
            since = rebuild_from(spec.bucket, now, horizon_days)
            if spec.column is None:
                con.execute(f"DELETE FROM {spec.table}")
                con.execute(f"INSERT INTO {spec.table} BY NAME {spec.select}", [since, since, now])
            else:
                con.execute(f"DELETE FROM {spec.table} WHERE {spec.column} >= ?", [since])
                con.execute(f"INSERT INTO {spec.table} BY NAME {spec.select}", [now, since])
            rows += con.execute(f"SELECT count(*) FROM {spec.table}").fetchone()[0]
    return rows


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
    "spend_daily": "day",
    "spend_weekly": "week",
    "spend_monthly": "month",
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
