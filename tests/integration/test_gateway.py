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
from flows.gateway.serve import GatewayServer
from flows.runtime import RoutingRuntime, register_runtime, unregister_runtime
from routing.calls.retry import RetryPolicy
from routing.errors import ConfigError
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
    server, _ = fixed
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
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterName,
        TaskRunFilter,
        TaskRunFilterFlowRunId,
    )

    server, _ = fixed
    client(server).chat.completions.create(model="mid", messages=[{"role": "user", "content": "Hello"}])
    with get_client(sync_client=True) as prefect:
        runs = prefect.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[f"gateway on 127.0.0.1:{server.port}"])))
        assert len(runs) == 1 and runs[0].state.is_running()
        tasks = prefect.read_task_runs(task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[runs[0].id])))
    assert any(t.name.startswith("call mid") for t in tasks)


def test_feedback_changes_the_reward_the_learner_sees(learning) -> None:
    from routing.strategies.qlearning import reward

    server, runtime = learning
    strategy = runtime.router.strategy
    completion = client(server).chat.completions.create(
        model="router/support", messages=[{"role": "user", "content": "My order has not arrived, what can I do?"}]
    )
    state = strategy._chosen[completion.id]
    target = next(iter(t for t in runtime.targets if strategy.learner.table.visits(state, t)), None)
    assert target is not None  # the attempt that answered was learned from
    before = {t: strategy.learner.table.value(state, t) for t in runtime.targets}

    response = httpx.post(server.root_url + "/api/v1/feedback", json={"task_id": completion.id, "rating": 1, "comment": "useless"})
    assert response.status_code == 201, response.text
    received = response.json()
    answered = received["target"]
    assert received["verdict"] == "poor" and received["reward"] == reward(True, received["quality_score"], "poor") == -1.0
    assert received["learners_updated"] == 1
    lr = strategy.learner.config.learning_rate
    expected = before[answered] + lr * (reward(True, received["quality_score"], "poor") - reward(True, received["quality_score"]))
    after = {t: strategy.learner.table.value(state, t) for t in runtime.targets}
    assert after[answered] == pytest.approx(expected) and after[answered] < before[answered]
    assert {t: v for t, v in after.items() if t != answered} == {t: v for t, v in before.items() if t != answered}

    rows = runtime.store.query("SELECT task_id, rating, verdict, comment, execution_id FROM feedback")
    assert [(r["task_id"], r["rating"], r["verdict"], r["comment"]) for r in rows] == [(completion.id, 1, "poor", "useless")]
    attempt = runtime.store.query("SELECT target, success FROM executions WHERE execution_id = ?", [rows[0]["execution_id"]])
    assert attempt == [{"target": answered, "success": True}]


def test_feedback_on_an_unknown_task_or_without_a_verdict_is_refused(learning) -> None:
    server, _ = learning
    unknown = httpx.post(server.root_url + "/api/v1/feedback", json={"task_id": "no-such-task", "rating": 5})
    assert unknown.status_code == 404 and "unknown routed task 'no-such-task'" in unknown.json()["error"]["message"]
    empty = httpx.post(server.root_url + "/api/v1/feedback", json={"task_id": "x"})
    assert empty.status_code == 400 and "rating (1-5) or accepted" in empty.json()["error"]["message"]
    bad = httpx.post(server.root_url + "/api/v1/feedback", json={"task_id": "x", "rating": 9})
    assert bad.status_code == 400 and "rating" in bad.json()["error"]["message"]


def test_feedback_command_writes_the_feedback_table(learning) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    server, runtime = learning
    completion = client(server).chat.completions.create(model="small", messages=[{"role": "user", "content": "Thanks!"}])
    runtime.store.ingest()  # what the gateway does every few seconds: the command reads the store, not its spool
    result = CliRunner().invoke(app, ["feedback", completion.id, "--rating", "5", "--comment", "great", "--database", str(runtime.store.path)])
    assert result.exit_code == 0, result.output
    assert f"feedback on {completion.id} (small): excellent, reward +1.0" in result.output
    rows = runtime.store.query("SELECT rating, verdict, comment FROM feedback WHERE task_id = ?", [completion.id])
    assert rows == [{"rating": 5, "verdict": "excellent", "comment": "great"}]
    missing = CliRunner().invoke(app, ["feedback", "nope", "--accepted", "--database", str(runtime.store.path)])
    assert missing.exit_code == 1 and "unknown routed task 'nope'" in missing.output


def test_provider_health_shows_the_broken_target_failing(fixed) -> None:
    server, _ = fixed
    client(server).chat.completions.create(model="router", messages=[{"role": "user", "content": "Hello there"}])
    health = httpx.get(server.root_url + "/api/v1/provider-health").json()
    assert set(health) == {"broken", "small", "mid"}
    assert health["broken"]["total_failures"] >= 2 and health["broken"]["last_error"]
    assert health["small"]["total_successes"] >= 1 and health["small"]["state"] == "closed"


def test_benchmarks_run_by_the_admin_route_are_listed(fixed) -> None:
    server, _ = fixed
    assert httpx.get(server.root_url + "/api/v1/benchmarks", params={"category": "math"}).json() == {"math": []}
    ran = httpx.post(server.root_url + "/api/v1/admin/run-benchmarks", json={"categories": ["math"], "per_category": 1}, timeout=120)
    assert ran.status_code == 200, ran.text
    assert ran.json()["status"] == "completed" and ran.json()["results"]["cases"] == 1
    listed = httpx.get(server.root_url + "/api/v1/benchmarks", params={"category": "math"}).json()
    assert {r["target"] for r in listed["math"]} == {"broken", "small", "mid"}
    assert all(r["cases"] == 1 and r["run_id"] == listed["math"][0]["run_id"] for r in listed["math"])
    assert httpx.get(server.root_url + "/api/v1/benchmarks", params={"category": "poetry"}).status_code == 404


def test_decisions_filter_by_task_type_and_target(fixed) -> None:
    server, _ = fixed
    for content in ("one", "two"):
        client(server).chat.completions.create(model="router/filtering", messages=[{"role": "user", "content": content}])
    rows = httpx.get(server.root_url + "/routing/decisions", params={"task_type": "filtering", "limit": 10}).json()
    assert len(rows) == 2 and {r["task_type"] for r in rows} == {"filtering"}
    assert rows[0]["timestamp"] >= rows[1]["timestamp"]
    by_pick = httpx.get(server.root_url + "/routing/decisions", params={"target": "mid", "limit": 50}).json()
    assert by_pick and {r["pick"] for r in by_pick} == {"mid"}
    assert httpx.get(server.root_url + "/routing/decisions", params={"limit": 0}).status_code == 400


def test_an_experiment_started_over_the_api_routes_exposures_and_stops(fixed) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    server, _ = fixed
    api = server.root_url + "/api/v1/experiments"
    started = httpx.post(api, json={"name": "mid-vs-fixed", "control": "fixed:broken,small", "treatments": ["fixed:mid"], "traffic": 0.5})
    assert started.status_code == 201, started.text
    assert [e["name"] for e in httpx.get(api).json()] == ["mid-vs-fixed"]
    picks = set()
    for i in range(12):
        raw = client(server).chat.completions.with_raw_response.create(model="router/ab", messages=[{"role": "user", "content": f"question {i}"}])
        picks.add(raw.headers["x-adaptive-router-target"])
    assert picks == {"small", "mid"}  # both variants served
    status = httpx.get(f"{api}/mid-vs-fixed").json()
    assert status["status"] == "running" and sum(v["n"] for v in status["variants"].values()) == 12
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(server.root_url + "/metrics").text)}
    exposures = {s.labels["variant"]: s.value for s in families["adaptive_router_experiment_exposures"].samples if s.name.endswith("_total")}
    assert set(exposures) == {"control", "treatment"} and sum(exposures.values()) == 12
    analyzed = httpx.post(f"{api}/mid-vs-fixed/analyze")
    assert analyzed.status_code == 200 and analyzed.json()["decision"]
    stopped = httpx.post(f"{api}/mid-vs-fixed/stop")
    assert stopped.status_code == 200 and stopped.json()["status"] in ("stopped",)
    assert httpx.post(f"{api}/nope/stop").status_code == 404


def test_metrics_parse_and_count_what_was_routed(fixed) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from flows.gateway.metrics import SERVED

    server, _ = fixed
    client(server).chat.completions.create(model="router", messages=[{"role": "user", "content": "Count me"}])
    text = httpx.get(server.root_url + "/metrics").text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    served = {name for name in samples} | {name.removesuffix(s) for name in samples for s in ("_bucket", "_sum", "_count", "_created")}
    assert set(SERVED) - {"adaptive_router_feedback_total"} <= served

    def value(name: str, **labels: str) -> float:
        return sum(s.value for s in samples[name] if all(s.labels.get(k) == v for k, v in labels.items()))

    assert value("adaptive_router_adapter_success_rate", adapter="broken") == 0.0
    assert 0 < value("adaptive_router_adapter_success_rate", adapter="small") <= 1
    assert value("adaptive_router_fallbacks_total") >= 2
    assert value("adaptive_router_attempts_total", adapter="broken", outcome="server_error") >= 2
    assert value("adaptive_router_execution_cost_total") > 0
    assert value("adaptive_router_routing_decision_seconds_count") >= 1
    assert value("adaptive_router_requests_total", task_type=CAPPED, status="failed") >= 1
    assert value("adaptive_router_budget_remaining_dollars") == 0.0 and value("adaptive_router_budget_limit_dollars") == 0.0
    assert {s.labels["adapter"] for s in samples["adaptive_router_breaker_state"]} == {"broken", "small", "mid"}


def test_subflow_per_request_gives_each_request_a_routed_call_flow_run(prefect_harness, broken_fleet, tmp_path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentTaskRunId

    for server, _ in _gateway("gw-subflow", broken_fleet, tmp_path / "router.duckdb", "fixed", order=["mid"]):
        server.stop()  # the fixture's server runs task mode; serve the same runtime with a subflow per request
        with GatewayServer("gw-subflow", subflow_per_request=True) as subflows:
            raw = client(subflows).chat.completions.with_raw_response.create(model="router", messages=[{"role": "user", "content": "Hi"}])
            assert raw.headers["x-adaptive-router-target"] == "mid"
            with get_client(sync_client=True) as prefect:
                runs = prefect.read_flow_runs(flow_run_filter=FlowRunFilter(parent_task_run_id=FlowRunFilterParentTaskRunId(is_null_=False)))
            routed = [r for r in runs if r.name.startswith("chat -> mid")]
            assert len(routed) == 1 and routed[0].state.is_completed()


def test_the_admin_token_can_come_from_a_secret_block(prefect_harness) -> None:
    from prefect.blocks.system import Secret

    from flows.gateway.auth import admin_token

    Secret(value="from-a-block").save("gateway-admin-token", overwrite=True)
    assert admin_token("gateway-admin-token") == "from-a-block"
    with pytest.raises(ConfigError, match="cannot load the admin token's Secret block 'missing-token'"):
        admin_token("missing-token")
