"""The gateway's pure parts and its app without a flow: the wire format, the admin token rule, the
exporter, and the dashboard and alert rules naming only metrics the exporter serves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from blocks.targets.http import OpenAICompatibleTarget
from flows.gateway import chat
from flows.gateway.app import create_app
from flows.gateway.auth import authorized, check_bind, is_loopback
from flows.gateway.metrics import SERVED, GatewayMetrics
from flows.gateway.service import Gateway, named_decision
from flows.runtime import RoutingRuntime, register_runtime, unregister_runtime
from routing.calls.outcomes import build_record
from routing.errors import ConfigError
from routing.models import AttemptResult, ErrorType, RoutedResult, Task
from routing.spend.budgets import Budget, Period

DEPLOY = Path(__file__).parents[2] / "deploy"
METRIC = re.compile(r"\badaptive_router_[a-z_]+")


def test_model_names_say_how_to_route() -> None:
    assert chat.route_of("router") == (None, "chat")
    assert chat.route_of("router/codegen") == (None, "codegen")
    assert chat.route_of("small") == ("small", "chat")
    with pytest.raises(ConfigError, match="needs a task type"):
        chat.route_of("router/")


def test_messages_become_one_payload() -> None:
    one = [chat.Message(role="user", content="Hi")]
    assert chat.payload_of(one) == "Hi"
    many = [chat.Message(role="system", content="Be brief."), chat.Message(role="user", content=[{"type": "text", "text": "Hi"}])]
    assert chat.payload_of(many) == "system: Be brief.\nuser: Hi"
    with pytest.raises(ConfigError, match="no text"):
        chat.task_of(chat.ChatRequest(model="router", messages=[{"role": "user", "content": "  "}]))


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("::1", True), ("localhost", True),
                                                 ("0.0.0.0", False), ("10.1.2.3", False), ("example.org", False)])  # fmt: skip
def test_only_loopback_binds_without_a_token(host, loopback) -> None:
    assert is_loopback(host) is loopback
    if loopback:
        check_bind(host, None)
    else:
        with pytest.raises(ConfigError, match=f"refusing to bind {re.escape(host)} without an admin token"):
            check_bind(host, None)
    check_bind(host, "s3cret")


def test_bearer_must_match_a_set_token() -> None:
    assert authorized(None, None)
    assert authorized("s3cret", "Bearer s3cret")
    assert not authorized("s3cret", None) and not authorized("s3cret", "Bearer nope") and not authorized("s3cret", "s3cret")


def _runtime(store) -> RoutingRuntime:
    dead = OpenAICompatibleTarget(target_name="dead", base_url="http://127.0.0.1:9/v1", model="dead-model", tier="small")
    return RoutingRuntime.build([dead], store, budgets=[Budget(period=Period.DAILY, limit=1.5)])


@pytest.fixture
def runtime(store):
    runtime = _runtime(store)
    register_runtime("unit-gw", runtime)
    yield runtime
    unregister_runtime("unit-gw")


def test_admin_routes_need_the_token_when_one_is_set(runtime) -> None:
    app = TestClient(create_app(Gateway("unit-gw"), admin_token="s3cret"))
    assert app.post("/api/v1/experiments/x/stop").status_code == 401
    assert app.post("/api/v1/experiments/x/stop", headers={"Authorization": "Bearer wrong"}).status_code == 401
    passed = app.post("/api/v1/experiments/x/stop", headers={"Authorization": "Bearer s3cret"})
    assert passed.status_code == 404 and "unknown experiment 'x'" in passed.json()["error"]["message"]
    assert app.get("/api/v1/experiments").status_code == 200  # reads are open
    open_app = TestClient(create_app(Gateway("unit-gw")))
    assert open_app.post("/api/v1/experiments/x/stop").status_code == 404


def test_models_and_bad_requests_speak_openai(runtime) -> None:
    app = TestClient(create_app(Gateway("unit-gw")))
    assert [m["id"] for m in app.get("/v1/models").json()["data"]] == ["router", "dead"]
    bad = app.post("/v1/chat/completions", json={"model": "router", "messages": []})
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
    assert "messages" in bad.json()["error"]["message"]


def _result(runtime: RoutingRuntime) -> RoutedResult:
    task = Task(task_type="qa", payload="Hi")
    decision = named_decision(task, "dead").model_copy(update={"experiment_id": "exp-1", "variant": "treatment"})
    target = runtime.router.target("dead")
    failed = build_record(task, decision, target, AttemptResult(target="dead", ok=False, duration_ms=3, error_type=ErrorType.CONNECTION), 1, 0.01)
    won = build_record(task, decision, target, AttemptResult(target="dead", ok=True, output="Hello", duration_ms=4, cost=0.002), 2, 0.01)
    return RoutedResult(task_id=task.id, decision=decision, attempts=(failed, won), success=True, target="dead", output="Hello")


def _served(store) -> set[str]:
    """Every metric and sample name the exporter serves after one routed result."""
    metrics = GatewayMetrics(_runtime(store))
    metrics.observe(_result(metrics.runtime))
    metrics.feedback.labels("good").inc()
    metrics.decision_seconds.observe(0.001)
    metrics.request_seconds.labels("task").observe(0.02)
    names = set()
    for family in text_string_to_metric_families(metrics.render().decode()):
        names.add(family.name)
        names |= {sample.name for sample in family.samples}
    return names


def test_the_exporter_serves_every_metric_it_declares(store) -> None:
    served = _served(store)
    assert set(SERVED) <= served
    metrics = GatewayMetrics(_runtime(store))
    result = _result(metrics.runtime)
    metrics.observe(result)
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value
              for f in text_string_to_metric_families(metrics.render().decode()) for s in f.samples}  # fmt: skip
    assert values[("adaptive_router_adapter_success_rate", (("adapter", "dead"),))] == 0.5
    assert values[("adaptive_router_fallbacks_total", (("task_type", "qa"),))] == 1
    assert values[("adaptive_router_execution_cost_total", (("task_type", "qa"),))] == pytest.approx(result.cost)
    assert values[("adaptive_router_budget_remaining_dollars", (("budget", "daily budget (limit $1.50)"),))] == 1.5


def _dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads((DEPLOY / "grafana" / "adaptive-router.json").read_text())
    queries = [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel["targets"]]
    assert all(panel["targets"] for panel in dashboard["panels"])
    return queries


def test_every_dashboard_panel_queries_metrics_the_exporter_serves(store) -> None:
    served = _served(store)
    queries = _dashboard_queries()
    titles = {title.lower() for title, _ in queries}
    for wanted in ("success rate per adapter", "cost per execution", "routing decision distribution", "breaker state", "budget burn", "a/b test"):
        assert any(wanted in t for t in titles), f"no panel on {wanted}"
    for title, expr in queries:
        names = METRIC.findall(expr)
        assert names, f"panel {title!r} queries no router metric: {expr}"
        unknown = [n for n in names if n not in served]
        assert not unknown, f"panel {title!r} queries metrics the exporter does not serve: {unknown}"


def test_every_alert_rule_names_served_metrics(store) -> None:
    served = _served(store)
    rules = [r for g in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"] for r in g["rules"]]
    assert {"AdaptiveRouterAdapterDegraded", "AdaptiveRouterCostSpike", "AdaptiveRouterBreakerOpen"} <= {r["alert"] for r in rules}
    for rule in rules:
        names = METRIC.findall(rule["expr"])
        assert names and all(n in served for n in names), (rule["alert"], names)


def test_a_runtime_replaced_under_its_name_stops_its_background_looks(store) -> None:
    old, new = _runtime(store), _runtime(store)
    register_runtime("unit-replaced", old)
    old.gossip.watch()  # its look thread runs
    try:
        register_runtime("unit-replaced", new)
        assert not old.gossip.lookout.look_now(timeout=30)  # closed: no look any more
        assert new.gossip.lookout.look_now(timeout=30)
    finally:
        unregister_runtime("unit-replaced")
