"""The router's MCP tools (the official `mcp` SDK's MCPServer), served over stdio by `adaptive-router mcp`.

The policy-engine tools of the seed (create_policy_experiment, get_policy_recommendations,
analyze_experiment_results, rollback_policy) and read tools (stats, health, recent decisions,
experiments) plus feedback, all through flows.operations on one store, as the gateway's REST API.
A tool that cannot do what was asked raises; the SDK returns that as an error result with the message.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError

from blocks.store import DuckDBStore
from flows import operations as ops
from routing.errors import ConfigError, RoutingError
from routing.feedback import Feedback
from routing.validation import describe

F = TypeVar("F", bound=Callable[..., Any])

INSTRUCTIONS = (
    "Tools of prefect-adaptive-router: routing statistics, target health, recent routing decisions with "
    "their reasons, A/B experiments of routing policies and the policy engine's recommendations."
)


def _answering(fn: F) -> F:
    """Bad input and unknown names reach the client as the tool's error message, not a generic crash."""

    @functools.wraps(fn)
    def tool(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ValidationError as exc:
            raise ToolError(describe(exc)) from None
        except (RoutingError, ValueError) as exc:
            raise ToolError(str(exc)) from None

    return tool  # type: ignore[return-value]


def build_server(store: DuckDBStore) -> MCPServer:
    server = MCPServer("adaptive-router", instructions=INSTRUCTIONS)

    def register(fn: F) -> F:
        server.tool()(_answering(fn))
        return fn

    @register
    def create_policy_experiment(
        name: str, hypothesis: str, variants: list[dict[str, Any]], min_sample_size: int = 100, metric: str = "success"
    ) -> dict[str, Any]:
        """Start an A/B test of routing policies. `variants`: the control first, then treatments, each
        {"variant_id": ..., "policy": "<spec, e.g. thompson or fixed:small,mid>", "weight": <share, optional>};
        treatments share the weights they name (default: half the traffic). Returns the experiment."""
        if len(variants) < 2:
            raise ConfigError("an experiment needs a control and at least one treatment variant")
        policies = [str(v.get("policy") or "") for v in variants]
        if not all(policies):
            raise ConfigError("every variant needs a policy spec, e.g. {'variant_id': 'control', 'policy': 'thompson'}")
        weights = [v.get("weight") for v in variants[1:]]
        traffic = float(sum(weights)) if all(w is not None for w in weights) else 0.5
        experiment = ops.start_experiment(store, name, policies[0], policies[1:], traffic, min_sample_size, metric)
        return {**experiment, "hypothesis": hypothesis,
                "variant_ids": [str(v.get("variant_id", "")) for v in variants]}  # fmt: skip

    @register
    def get_policy_recommendations(task_type: str | None = None) -> dict[str, Any]:
        """The policies in force and the changes the evidence supports (drift in success, low user
        acceptance), each with its confidence and evidence count; optionally for one task type."""
        return ops.policy_recommendations(store, task_type)

    @register
    def analyze_experiment_results(experiment_id: str) -> dict[str, Any]:
        """An experiment's always-valid analysis (by name or id): per-variant success, cost, latency,
        p-values, the sample-ratio check and the recommended decision. Does not stop the experiment."""
        return ops.analyze_experiment(store, experiment_id, act=False)

    @register
    def rollback_policy(snapshot_id: str) -> dict[str, Any]:
        """Restore the routing policies of a snapshot (see list_policy_experiments' snapshot ids)."""
        return ops.rollback_policy(store, snapshot_id, "mcp")

    @register
    def list_policy_experiments() -> list[dict[str, Any]]:
        """Every experiment with its variants, status, decision and policy snapshot."""
        return ops.list_experiments(store)

    @register
    def get_routing_stats() -> list[dict[str, Any]]:
        """Per task type and target: calls, success rate, p50/p95 latency, mean cost and spend."""
        return ops.stats(store)

    @register
    def get_provider_health(window: int = 50) -> dict[str, Any]:
        """Each target's circuit breaker replayed from its last `window` attempts, with failure counts."""
        return ops.replayed_health(store, window)

    @register
    def get_recent_decisions(
        limit: int = 10, task_type: str | None = None, target: str | None = None, task_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Recent routing decisions, newest first, with the reason, the ranking and every attempt."""
        return ops.recent_decisions(store, limit, task_id, task_type, target)

    @register
    def submit_feedback(task_id: str, rating: int | None = None, accepted: bool | None = None, comment: str | None = None) -> dict[str, Any]:
        """Rate a routed task's answer (1-5) or say whether it was accepted; returns the reward it earns."""
        return ops.give_feedback(store, Feedback(task_id=task_id, rating=rating, accepted=accepted, comment=comment))

    return server


TOOLS = ("create_policy_experiment", "get_policy_recommendations", "analyze_experiment_results", "rollback_policy",
         "list_policy_experiments", "get_routing_stats", "get_provider_health", "get_recent_decisions",
         "submit_feedback")  # fmt: skip
