"""The store's queue, health alerts, reports and benchmark runs, on real DuckDB files."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from blocks.store import DuckDBStore
from blocks.store.alerts import record_findings, window_counts
from blocks.store.capabilities import save_benchmark_run
from blocks.store.queue import claim_due, set_status, settle
from blocks.store.reports import calls_by_target, pick_shares_by_phase, target_scores
from blocks.store.stats import recalculate
from routing.evaluation.capability import BenchmarkResult, CapabilityTable
from routing.models import Category, Decision, ExecutionRecord, QueuedTask, RoutedResult, Task
from routing.stats.health import Finding

NOW = datetime(2025, 6, 15, 12, 0)  # naive UTC, as the store keeps it


def ago(minutes: float) -> datetime:
    return (NOW - timedelta(minutes=minutes)).replace(tzinfo=UTC)


def execution(
    i: int, target: str, minutes_ago: float, success: bool = True, cost: float = 0.01, task_type: str = "qa"
) -> ExecutionRecord:
    return ExecutionRecord(
        task_id=f"t{i}",
        target=target,
        task_type=task_type,
        success=success,
        duration_ms=10.0 * (i + 1),
        actual_cost=cost,
        timestamp=ago(minutes_ago),
    )


def decision(i: int, pick: str, minutes_ago: float) -> Decision:
    return Decision(
        task_id=f"t{i}",
        task_type="qa",
        strategy="s",
        candidates=(),
        pick=pick,
        probability=1,
        reason="",
        timestamp=ago(minutes_ago),
    )


def ingest(store: DuckDBStore, *records) -> None:
    for record in records:
        (store.record_decision if isinstance(record, Decision) else store.record_execution)(record)
    assert store.ingest().rejected == []


# -- health alerts --------------------------------------------------------------------------------------


def test_window_counts_split_calls_and_picks_at_the_window_start(store: DuckDBStore) -> None:
    ingest(
        store,
        execution(0, "a", 5, cost=0.02),
        execution(1, "a", 5, success=False, cost=0.04),
        execution(2, "a", 60, cost=0.01),
        execution(3, "b", 60 * 30),  # before the baseline: ignored
        execution(4, "b", -1),  # after now: ignored
        decision(0, "a", 5),
        decision(1, "b", 5),
        decision(2, "a", 60),
        decision(3, "a", 59),
    )
    calls, picks = window_counts(store, NOW - timedelta(hours=24), NOW - timedelta(minutes=15), NOW)
    assert sorted(calls) == [("a", False, 1, 1, pytest.approx(0.01)), ("a", True, 2, 1, pytest.approx(0.03))]
    assert picks == [("a", 1, 2), ("b", 1, 0)]


def test_record_findings_flips_once_and_keeps_undecided_state(store: DuckDBStore) -> None:
    raised = Finding("degraded", "a", True, {"rate": 0.5})
    flipped, active = record_findings(store, [raised, Finding("cost-spike", "a", None, {})], NOW)
    assert flipped == [raised] and active == ["degraded:a"]

    later = NOW + timedelta(minutes=1)
    flipped, active = record_findings(store, [Finding("degraded", "a", True, {"rate": 0.4})], later)
    assert flipped == [] and active == ["degraded:a"]
    row = store.query("SELECT since, updated_at, detail FROM health_alerts")[0]
    assert (row["since"], row["updated_at"], row["detail"]) == (NOW, later, '{"rate": 0.4}')

    assert record_findings(store, [Finding("degraded", "a", None, {})], later)[1] == ["degraded:a"]
    cleared = Finding("degraded", "a", False, {"rate": 0.95})
    assert record_findings(store, [cleared], later) == ([cleared], [])


# -- the queue -------------------------------------------------------------------------------------------


def queue(store: DuckDBStore, minutes_ago: float, not_before: datetime | None = None) -> Task:
    task = Task(task_type="qa", payload=f"queued {minutes_ago} minutes ago")
    store.record_queued(
        QueuedTask(task=task, reason="budget", not_before=not_before, queued_at=ago(minutes_ago))
    )
    return task


def statuses(store: DuckDBStore) -> dict[str, tuple[str, str, datetime | None]]:
    rows = store.query("SELECT task_id, status, reason, not_before FROM queued_tasks")
    return {r["task_id"]: (r["status"], r["reason"], r["not_before"]) for r in rows}


def test_claim_due_takes_the_oldest_due_tasks_once(store: DuckDBStore) -> None:
    newest, oldest, middle = queue(store, 1), queue(store, 30), queue(store, 10)
    waiting = queue(store, 60, not_before=(NOW + timedelta(hours=1)).replace(tzinfo=UTC))
    store.ingest()
    claimed = claim_due(store, NOW, limit=2)
    assert [c.task_id for c in claimed] == [oldest.id, middle.id]
    assert Task.model_validate_json(claimed[0].payload) == oldest
    assert [c.task_id for c in claim_due(store, NOW, limit=10)] == [newest.id]  # claimed ones stay claimed
    assert claim_due(store, NOW, limit=10) == []
    assert [c.task_id for c in claim_due(store, NOW + timedelta(hours=1), limit=10)] == [waiting.id]
    assert {s for s, _, _ in statuses(store).values()} == {"routing"}


def test_set_status_keeps_old_reasons_and_stores_not_before_as_utc(store: DuckDBStore) -> None:
    done, again = queue(store, 2), queue(store, 1)
    store.ingest()
    paris_morning = datetime(2025, 6, 16, 6, 0, tzinfo=ZoneInfo("Europe/Paris"))  # 04:00 UTC in summer
    set_status(
        store, {done.id: ("done", None), again.id: ("queued", "over budget")}, {again.id: paris_morning}
    )
    assert statuses(store) == {
        done.id: ("done", "budget", None),
        again.id: ("queued", "over budget", datetime(2025, 6, 16, 4, 0)),
    }
    set_status(store, {})  # nothing to settle: no connection, no error


def routed(success: bool, failures: dict[str, str], queued_until: datetime | None = None) -> RoutedResult:
    return RoutedResult(
        task_id="t",
        decision=decision(0, "a", 0),
        attempts=(),
        success=success,
        failures=failures,
        queued_until=queued_until,
    )


def test_settle_maps_a_routed_result_to_the_next_queue_state() -> None:
    assert settle(routed(True, {"a": "timeout"})) == ("done", None, None)
    assert settle(routed(False, {"a": "timeout", "b": "server_error"})) == (
        "failed",
        "a: timeout; b: server_error",
        None,
    )
    until = datetime(2025, 6, 16, tzinfo=UTC)
    assert settle(routed(False, {"a": "budget_exceeded"}, until)) == ("queued", "a: budget_exceeded", until)


# -- reports ---------------------------------------------------------------------------------------------


def test_calls_by_target_and_pick_shares_cover_only_the_given_tasks(store: DuckDBStore) -> None:
    ingest(
        store,
        execution(0, "a", 8),
        execution(1, "a", 7, success=False),
        execution(2, "a", 6, cost=0.03),
        execution(3, "b", 5),
        execution(9, "b", 4),  # t9 belongs to another run
        *(decision(i, pick, 8 - i) for i, pick in enumerate("aabbabab")),
        decision(9, "a", 0),
    )
    ids = [f"t{i}" for i in range(8)]
    rows = calls_by_target(store, ids)
    assert [r["target"] for r in rows] == ["a", "b"]
    assert rows[0] == {
        "target": "a",
        "calls": 3,
        "success_rate": pytest.approx(2 / 3),
        "p50_latency_ms": statistics.median([10.0, 20.0, 30.0]),
        "cost_usd": pytest.approx(0.05),
    }
    assert rows[1]["calls"] == 1
    assert pick_shares_by_phase(store, ids) == {
        "Q1": {"a": 1.0},
        "Q2": {"b": 1.0},
        "Q3": {"a": 0.5, "b": 0.5},
        "Q4": {"a": 0.5, "b": 0.5},
    }
    assert pick_shares_by_phase(store, ids, phases=2) == {
        "Q1": {"a": 0.5, "b": 0.5},
        "Q2": {"a": 0.5, "b": 0.5},
    }


def test_target_scores_round_the_recomputed_statistics_best_first(store: DuckDBStore) -> None:
    ingest(
        store,
        *(execution(i, "a", i, success=i % 4 != 0) for i in range(8)),
        *(execution(10 + i, "b", i) for i in range(4)),
        execution(20, "c", 1, task_type="other"),
    )
    with store.connect() as con:
        recalculate(con, NOW, full=True)
    rows = target_scores(store, ["qa"])
    assert [(r["target"], r["n"], r["success_rate"]) for r in rows] == [("b", 4, 1.0), ("a", 8, 0.75)]
    stats = {r["target"]: r for r in store.query("SELECT * FROM target_stats")}
    a = rows[1]
    assert a["success_95ci"] == f"{stats['a']['success_low']:.3f}-{stats['a']['success_high']:.3f}"
    assert a["best_target"] == "b" and a["success_p_vs_best"] == round(stats["a"]["success_p"], 4)
    assert a["p50_ms"] == round(stats["a"]["p50_latency_ms"], 1)
    assert target_scores(store, []) == []


# -- benchmark runs --------------------------------------------------------------------------------------


def bench(target: str, category: Category, case: str, quality: float) -> BenchmarkResult:
    return BenchmarkResult(
        target=target,
        category=category,
        case_id=case,
        quality=quality,
        duration_ms=quality + 1,
        cost=quality / 1000,
    )


def test_a_benchmark_run_appends_results_and_replaces_the_scores(store: DuckDBStore) -> None:
    first = [
        bench("a", Category.MATH, "m1", 100.0),
        bench("a", Category.MATH, "m2", 50.0),
        bench("b", Category.CODING, "c1", 0.0),
    ]
    cases = [(r, r.quality >= 60, None if r.quality >= 60 else "wrong_answer") for r in first]
    save_benchmark_run(store, "run-1", cases, CapabilityTable.from_results(first), NOW)
    scores = {(r["target"], r["category"]): r for r in store.query("SELECT * FROM capability_scores")}
    table = CapabilityTable.from_results(first)
    assert set(scores) == {("a", "math"), ("b", "coding")}
    assert scores[("a", "math")]["score"] == table.get("a", Category.MATH)
    assert (scores[("a", "math")]["mean_quality"], scores[("a", "math")]["cases"]) == (75.0, 2)
    assert scores[("a", "math")]["mean_cost"] == pytest.approx(0.075)

    second = [bench("b", Category.MATH, "m1", 100.0)]
    save_benchmark_run(store, "run-2", [(second[0], True, None)], CapabilityTable.from_results(second), NOW)
    assert [(r["target"], r["run_id"]) for r in store.query("SELECT * FROM capability_scores")] == [
        ("b", "run-2")
    ]
    results = store.query("SELECT run_id, target, success, error_type FROM benchmark_results ORDER BY ALL")
    assert len(results) == 4 and [r["run_id"] for r in results].count("run-1") == 3
    assert {(r["target"], r["success"], r["error_type"]) for r in results if r["run_id"] == "run-1"} == {
        ("a", True, None),
        ("a", False, "wrong_answer"),
        ("b", False, "wrong_answer"),
    }
