"""The gateway end to end: the official `openai` client, the REST API, feedback and /metrics against a
gateway flow served over loopback on Prefect's test harness, routing to a real fleet with a broken model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from blocks.fleet.config import load_fleet_config
from blocks.fleet.launcher import FleetServer
from blocks.fleet.targets import fleet_targets
from blocks.store import DuckDBStore
from flows.gateway.metrics import SERVED
from flows.gateway.serve import GatewayServer
from flows.runtime import RoutingRuntime, register_runtime, unregister_runtime
from routing.calls.retry import RetryPolicy
from routing.spend.budgets import Budget, Period, Scope
from routing.strategies.registry import build_strategy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FLEET = Path(__file__).parents[1] / "fixtures" / "fleet_broken.toml"
CAPPED = "capped"  # a task type whose budget is zero


@pytest.fixture(scope="module")
def broken_fleet() -> Iterator[FleetServer]:
    with FleetServer(load_fleet_config(FLEET)) as server:
        yield server


def _gateway(name: str, fleet: FleetServer, database: Path, strategy: str, **options) -> Iterator[tuple[GatewayServer, RoutingRuntime]]:
    targets = fleet_targets(fleet.config, fleet.base_url)
    store = DuckDBStore(database=str(database), lock_timeout_seconds=10)
    runtime = RoutingRuntime.build(
        targets, store, build_strategy(strategy, [t.target_name for t in targets], seed=3, **options),
        retry=RetryPolicy(base_delay_seconds=0.001, max_retries=1),
        budgets=[Budget(period=Period.DAILY, scope=Scope.TASK_TYPE, scope_value=CAPPED, limit=0.0)],
    )
    register_runtime(name, runtime)
    try:
        with GatewayServer(name) as server:
            yield server, runtime
    finally:
        unregister_runtime(name)


@pytest.fixture(scope="module")
def fixed(prefect_harness, broken_fleet, tmp_path_factory) -> Iterator[tuple[GatewayServer, RoutingRuntime]]:
    """Tries `broken` first, then `small`: every routed request falls back once."""
    yield from _gateway("gw-fixed", broken_fleet, tmp_path_factory.mktemp("fixed") / "router.duckdb", "fixed", order=["broken", "small"])


@pytest.fixture(scope="module")
def learning(prefect_harness, broken_fleet, tmp_path_factory) -> Iterator[tuple[GatewayServer, RoutingRuntime]]:
    yield from _gateway("gw-q", broken_fleet, tmp_path_factory.mktemp("q") / "router.duckdb", "qlearning", epsilon=0.0)


def client(server: GatewayServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=60)


def test_openai_client_gets_a_routed_answer_after_fallback(fixed) -> None:
    server, runtime = fixed
    raw = client(server).chat.completions.with_raw_response.create(
        model="router", messages=[{"role": "user", "content": "What is the capital of France?"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.model == "small"  # the target's model, after `broken` failed
    assert raw.headers["x-adaptive-router-target"] == "small"
    assert int(raw.headers["x-adaptive-router-attempts"]) == 3  # broken, its retry, small
    assert float(raw.headers["x-adaptive-router-cost"]) > 0
    assert completion.usage.total_tokens > 0

    decisions = httpx.get(server.root_url + "/routing/decisions", params={"task_id": completion.id}).json()
    assert [d["decision_id"] for d in decisions] == [raw.headers["x-adaptive-router-decision-id"]]
    assert [(a["target"], a["success"]) for a in decisions[0]["attempts"]] == [("broken", False), ("broken", False), ("small", True)]
    assert decisions[0]["reason"].startswith("fixed order")


def test_streaming_delivers_the_same_answer_in_chunks(fixed) -> None:
    server, _ = fixed
    chunks = list(client(server).chat.completions.create(
        model="router/geography", messages=[{"role": "user", "content": "Name a long river in Europe."}],
        stream=True, stream_options={"include_usage": True},
    ))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and len({c.id for c in chunks}) == 1
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_a_named_target_bypasses_routing_and_an_unknown_one_is_named(fixed) -> None:
    server, _ = fixed
    completion = client(server).chat.completions.create(model="mid", messages=[{"role": "user", "content": "Hi"}])
    assert completion.model == "mid"
    decision = httpx.get(server.root_url + "/routing/decisions", params={"task_id": completion.id}).json()[0]
    assert decision["strategy"] == "named" and decision["pick"] == "mid"
    with pytest.raises(openai.NotFoundError, match="unknown target 'gpt-9'.*broken, small, mid"):
        client(server).chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "Hi"}])


def test_a_named_target_that_fails_is_a_502(fixed) -> None:
    server, _ = fixed
    with pytest.raises(openai.InternalServerError, match="broken"):
        client(server).chat.completions.create(model="broken", messages=[{"role": "user", "content": "Hi"}])


def test_a_budget_that_rejects_is_a_429_naming_it(fixed) -> None:
    server, _ = fixed
    with pytest.raises(openai.RateLimitError, match="budget_exceeded.*daily budget for task type 'capped'") as caught:
        client(server).chat.completions.create(model=f"router/{CAPPED}", messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.code == "budget_exceeded"


def test_models_lists_the_router_and_every_target(fixed) -> None:
    server, _ = fixed
    assert [m.id for m in client(server).models.list()] == ["router", "broken", "small", "mid"]


def test_attempts_are_task_runs_of_the_gateway_flow_run(fixed) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, TaskRunFilter, TaskRunFilterFlowRunId

    server, _ = fixed
    client(server).chat.completions.create(model="mid", messages=[{"role": "user", "content": "Hello"}])
    with get_client(sync_client=True) as prefect:
        runs = prefect.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[f"gateway on 127.0.0.1:{server.port}"])))
        assert len(runs) == 1 and runs[0].state.is_running()
        tasks = prefect.read_task_runs(task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[runs[0].id])))
    assert any(t.name.startswith("call mid") for t in tasks)
