"""Health checks of targets and of routing, from window counts: pure decisions, no storage or events.

Three checks compare a recent window with a baseline (the hours before it):

- degraded: a target's success rate over the window is under a threshold, judged once it has
  `min_attempts` attempts there (the Wilson interval goes into the detail for context);
- cost spike: a target's mean cost per call over the window exceeds `ratio` times its baseline mean;
- routing shift: the share of picks per target differs between window and baseline by a chi-square
  test of homogeneity (scipy's chi2_contingency) at `alpha`.

A check without enough data is undecided (alert None) and keeps whatever state it had; `changes`
says which decided findings flip the kept state, so callers alert once per incident, not once a run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from scipy.stats import chi2_contingency

from routing.stats.significance import wilson_interval

ROUTING_SUBJECT = "adaptive-router.routing"  # the subject of the routing-wide shift check


class CallWindow(NamedTuple):
    """A target's calls in the recent window (`recent` True) or in the baseline before it."""

    target: str
    recent: bool
    n: int
    successes: int
    mean_cost: float


class PickCounts(NamedTuple):
    """How often the router picked `pick` first in the recent window and in the baseline."""

    pick: str
    recent: int
    baseline: int


@dataclass(frozen=True)
class Finding:
    """One check on one subject: alerting (True), fine (False) or not enough data to tell (None)."""

    check: str
    subject: str
    alert: bool | None
    detail: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        return (self.check, self.subject)


def target_findings(
    calls: Iterable[tuple[str, bool, int, int, float]], min_attempts: int, threshold: float, ratio: float
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


def shift_finding(picks: Iterable[tuple[str, int, int]], alpha: float, min_decisions: int) -> Finding:
    """Chi-square test of homogeneity of pick counts per target, recent window against baseline."""
    rows = [(pick, recent, base) for pick, recent, base in picks if recent + base > 0]
    recent_total, base_total = sum(r[1] for r in rows), sum(r[2] for r in rows)
    if len(rows) < 2 or recent_total < min_decisions or base_total < min_decisions:
        return Finding(
            "routing-shift", ROUTING_SUBJECT, None, {"recent": recent_total, "baseline": base_total}
        )
    result = chi2_contingency([[r[1] for r in rows], [r[2] for r in rows]])
    detail = {
        "chi2": float(result.statistic),
        "p_value": float(result.pvalue),
        "alpha": alpha,
        "recent_shares": {r[0]: r[1] / recent_total for r in rows},
        "baseline_shares": {r[0]: r[2] / base_total for r in rows},
    }
    return Finding("routing-shift", ROUTING_SUBJECT, bool(result.pvalue < alpha), detail)


def changes(findings: Iterable[Finding], active: set[tuple[str, str]]) -> tuple[list[Finding], list[Finding]]:
    """Split the decided findings into those that flip their kept state (raised or cleared, in order)
    and those that confirm it; undecided findings are in neither, so their state stays as it was."""
    flipped, confirmed = [], []
    for finding in findings:
        if finding.alert is None:
            continue
        (confirmed if finding.alert == (finding.key in active) else flipped).append(finding)
    return flipped, confirmed
