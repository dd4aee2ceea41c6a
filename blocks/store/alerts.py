"""Health alerts in the store: the window counts the checks read, and each check's kept state.

`health_alerts` holds one row per (check, subject) that was ever decided; `active` says whether it is
alerting. `record_findings` reads the active set, lets routing.stats.health decide which findings flip
it, and writes both kinds in the same connection, so the returned flips are exactly what changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from blocks.store import weighting as w
from blocks.store.store import Store
from routing.stats.health import CallWindow, Finding, PickCounts, changes

# counts estimate every outcome from sampled rows (weighting.py)
_CALLS = f"""
SELECT target, timestamp >= ? AS recent, {w.count()} AS n, {w.count('success')} AS successes,
       {w.mean('coalesce(actual_cost, 0)')} AS mean_cost
FROM executions WHERE timestamp >= ? AND timestamp <= ? GROUP BY ALL
"""
_PICKS = f"""
SELECT pick, {w.count('timestamp >= ?')} AS recent, {w.count('timestamp < ?')} AS baseline
FROM routing_decisions WHERE timestamp >= ? AND timestamp <= ? GROUP BY pick ORDER BY pick
"""


def window_counts(
    store: Store, baseline: datetime, recent: datetime, now: datetime
) -> tuple[list[CallWindow], list[PickCounts]]:
    """Calls per target and first picks per target, split at `recent` into window and baseline
    (`baseline` <= baseline < `recent` <= window <= `now`, naive UTC)."""
    with store.connect() as con:
        calls = con.execute(_CALLS, [recent, baseline, now]).fetchall()
        picks = con.execute(_PICKS, [recent, recent, baseline, now]).fetchall()
    return [CallWindow(*row) for row in calls], [PickCounts(*row) for row in picks]


def record_findings(
    store: Store, findings: Iterable[Finding], now: datetime
) -> tuple[list[Finding], list[str]]:
    """Keep each decided finding's state; returns the findings that flipped it, in order, and the
    alerts active afterwards as sorted 'check:subject' names."""
    with store.connect() as con:
        active = {(r[0], r[1]) for r in con.execute(
            "SELECT check_name, subject FROM health_alerts WHERE active"
        ).fetchall()}  # fmt: skip
        flipped, confirmed = changes(findings, active)
        if confirmed:
            con.executemany(
                "UPDATE health_alerts SET detail = ?, updated_at = ? WHERE check_name = ? AND subject = ?",
                [[json.dumps(f.detail), now, *f.key] for f in confirmed],
            )
        if flipped:
            con.executemany(
                "INSERT OR REPLACE INTO health_alerts VALUES (?, ?, ?, ?, ?, ?)",
                [[*f.key, f.alert, now, json.dumps(f.detail), now] for f in flipped],
            )
        now_active = [f"{r[0]}:{r[1]}" for r in con.execute(
            "SELECT check_name, subject FROM health_alerts WHERE active ORDER BY ALL"
        ).fetchall()]  # fmt: skip
    return flipped, now_active
