"""Health checks as pure functions: window counts in, findings out, and which findings flip an alert."""

from __future__ import annotations

import pytest

from routing.stats.health import ROUTING_SUBJECT, Finding, changes, shift_finding, target_findings


def test_degraded_uses_the_threshold_and_reports_the_wilson_interval() -> None:
    # 8 of 10: Wilson 95% interval (0.4902, 0.9433) (Brown, Cai & DasGupta 2001, Newcombe 1998 method 3)
    (degraded, _) = target_findings([("a", True, 10, 8, 0.0)], min_attempts=10, threshold=0.9, ratio=3.0)
    assert degraded.check == "degraded" and degraded.subject == "a" and degraded.alert is True
    assert degraded.detail["success_rate"] == 0.8 and degraded.detail["attempts"] == 10
    assert (degraded.detail["wilson_low"], degraded.detail["wilson_high"]) == pytest.approx(
        (0.4902, 0.9433), abs=1e-4
    )
    (fine, _) = target_findings([("a", True, 10, 8, 0.0)], min_attempts=10, threshold=0.8, ratio=3.0)
    assert fine.alert is False  # exactly at the threshold is not under it


def test_too_few_attempts_leave_both_target_checks_undecided() -> None:
    findings = target_findings(
        [("a", True, 9, 0, 1.0), ("a", False, 100, 100, 0.1)], min_attempts=10, threshold=0.8, ratio=3.0
    )
    assert [(f.check, f.alert) for f in findings] == [("degraded", None), ("cost-spike", None)]
    assert findings[1].detail == {"attempts": 9, "baseline_attempts": 100}


def test_cost_spike_compares_window_mean_with_baseline_mean() -> None:
    rows = [("b", True, 30, 30, 0.0075), ("b", False, 200, 200, 0.002), ("a", True, 30, 30, 0.001)]
    findings = {(f.check, f.subject): f for f in target_findings(rows, 20, 0.8, 3.0)}
    spike = findings[("cost-spike", "b")]
    assert spike.alert is True and spike.detail["ratio"] == pytest.approx(3.75)
    assert findings[("cost-spike", "a")].alert is None  # no baseline to compare with
    calm = target_findings([("b", True, 30, 30, 0.006), ("b", False, 200, 200, 0.002)], 20, 0.8, 3.0)[1]
    assert calm.alert is False  # exactly 3x is not over 3x


def test_shift_matches_scipys_reference_chi_square() -> None:
    # scipy.stats.chi2_contingency's documented example: [[10, 10, 20], [20, 20, 20]] -> 2.7778, p 0.2494
    picks = [("a", 10, 20), ("b", 10, 20), ("c", 20, 20), ("unused", 0, 0)]
    shift = shift_finding(picks, alpha=0.3, min_decisions=40)
    assert shift.subject == ROUTING_SUBJECT and shift.alert is True
    assert shift.detail["chi2"] == pytest.approx(2.7777777777777777)
    assert shift.detail["p_value"] == pytest.approx(0.24935220877729619)
    assert shift.detail["recent_shares"] == {"a": 0.25, "b": 0.25, "c": 0.5}
    assert shift_finding(picks, alpha=0.2, min_decisions=40).alert is False


def test_shift_needs_two_targets_and_enough_decisions_in_both_windows() -> None:
    assert shift_finding([("a", 100, 100)], 0.01, 50).alert is None
    assert shift_finding([("a", 30, 100), ("b", 19, 100)], 0.01, 50).detail == {"recent": 49, "baseline": 200}


def test_changes_split_flips_from_confirmations_and_skip_undecided() -> None:
    raised = Finding("degraded", "a", True, {})
    cleared = Finding("cost-spike", "b", False, {})
    still = Finding("degraded", "c", True, {})
    quiet = Finding("degraded", "d", False, {})
    unknown = Finding("cost-spike", "e", None, {})
    active = {("cost-spike", "b"), ("degraded", "c"), ("cost-spike", "e")}
    flipped, confirmed = changes([raised, unknown, cleared, still, quiet], active)
    assert flipped == [raised, cleared] and confirmed == [still, quiet]
