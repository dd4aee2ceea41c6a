"""`check-health`: every minute, look for degraded targets, cost spikes and shifts in routing.

Three checks over a recent window against a baseline (the `baseline_hours` before the window):

- degraded: a target's success rate over the window is under `success_threshold` (80%), judged once it
  has `min_attempts` attempts there (the Wilson interval goes into the event for context);
- cost spike: a target's mean cost per call over the window exceeds `cost_spike_ratio` (3x) its mean
  over the baseline, a moving average as the window slides;
- routing shift: the share of picks per target in the window differs from the baseline's by a
  chi-square test of homogeneity (scipy's chi2_contingency) at `shift_alpha`. It runs every minute, so
  alpha is small (0.001) to keep false alarms rare despite the repeated testing.

Each check's state is kept in health_alerts and an event is emitted only when it changes (raised or
cleared), so automations react once per incident, not once a minute. A check without enough data keeps
its previous state. The events name the target as resource `adaptive-router.target.<name>`;
prefect.yaml's automation starts `recalculate-stats` on `adaptive-router.target.degraded`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.events import emit_event
from pydantic import BaseModel
from scipy.stats import chi2_contingency

from blocks.store import utc_naive
from flows.maintenance import store_block
from routing.stats.significance import wilson_interval

EVENTS = {
    "degraded": ("adaptive-router.target.degraded", "adaptive-router.target.recovered"),
    "cost-spike": ("adaptive-router.target.cost-spike", "adaptive-router.target.cost-normal"),
    "routing-shift": ("adaptive-router.routing.shifted", "adaptive-router.routing.settled"),
}
ROUTING_RESOURCE = "adaptive-router.routing"


@dataclass(frozen=True)
class Finding:
    """One check on one subject: alerting (True), fine (False) or not enough data to tell (None)."""

    check: str
    subject: str
    alert: bool | None
    detail: dict[str, Any]


class Transition(BaseModel):
    event: str
    resource: str
    detail: dict[str, Any]


class HealthCheckReport(BaseModel):
    active: list[str]
    transitions: list[Transition]


@flow(name="check-health", persist_result=False)
def check_health(
    window_minutes: int = 15,
    baseline_hours: int = 24,
    min_attempts: int = 20,
    success_threshold: float = 0.8,
    cost_spike_ratio: float = 3.0,
    shift_alpha: float = 0.001,
    min_decisions: int = 50,
    store: str | None = None,
    as_of: datetime | None = None,
) -> HealthCheckReport:
    """Run the three checks and emit an event for every alert raised or cleared since the last run."""
    logger = get_run_logger()
    block = store_block(store)
    now = utc_naive(as_of)
    recent = now - timedelta(minutes=window_minutes)
    baseline = recent - timedelta(hours=baseline_hours)
    with block.connect() as con:
        calls = con.execute(
            """
            SELECT target, timestamp >= ? AS recent, count(*) AS n, count_if(success) AS successes,
                   avg(coalesce(actual_cost, 0)) AS mean_cost
            FROM executions WHERE timestamp >= ? AND timestamp <= ? GROUP BY ALL
            """,
            [recent, baseline, now],
        ).fetchall()
        picks = con.execute(
            """
            SELECT pick, count_if(timestamp >= ?) AS recent, count_if(timestamp < ?) AS baseline
            FROM routing_decisions WHERE timestamp >= ? AND timestamp <= ? GROUP BY pick ORDER BY pick
            """,
            [recent, recent, baseline, now],
        ).fetchall()
        findings = target_findings(calls, min_attempts, success_threshold, cost_spike_ratio)
        findings.append(shift_finding(picks, shift_alpha, min_decisions))
        transitions = _transitions(con, findings, now)
        active = [f"{r[0]}:{r[1]}" for r in con.execute(
            "SELECT check_name, subject FROM health_alerts WHERE active ORDER BY ALL"
        ).fetchall()]  # fmt: skip
    for transition in transitions:
        emit_event(
            event=transition.event,
            resource={
                "prefect.resource.id": transition.resource,
                "prefect.resource.name": transition.resource.rsplit(".", 1)[-1],
            },
            payload=transition.detail,
        )
        logger.warning("%s %s: %s", transition.event, transition.resource, transition.detail)
    logger.info("active alerts: %s", ", ".join(active) or "none")
    return HealthCheckReport(active=active, transitions=transitions)


def target_findings(
    calls: list[tuple[str, bool, int, int, float]], min_attempts: int, threshold: float, ratio: float
) -> list[Finding]:
    """Degradation and cost findings per target from (target, recent?, n, successes, mean cost) rows."""
    windows: dict[str, dict[bool, tuple[int, int, float]]] = {}
    for target, is_recent, n, successes, mean_cost in calls:
        windows.setdefault(target, {})[bool(is_recent)] = (n, successes, mean_cost)
    findings = []
    for target, by_window in sorted(windows.items()):
        n, successes, cost = by_window.get(True, (0, 0, 0.0))
        if n >= min_attempts:
            low, high = wilson_interval(successes, n)
            detail = {
                "success_rate": successes / n,
                "attempts": n,
                "wilson_low": low,
                "wilson_high": high,
                "threshold": threshold,
            }
            findings.append(Finding("degraded", target, successes / n < threshold, detail))
        else:
            findings.append(Finding("degraded", target, None, {"attempts": n}))
        base_n, _, base_cost = by_window.get(False, (0, 0, 0.0))
        if n >= min_attempts and base_n >= min_attempts and base_cost > 0:
            detail = {
                "mean_cost": cost,
                "baseline_mean_cost": base_cost,
                "ratio": cost / base_cost,
                "limit": ratio,
            }
            findings.append(Finding("cost-spike", target, cost > ratio * base_cost, detail))
        else:
            findings.append(Finding("cost-spike", target, None, {"attempts": n, "baseline_attempts": base_n}))
    return findings


def shift_finding(picks: list[tuple[str, int, int]], alpha: float, min_decisions: int) -> Finding:
    """Chi-square test of homogeneity of pick counts per target, recent window against baseline."""
    rows = [(pick, recent, base) for pick, recent, base in picks if recent + base > 0]
    recent_total, base_total = sum(r[1] for r in rows), sum(r[2] for r in rows)
    if len(rows) < 2 or recent_total < min_decisions or base_total < min_decisions:
        return Finding(
            "routing-shift", ROUTING_RESOURCE, None, {"recent": recent_total, "baseline": base_total}
        )
    result = chi2_contingency([[r[1] for r in rows], [r[2] for r in rows]])
    detail = {
        "chi2": float(result.statistic),
        "p_value": float(result.pvalue),
        "alpha": alpha,
        "recent_shares": {r[0]: r[1] / recent_total for r in rows},
        "baseline_shares": {r[0]: r[2] / base_total for r in rows},
    }
    return Finding("routing-shift", ROUTING_RESOURCE, bool(result.pvalue < alpha), detail)


def _transitions(con, findings: list[Finding], now: datetime) -> list[Transition]:
    """Record each decided finding in health_alerts; the ones that changed state become events."""
    active = {
        (r[0], r[1])
        for r in con.execute("SELECT check_name, subject FROM health_alerts WHERE active").fetchall()
    }
    transitions = []
    for finding in findings:
        if finding.alert is None:
            continue
        key = (finding.check, finding.subject)
        if finding.alert == (key in active):
            con.execute(
                "UPDATE health_alerts SET detail = ?, updated_at = ? WHERE check_name = ? AND subject = ?",
                [json.dumps(finding.detail), now, *key],
            )
            continue
        con.execute(
            "INSERT OR REPLACE INTO health_alerts VALUES (?, ?, ?, ?, ?, ?)",
            [*key, finding.alert, now, json.dumps(finding.detail), now],
        )
        raised, cleared = EVENTS[finding.check]
        resource = (
            finding.subject
            if finding.check == "routing-shift"
            else f"adaptive-router.target.{finding.subject}"
        )
        transitions.append(
            Transition(event=raised if finding.alert else cleared, resource=resource, detail=finding.detail)
        )
    return transitions
