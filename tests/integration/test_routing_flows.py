"""The routing flows end to end: Prefect's test harness, the real fleet over loopback, a real DuckDB file."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from blocks.store import DuckDBStore
from blocks.targets.http import OpenAICompatibleTarget
from flows.demo import demo_tasks, fleet_targets
from flows.routing import route, route_batch, routed_call
from flows.runtime import RoutingRuntime, register_runtime, unregister_runtime
from routing import Expectation, Task
from routing.strategy import WeightedScore, WeightedScoreConfig

pytestmark = pytest.mark.integration


@pytest.fixture
def runtime(prefect_harness, fleet, store: DuckDBStore) -> Iterator[RoutingRuntime]:
    """Three fleet models behind a target that refuses connections, which is first in default order."""
    dead = OpenAICompatibleTarget(target_name="dead", base_url="http://127.0.0.1:9/v1", model="x", timeout_seconds=2)
    live = fleet_targets(fleet.config, fleet.base_url)[:3]
    strategy = WeightedScore(WeightedScoreConfig(min_samples=1000))  # keep the default order
    runtime = RoutingRuntime.build([dead, *live], store, strategy)
    register_runtime("test", runtime)
    yield runtime
    unregister_runtime("test")


def executions(store: DuckDBStore) -> list[dict]:
    return store.query("SELECT * FROM executions ORDER BY task_id, attempt")


def test_routed_call_falls_back_and_logs_every_attempt(runtime: RoutingRuntime, store: DuckDBStore) -> None:
    task = Task(task_type="greeting", payload="Say hello.")
    result = route(task, runtime="test")
    assert result.success and result.target == "small"
    assert [a.target for a in result.attempts] == ["dead", "small"]
    assert result.attempts[0].error_type == "connection"
    assert result.decision.pick == "dead" and result.decision.fallback_order[:2] == ["dead", "small"]

    report = store.ingest()
    assert (report.executions, report.decisions) == (2, 1)
    rows = executions(store)
    assert [(r["target"], r["attempt"], r["success"]) for r in rows] == [("dead", 1, False), ("small", 2, True)]
    assert rows[0]["decision_id"] == rows[1]["decision_id"] == result.decision.id
    assert rows[1]["input_tokens"] > 0 and rows[1]["actual_cost"] > 0


def test_routed_call_run_is_named_and_tagged_after_its_decision(runtime: RoutingRuntime) -> None:
    from prefect.client.orchestration import get_client

    state = routed_call(Task(task_type="greeting", payload="Hi."), runtime="test", return_state=True)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.name == "greeting -> dead (weighted, p=1.00)"
    assert {"adaptive-router", "target:dead", "task-type:greeting"} <= set(run.tags)


def test_wrong_answers_fall_back_to_the_next_target(runtime: RoutingRuntime, store: DuckDBStore) -> None:
    impossible = Task(task_type="qa", payload="What is the secret word?", expected=Expectation(answer="xyzzy"))
    result = route(impossible, runtime="test")
    assert not result.success
    assert [a.target for a in result.attempts] == ["dead", "small", "mid", "premium"]
    assert [a.error_type for a in result.attempts[1:]] == ["wrong_answer"] * 3


def test_route_batch_logs_one_row_per_attempt(runtime: RoutingRuntime, store: DuckDBStore) -> None:
    tasks = demo_tasks(24, seed=5)
    results = route_batch(tasks, runtime="test", concurrency=6)
    assert [r.task_id for r in results] == [t.id for t in tasks]
    rows = executions(store)  # route-batch ingests at the end
    assert len(rows) == sum(len(r.attempts) for r in results)
    assert {r["execution_id"] for r in rows} == {a.execution_id for r in results for a in r.attempts}
    assert all(r.attempts[0].target == "dead" for r in results)
    decisions = store.query("SELECT count(*) AS n FROM routing_decisions")[0]["n"]
    assert decisions == len(tasks)


def test_unknown_runtime_is_named(prefect_harness) -> None:
    with pytest.raises(LookupError, match="no routing runtime 'nowhere'"):
        route(Task(task_type="qa", payload="x"), runtime="nowhere")
