"""The routing flows end to end: Prefect's test harness, the real fleet over loopback, a real DuckDB file."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from blocks.fleet.targets import fleet_targets
from blocks.store import DuckDBStore
from blocks.targets.http import OpenAICompatibleTarget
from flows.demo import demo_tasks
from flows.route import route, route_batch, routed_call
from flows.runtime import RoutingRuntime, register_runtime, unregister_runtime
from routing import AllTargetsFailedError, Expectation, Task
from routing.calls.retry import RetryPolicy
from routing.strategies.weighted import WeightedScore, WeightedScoreConfig

pytestmark = pytest.mark.integration


@pytest.fixture
def runtime(prefect_harness, fleet, store: DuckDBStore) -> Iterator[RoutingRuntime]:
    """Three fleet models behind a target that refuses connections, which is first in default order."""
    dead = OpenAICompatibleTarget(target_name="dead", base_url="http://127.0.0.1:9/v1", model="x", timeout_seconds=2)
    live = fleet_targets(fleet.config, fleet.base_url)[:3]
    strategy = WeightedScore(WeightedScoreConfig(min_samples=1000))  # keep the default order
    runtime = RoutingRuntime.build([dead, *live], store, strategy, retry=RetryPolicy(base_delay_seconds=0.01))
    register_runtime("test", runtime)
    yield runtime
    unregister_runtime("test")


def executions(store: DuckDBStore) -> list[dict]:
    return store.query("SELECT * FROM executions ORDER BY task_id, attempt")


def test_routed_call_falls_back_and_logs_every_attempt(runtime: RoutingRuntime, store: DuckDBStore) -> None:
    task = Task(task_type="greeting", payload="Say hello.")
    result = route(task, runtime="test")
    assert result.success and result.target == "small"
    assert [a.target for a in result.attempts] == ["dead"] * 3 + ["small"]  # two retries, then fallback
    assert result.attempts[0].error_type == "connection"
    assert result.decision.pick == "dead" and result.decision.fallback_order[:2] == ["dead", "small"]

    report = store.ingest()
    assert (report.executions, report.decisions) == (4, 1)
    rows = executions(store)
    assert [(r["target"], r["attempt"], r["success"]) for r in rows] == [
        ("dead", 1, False), ("dead", 2, False), ("dead", 3, False), ("small", 4, True)
    ]
    assert {r["decision_id"] for r in rows} == {result.decision.id}
    assert rows[3]["input_tokens"] > 0 and rows[3]["actual_cost"] > 0


def test_routed_call_run_is_named_and_tagged_after_its_decision(runtime: RoutingRuntime) -> None:
    from prefect.client.orchestration import get_client

    state = routed_call(Task(task_type="greeting", payload="Hi."), runtime="test", return_state=True)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.name == "greeting -> dead (weighted, p=1.00)"
    assert {"adaptive-router", "target:dead", "task-type:greeting"} <= set(run.tags)


def test_when_every_target_fails_the_error_names_each_and_every_attempt_is_kept(
    runtime: RoutingRuntime, store: DuckDBStore
) -> None:
    impossible = Task(task_type="qa", payload="What is the secret word?", expected=Expectation(answer="xyzzy"))
    with pytest.raises(AllTargetsFailedError) as info:
        route(impossible, runtime="test")
    assert set(info.value.failures) == {"dead", "small", "mid", "premium"}
    assert info.value.failures["dead"].startswith("connection: cannot reach")
    assert info.value.failures["premium"].startswith("wrong_answer")
    store.ingest()
    rows = store.query("SELECT target, error_type FROM executions ORDER BY attempt")
    # the dead target is retried by the retry policy before the fallbacks answer wrongly
    assert [r["target"] for r in rows if r["target"] != "dead"] == ["small", "mid", "premium"]
    assert {r["error_type"] for r in rows if r["target"] != "dead"} == {"wrong_answer"}
    assert sum(r["target"] == "dead" for r in rows) == 1 + runtime.retry.max_retries


def test_route_batch_logs_one_row_per_attempt(runtime: RoutingRuntime, store: DuckDBStore) -> None:
    tasks = [t for t in demo_tasks(40, seed=5) if not t.required_capabilities][:24]
    results = route_batch(tasks, runtime="test", concurrency=6)
    assert [r.task_id for r in results] == [t.id for t in tasks]
    rows = executions(store)  # route-batch ingests at the end
    assert len(rows) == sum(len(r.attempts) for r in results)
    assert {r["execution_id"] for r in rows} == {a.execution_id for r in results for a in r.attempts}
    assert results[0].attempts[0].target == "dead"
    # five refused connections open dead's breaker: later decisions leave it out altogether
    assert runtime.breakers.snapshot()["dead"].state == "open"
    assert "dead" not in {c.target for c in results[-1].decision.candidates}
    assert sum(r["target"] == "dead" for r in rows) <= 6 * (1 + runtime.retry.max_retries)
    decisions = store.query("SELECT count(*) AS n FROM routing_decisions")[0]["n"]
    assert decisions == len(tasks)


def test_unknown_runtime_is_named(prefect_harness) -> None:
    with pytest.raises(LookupError, match="unknown routing runtime 'nowhere'"):
        route(Task(task_type="qa", payload="x"), runtime="nowhere")


def test_a_task_no_target_can_take_fails_alone(runtime: RoutingRuntime) -> None:
    from routing import Capability

    impossible = Task(task_type="deploy", payload="ship it", required_capabilities={Capability.DEPLOY_FLOWS})
    fine = Task(task_type="greeting", payload="Say hello.")
    results = route_batch([impossible, fine], runtime="test", concurrency=2, ingest=False)
    assert [r.task_id for r in results] == [fine.id]
