"""The main job end to end, unconstrained and under a daily budget (real fleet, DuckDB, Prefect harness)."""

from __future__ import annotations

from pathlib import Path

import pytest

from blocks.fleet.config import STABLE_FLEET_PATH
from flows.demo import run_demo

pytestmark = pytest.mark.integration


def spent(database: Path) -> float:
    from blocks.store import DuckDBStore

    return DuckDBStore(database=str(database)).query("SELECT coalesce(sum(actual_cost), 0) AS s FROM executions")[0]["s"]


@pytest.fixture(scope="module")
def unconstrained(prefect_harness, tmp_path_factory) -> tuple[Path, object]:
    database = tmp_path_factory.mktemp("free") / "router.duckdb"
    report = run_demo(tasks=40, seed=3, database=str(database), fleet_config=STABLE_FLEET_PATH)
    return database, report


def test_demo_logs_one_row_per_attempt_and_reports_every_target(unconstrained) -> None:
    from blocks.store import DuckDBStore

    database, report = unconstrained
    rows = DuckDBStore(database=str(database)).query("SELECT target, count(*) AS n FROM executions GROUP BY target")
    assert sum(r["n"] for r in rows) == report.attempts
    assert {r.target: r.calls for r in report.targets} == {r["target"]: r["n"] for r in rows}
    assert report.tasks == 40 and report.succeeded > 0
    assert report.spent_usd == pytest.approx(spent(database))


@pytest.mark.parametrize("policy", ["reject", "queue"])
def test_a_daily_budget_caps_spend_and_turns_the_rest_away(unconstrained, tmp_path: Path, policy: str) -> None:
    from blocks.store import DuckDBStore

    _, free = unconstrained
    budget = free.spent_usd / 4
    database = tmp_path / "router.duckdb"
    report = run_demo(tasks=40, seed=3, database=str(database), fleet_config=STABLE_FLEET_PATH,
                      daily_budget=budget, budget_policy=policy)
    assert spent(database) <= budget
    assert report.spent_usd <= budget
    turned_away = report.rejected if policy == "reject" else report.queued
    assert turned_away > 0
    if policy == "reject":
        assert report.queued == 0
    # (under 'queue', a call whose estimate exceeds the whole budget can never fit and is still rejected)
    queued = DuckDBStore(database=str(database)).query("SELECT count(*) AS n FROM queued_tasks")[0]["n"]
    assert queued == report.queued


def test_queued_tasks_run_when_the_budget_period_rolls_over(unconstrained, tmp_path: Path, fleet) -> None:
    from blocks.fleet.targets import fleet_targets, framework_targets
    from blocks.store import DuckDBStore
    from flows.maintenance import drain_queue
    from flows.runtime import RoutingRuntime, register_runtime, unregister_runtime
    from routing.spend.budgets import Budget, Period

    _, free = unconstrained
    budget = free.spent_usd / 4
    database = tmp_path / "router.duckdb"
    report = run_demo(tasks=40, seed=3, database=str(database), fleet_config=STABLE_FLEET_PATH,
                      daily_budget=budget, budget_policy="queue")
    store = DuckDBStore(database=str(database))
    assert report.queued > 0
    # the day rolls over: yesterday's spend and the queue's reset time move one day into the past
    store.query("UPDATE executions SET timestamp = timestamp - INTERVAL 1 DAY")
    store.query("UPDATE queued_tasks SET not_before = not_before - INTERVAL 1 DAY")
    targets = fleet_targets(fleet.config, fleet.base_url) + framework_targets(fleet.config, fleet.base_url, store)
    runtime = RoutingRuntime.build(targets, store, budgets=[Budget(period=Period.DAILY, limit=budget, policy="queue")])
    register_runtime("rollover", runtime)
    try:
        drained = drain_queue(runtime="rollover", limit=100)
    finally:
        unregister_runtime("rollover")
    assert drained.claimed == report.queued
    statuses = {r["status"]: r["n"] for r in store.query("SELECT status, count(*) AS n FROM queued_tasks GROUP BY status")}
    assert statuses.get("done", 0) > 0  # they ran on the new day's budget
    today = store.query(
        "SELECT coalesce(sum(actual_cost), 0) AS s FROM executions WHERE timestamp >= current_date"
    )[0]["s"]
    assert today <= budget
    # whatever did not fit today is queued again for the next reset, not lost
    assert sum(statuses.values()) == report.queued
