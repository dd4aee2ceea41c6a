"""Per-target, per-task-type statistics computed from the executions table, incrementally.

A target needs recomputing when its execution count or latest timestamp differs from the fingerprint
kept at its last computation: that catches new rows, rows that arrive late with old timestamps (a
spool ingested after a crash) and rows deleted by retention, without scanning more than two columns.
Statistics cover every retained execution (retention bounds the history; the router's in-process
StatsBook covers what happened since the last publication).

DuckDB does the heavy aggregation (counts, `quantile_cont` percentiles, which interpolate linearly as
numpy's default does, mean and sample sd), each weighted by the rows' sampling weights (weighting.py:
the counts estimate every outcome, the interval and tests use the effective sample size); scipy/statsmodels, through routing.stats.significance, do the Wilson
interval and the tests on the small result. Each target is compared with the leader of its task type
(highest success rate, then lowest mean latency): a two-proportion z test on success and Welch's t test
on latency. Everything is written in one transaction, so a reader sees the old or the new statistics.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import pandas as pd

from blocks.store import weighting as w
from blocks.store.store import _transaction
from routing.stats.significance import two_proportion_test, welch_t_test_from_stats, wilson_interval

CONFIDENCE = 0.95
_LIST = "(SELECT unnest(?::VARCHAR[]))"

_AGGREGATE = f"""
SELECT target, task_type, {w.count()} AS n, {w.count('success')} AS successes,
       {w.share('success')} AS success_rate, {w.EFFECTIVE_N} AS effective_n,
       [{w.quantile('duration_ms', 0.5)}, {w.quantile('duration_ms', 0.95)}, {w.quantile('duration_ms', 0.99)}] AS pct,
       {w.mean('duration_ms')} AS mean_latency_ms, {w.stddev('duration_ms')} AS latency_sd_ms,
       {w.mean('coalesce(actual_cost, 0)')} AS mean_cost, {w.mean('quality_score')} AS mean_quality,
       min(timestamp) AS first_seen, max(timestamp) AS last_seen
FROM ({w.weighted_cdf_rows('target, task_type', 'duration_ms', 'executions {where}')}) GROUP BY target, task_type
"""

_PRIORS = f"""
SELECT target, task_type, coalesce(category, 'general') AS category, {w.count('success')} AS successes,
       {w.count('NOT success')} AS failures
FROM executions {{where}} GROUP BY ALL
"""

STATS_COLUMNS = (
    "target", "task_type", "n", "successes", "success_rate", "success_low", "success_high",
    "p50_latency_ms", "p95_latency_ms", "p99_latency_ms", "mean_latency_ms", "latency_sd_ms",
    "mean_cost", "mean_quality", "first_seen", "last_seen", "best_target", "success_z", "success_p",
    "latency_t", "latency_p", "computed_at", "effective_n",
)  # fmt: skip


@dataclass(frozen=True)
class Recalculation:
    """What one recalculation did."""

    full: bool
    targets: tuple[str, ...]
    removed: tuple[str, ...]
    executions: int
    task_types: tuple[str, ...]
    computed_at: datetime

    @property
    def changed(self) -> bool:
        return bool(self.targets or self.removed)


def recalculate(con: duckdb.DuckDBPyConnection, now: datetime, full: bool = False) -> Recalculation:
    """Recompute the statistics and priors of every target (`full`) or of those with changed data.

    `now` (naive UTC) stamps the rows. The caller's connection holds DuckDB's file lock throughout, so
    no other process ingests between reading the fingerprints and writing the statistics.
    """
    current = _fingerprints(con, "SELECT target, count(*), max(timestamp) FROM executions GROUP BY target")
    stored = _fingerprints(con, "SELECT target, executions, last_timestamp FROM stats_fingerprints")
    changed = sorted(current if full else (t for t in current if stored.get(t) != current[t]))
    removed = sorted(set(stored) - set(current))
    if not changed and not removed:
        return Recalculation(full, (), (), 0, (), now)
    touched = sorted(set(changed) | set(removed))
    where, params = ("", []) if full else (f"WHERE target IN {_LIST}", [changed])
    fresh = [_with_interval(row, now) for row in _rows(con, _AGGREGATE.format(where=where), params)]
    previous = _rows(con, f"SELECT DISTINCT task_type FROM target_stats WHERE target IN {_LIST}", [touched])
    task_types = sorted({r["task_type"] for r in fresh + previous})
    kept = _rows(
        con,
        f"SELECT {', '.join(STATS_COLUMNS)} FROM target_stats WHERE task_type IN {_LIST} AND target NOT IN {_LIST}",
        [task_types, touched],
    )
    priors = con.execute(_PRIORS.format(where=where), params).df().assign(computed_at=now)
    fingerprints = pd.DataFrame(
        [(t, *current[t], now) for t in changed],
        columns=["target", "executions", "last_timestamp", "computed_at"],
    )
    with _transaction(con):
        con.execute(
            f"DELETE FROM target_stats WHERE task_type IN {_LIST} OR target IN {_LIST}", [task_types, touched]
        )
        for table in ("target_priors", "stats_fingerprints"):
            con.execute(f"DELETE FROM {table} WHERE target IN {_LIST}", [touched])
        _insert(
            con, "target_stats", pd.DataFrame(compare_with_leaders(fresh + kept), columns=list(STATS_COLUMNS))
        )
        _insert(con, "target_priors", priors)
        _insert(con, "stats_fingerprints", fingerprints)
    executions = sum(current[t][0] for t in changed)
    return Recalculation(full, tuple(changed), tuple(removed), executions, tuple(task_types), now)


def _fingerprints(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, tuple[int, datetime]]:
    return {target: (count, latest) for target, count, latest in con.execute(sql).fetchall()}


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    if len(frame):
        con.register("incoming", frame)
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming")
        con.unregister("incoming")


def _with_interval(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    p50, p95, p99 = row.pop("pct")
    low, high = wilson_interval(*_evidence(row), CONFIDENCE)
    return {
        **row,
        "success_low": low,
        "success_high": high,
        "p50_latency_ms": p50,
        "p95_latency_ms": p95,
        "p99_latency_ms": p99,
        "computed_at": now,
    }


def _evidence(row: dict[str, Any]) -> tuple[float, float]:
    """(successes, n) as much evidence as the rows hold: the effective sample size of sampled rows
    (their weighted counts estimate how many outcomes there were, not how much is known of them)."""
    n = row.get("effective_n") or row["n"]
    return row["success_rate"] * n, n


def compare_with_leaders(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row with its task type's leader and the tests of it against the leader (None for the leader)."""
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_type[row["task_type"]].append(row)
    out = []
    for group in by_type.values():
        leader = max(group, key=lambda r: (r["success_rate"], -r["mean_latency_ms"], r["target"]))
        for row in group:
            tests: dict[str, float | None] = dict.fromkeys(
                ("success_z", "success_p", "latency_t", "latency_p")
            )
            if row is not leader:
                (s1, n1), (s2, n2) = _evidence(row), _evidence(leader)
                success = two_proportion_test(s1, n1, s2, n2)
                tests["success_z"], tests["success_p"] = success.statistic, success.pvalue
                if min(n1, n2) >= 2:
                    latency = welch_t_test_from_stats(
                        row["mean_latency_ms"], row["latency_sd_ms"], n1,
                        leader["mean_latency_ms"], leader["latency_sd_ms"], n2,
                    )  # fmt: skip
                    if not math.isnan(latency.pvalue):
                        tests["latency_t"], tests["latency_p"] = latency.statistic, latency.pvalue
            out.append({**row, "best_target": leader["target"], **tests})
    return out
