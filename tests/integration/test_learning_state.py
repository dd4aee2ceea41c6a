"""What routers learn outlives the process: the Q-table and sessions go to the store and come back."""

from __future__ import annotations

import pytest

from blocks.fleet.targets import fleet_targets
from blocks.store import DuckDBStore
from flows.route import route_batch
from flows.runtime import RoutingRuntime, register_runtime, unregister_runtime
from routing import Task
from routing.strategies.registry import build_strategy

pytestmark = pytest.mark.integration


def runtime_on(fleet, store: DuckDBStore, strategy: str) -> RoutingRuntime:
    targets = fleet_targets(fleet.config, fleet.base_url)
    return RoutingRuntime.build(targets, store, build_strategy(strategy, [t.target_name for t in targets], seed=4))


def routed(runtime: RoutingRuntime, tasks: list[Task]):
    register_runtime("learning", runtime)
    try:
        return route_batch(tasks, runtime="learning", concurrency=1)
    finally:
        unregister_runtime("learning")


def test_q_table_is_saved_and_restored(prefect_harness, fleet, store: DuckDBStore) -> None:
    first = runtime_on(fleet, store, "qlearning")
    routed(first, [Task(task_type="qa", payload=f"What is {i} + {i}?") for i in range(12)])
    (learner,) = first._q_learners()
    saved = {(r["state"], r["action"]): r["q_value"] for r in learner.learner.table.to_rows()}
    assert saved and store.query("SELECT count(*) AS n FROM q_table")[0]["n"] == len(saved)

    second = runtime_on(fleet, store, "qlearning")
    (restored,) = second._q_learners()
    assert {(r["state"], r["action"]): r["q_value"] for r in restored.learner.table.to_rows()} == pytest.approx(saved)


def test_a_session_keeps_its_target_across_turns_and_processes(prefect_harness, fleet, store: DuckDBStore) -> None:
    first = runtime_on(fleet, store, "thompson")
    turns = [
        Task(task_type="chat", session_id="s1", payload="Translate the word house into Spanish please"),
        Task(task_type="chat", session_id="s1", payload="Now translate the word house into French please"),
        Task(task_type="chat", session_id="s1", payload="What is 123 * 45? Show the arithmetic."),
    ]
    results = routed(first, turns)
    assert "staying on" in results[1].decision.reason
    assert results[1].decision.pick == results[0].attempts[-1].target
    assert "staying on" not in results[2].decision.reason  # the topic changed: routed afresh
    (row,) = store.query("SELECT session_id, target, turns FROM session_state")
    assert (row["session_id"], row["turns"]) == ("s1", 3)

    second = runtime_on(fleet, store, "thompson")  # a new process, as far as the router knows
    (result,) = routed(second, [Task(task_type="chat", session_id="s1", payload="And what is 123 * 46? Show the arithmetic.")])
    assert result.decision.pick == row["target"] and "staying on" in result.decision.reason
