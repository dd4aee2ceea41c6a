"""Read-only reports for people: the tables flows attach as artifacts or print, computed in DuckDB.

Nothing here writes; each report is one query over tables other modules maintain (target_stats from
stats.py, executions and routing_decisions from ingestion). Counts, shares and percentiles are weighted
by the rows' sampling weights (weighting.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from blocks.store import weighting as w
from blocks.store.store import Store

_IDS = "(SELECT unnest(?::VARCHAR[]))"


def target_scores(store: Store, task_types: Iterable[str]) -> list[dict[str, Any]]:
    """The recomputed statistics of every target on `task_types`, rounded for reading, best first."""
    return store.query(
        f"""
        SELECT task_type, target, n, round(success_rate, 4) AS success_rate,
               format('{{:.3f}}-{{:.3f}}', success_low, success_high) AS success_95ci,
               round(p50_latency_ms, 1) AS p50_ms, round(p95_latency_ms, 1) AS p95_ms,
               round(p99_latency_ms, 1) AS p99_ms, round(mean_cost, 6) AS mean_cost, best_target,
               round(success_p, 4) AS success_p_vs_best, round(latency_p, 4) AS latency_p_vs_best
        FROM target_stats WHERE task_type IN {_IDS}
        ORDER BY task_type, success_rate DESC, mean_latency_ms
        """,
        [list(task_types)],
    )


def calls_by_target(store: Store, task_ids: list[str]) -> list[dict[str, Any]]:
    """Calls, success rate, median latency and spend per target over the executions of `task_ids`,
    busiest target first."""
    return store.query(
        f"""
        SELECT target, {w.count()} AS calls, {w.share('success')} AS success_rate,
               {w.quantile('duration_ms', 0.5)} AS p50_latency_ms, coalesce({w.total('actual_cost')}, 0) AS cost_usd
        FROM ({w.weighted_cdf_rows('target', 'duration_ms', f'executions WHERE task_id IN {_IDS}')})
        GROUP BY target ORDER BY calls DESC
        """,
        [task_ids],
    )


def pick_shares_by_phase(
    store: Store, task_ids: list[str], phases: int = 4
) -> dict[str, dict[str, float]]:
    """Share of first picks per target in each of `phases` equal runs of the decisions for `task_ids`
    in time order ('Q1'..'Q4' by default): the learning made visible."""
    rows = store.query(
        f"""
        WITH d AS (
            SELECT pick, {w.WEIGHT}, ntile(?) OVER (ORDER BY timestamp, decision_id) AS phase
            FROM routing_decisions WHERE task_id IN {_IDS}
        )
        SELECT phase, pick, sum({w.WEIGHT}) / sum(sum({w.WEIGHT})) OVER (PARTITION BY phase) AS share
        FROM d GROUP BY phase, pick ORDER BY phase, pick
        """,
        [phases, task_ids],
    )
    shares: dict[str, dict[str, float]] = {}
    for row in rows:
        shares.setdefault(f"Q{row['phase']}", {})[row["pick"]] = row["share"]
    return shares
