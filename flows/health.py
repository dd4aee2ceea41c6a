"""`check-health`: every minute, look for degraded targets, cost spikes and shifts in routing.

Three checks over a recent window against a baseline (the `baseline_hours` before the window),
decided in routing/stats/health.py: degraded (success rate under `success_threshold`, 80%), cost spike
(mean cost over `cost_spike_ratio`, 3x, its baseline mean, a moving average as the window slides) and
routing shift (chi-square test of pick shares at `shift_alpha`). It runs every minute, so alpha is
small (0.001) to keep false alarms rare despite the repeated testing.

Each check's state is kept in health_alerts (blocks/store/alerts.py) and an event is emitted only when
it changes (raised or cleared), so automations react once per incident, not once a minute. A check
without enough data keeps its previous state. The events name the target as resource
`adaptive-router.target.<name>`; prefect.yaml's automation starts `recalculate-stats` on
`adaptive-router.target.degraded`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.events import emit_event
from pydantic import BaseModel

from blocks.store import utc_naive
from blocks.store.alerts import record_findings, window_counts
from flows.labels import label_current_run
from flows.maintenance import store_block
from routing.stats.health import Finding, shift_finding, target_findings

EVENTS = {
    "degraded": ("adaptive-router.target.degraded", "adaptive-router.target.recovered"),
    "cost-spike": ("adaptive-router.target.cost-spike", "adaptive-router.target.cost-normal"),
    "routing-shift": ("adaptive-router.routing.shifted", "adaptive-router.routing.settled"),
}


class Transition(BaseModel):
    event: str
    resource: str
    detail: dict[str, Any]


class HealthCheckReport(BaseModel):
    active: list[str]
    transitions: list[Transition]


@flow(name="check-health", persist_result=False, flow_run_name="check-health (last {window_minutes} min)")
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
    calls, picks = window_counts(block, recent - timedelta(hours=baseline_hours), recent, now)
    findings = target_findings(calls, min_attempts, success_threshold, cost_spike_ratio)
    findings.append(shift_finding(picks, shift_alpha, min_decisions))
    flipped, active = record_findings(block, findings, now)
    transitions = [transition(finding) for finding in flipped]
    for t in transitions:
        resource = {"prefect.resource.id": t.resource, "prefect.resource.name": t.resource.rsplit(".", 1)[-1]}
        emit_event(event=t.event, resource=resource, payload=t.detail)
        logger.warning("%s %s: %s", t.event, t.resource, t.detail)
    logger.info("active alerts: %s", ", ".join(active) or "none")
    label_current_run(f"check-health: {len(active)} active alerts, {len(transitions)} changed")
    return HealthCheckReport(active=active, transitions=transitions)


def transition(finding: Finding) -> Transition:
    """The event of a finding that raised or cleared its alert, on its target's or routing's resource."""
    raised, cleared = EVENTS[finding.check]
    target = finding.check != "routing-shift"
    resource = f"adaptive-router.target.{finding.subject}" if target else finding.subject
    return Transition(event=raised if finding.alert else cleared, resource=resource, detail=finding.detail)
