"""`adaptive-router mcp` as an MCP client sees it: a real stdio session listing and calling every tool
on a store with routed outcomes (no Prefect server: the tools read and write the store)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from flows.mcp_tools import TOOLS
from tests.experiments_support import route_synthetic

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).parents[2]


async def _session_calls(database: Path, calls: list[tuple[str, dict]]) -> tuple[list[str], list]:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "flows.cli", "mcp", "--database", str(database)], cwd=str(REPO),
        env={"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
             "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "AGNO_TELEMETRY": "false"},
    )  # fmt: skip
    results = []
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        listed = [tool.name for tool in (await session.list_tools()).tools]
        for name, arguments in calls:
            results.append(await session.call_tool(name, arguments))
            if name == "create_policy_experiment" and not results[-1].is_error:  # later calls use its ids
                created = results[-1].structured_content
                for later in calls:
                    later[1].update({k: created[v] for k, v in later[1].pop("_from_created", {}).items()})
    return listed, results


def test_a_stdio_client_lists_and_calls_every_tool(store) -> None:
    route_synthetic(store, [], 40)
    task_id = store.query("SELECT task_id FROM executions WHERE success ORDER BY timestamp LIMIT 1")[0]["task_id"]  # reward 1 needs a success
    calls = [
        ("get_routing_stats", {}),
        ("get_provider_health", {"window": 20}),
        ("get_recent_decisions", {"limit": 3, "task_type": "qa"}),
        ("create_policy_experiment", {"name": "small-first", "hypothesis": "small is as good for qa", "min_sample_size": 10,
                                      "variants": [{"variant_id": "control", "policy": "thompson"},
                                                   {"variant_id": "treatment", "policy": "fixed:small", "weight": 0.3}]}),
        ("list_policy_experiments", {}),
        ("analyze_experiment_results", {"_from_created": {"experiment_id": "id"}}),
        ("get_policy_recommendations", {"task_type": "qa"}),
        ("rollback_policy", {"_from_created": {"snapshot_id": "snapshot_id"}}),
        ("submit_feedback", {"task_id": task_id, "rating": 5}),
        ("analyze_experiment_results", {"experiment_id": "no-such-experiment"}),
    ]  # fmt: skip
    listed, results = asyncio.run(_session_calls(store.path, calls))
    assert sorted(listed) == sorted(TOOLS)
    assert {name for name, _ in calls} == set(TOOLS)
    out = {name: r for (name, _), r in zip(calls[:-1], results[:-1])}
    assert not any(r.is_error for r in out.values()), {n: r.content for n, r in out.items() if r.is_error}
    data = {name: r.structured_content for name, r in out.items()}

    stats = data["get_routing_stats"]["result"]
    assert sum(r["calls"] for r in stats) == 40 and {r["target"] for r in stats} <= {"small", "mid"}
    assert set(data["get_provider_health"]) <= {"small", "mid"} and all(h["state"] == "closed" for h in data["get_provider_health"].values())
    decisions = data["get_recent_decisions"]["result"]
    assert len(decisions) == 3 and all(d["reason"] and d["attempts"] for d in decisions)
    created = data["create_policy_experiment"]
    assert created["hypothesis"] == "small is as good for qa" and created["status"] == "running"
    assert [v["name"] for v in created["variants"]] == ["control", "treatment"]
    assert [v["weight"] for v in created["variants"]] == pytest.approx([0.7, 0.3])
    assert [e["name"] for e in data["list_policy_experiments"]["result"]] == ["small-first"]
    assert data["analyze_experiment_results"]["name"] == "small-first" and data["analyze_experiment_results"]["decision"]
    assert "recommendations" in data["get_policy_recommendations"]
    assert data["rollback_policy"]["snapshot_id"] == created["snapshot_id"]
    assert data["submit_feedback"]["verdict"] == "excellent" and data["submit_feedback"]["reward"] == 1.0
    assert store.query("SELECT rating FROM feedback WHERE task_id = ?", [task_id]) == [{"rating": 5}]

    unknown = results[-1]
    assert unknown.is_error and "unknown experiment 'no-such-experiment'; known experiments: small-first" in unknown.content[0].text
