"""The Agno target against the real fleet: real agno Agents and Teams over loopback HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import openai
import pytest
from pydantic import ValidationError
from targets_support import run

from blocks.fleet.config import FleetConfig, Latency, ModelSpec, Outage
from blocks.fleet.launcher import FleetServer
from blocks.targets.agno import AgnoTarget
from routing.models import Capability, ErrorType, Price, Task

pytestmark = pytest.mark.integration


def spec(name: str, *outages: Outage, **kwargs) -> ModelSpec:
    return ModelSpec(
        name=name, default_quality=1.0, latency=Latency(median_ms=5, sigma=0.1), outages=outages, **kwargs
    )


@pytest.fixture(scope="module")
def fleet() -> Iterator[FleetServer]:
    config = FleetConfig(
        hang_seconds=3,
        models=(
            spec("sure"),
            spec("down", Outage(start_request=0, mode="error")),
            spec("limited", Outage(start_request=0, mode="rate_limit"), retry_after_seconds=7),
            spec("broken", Outage(start_request=0, mode="malformed")),
            spec("stuck", Outage(start_request=0, mode="hang")),
        ),
    )
    with FleetServer(config) as server:
        yield server


@pytest.fixture
def completions(monkeypatch) -> list:
    """Every chat completion the openai SDK receives in the test: the ground truth for token counts."""
    seen: list = []
    original = openai.resources.chat.completions.AsyncCompletions.create

    async def create(self, *args, **kwargs):
        response = await original(self, *args, **kwargs)
        seen.append(response)
        return response

    monkeypatch.setattr(openai.resources.chat.completions.AsyncCompletions, "create", create)
    return seen


def agent(fleet: FleetServer, model: str = "sure", **kwargs) -> AgnoTarget:
    return AgnoTarget(target_name=f"agno-{model}", base_url=fleet.base_url, model=model, **kwargs)



def ask(target: AgnoTarget, payload: str = "What does the router do with failures?") -> tuple[Task, object]:
    task = Task(task_type="qa", payload=payload)
    return task, run(target, target.execute(task))


def test_agent_answers_with_tokens_cost_and_status(fleet, completions) -> None:
    target = agent(fleet, price=Price(input_per_1k_tokens=2.0, output_per_1k_tokens=4.0))
    task, result = ask(target)
    assert result.ok, result.error_message
    assert "What does the router do with failures?" in result.output
    assert len(completions) == 1
    usage = completions[0].usage
    assert (result.input_tokens, result.output_tokens) == (usage.prompt_tokens, usage.completion_tokens)
    assert result.cost == pytest.approx(
        usage.prompt_tokens / 1000 * 2.0 + usage.completion_tokens / 1000 * 4.0
    )
    assert result.metadata == {"run_status": "COMPLETED", "execution_id": task.id}
    status = run(target, target.status(task.id))
    assert status.state == "COMPLETED"
    assert Capability.MULTI_AGENT not in target.capabilities
    assert {
        Capability.BATCH_EXECUTION,
        Capability.CANCEL,
        Capability.MONITOR_EXECUTION,
    } <= target.capabilities


def test_team_delegates_and_counts_members_tokens(fleet, completions) -> None:
    team = agent(
        fleet,
        mode="team",
        instructions="Delegate the question to the right member.",
        members=[
            {"name": "researcher", "role": "answers research questions"},
            {"name": "writer", "role": "writes"},
        ],
    )
    assert Capability.MULTI_AGENT in team.capabilities
    _, result = ask(team, "Summarise the research on circuit breakers.")
    assert result.ok, result.error_message
    assert result.metadata["members"] == ["researcher"]
    assert len(completions) >= 3  # leader calls the delegation tool, the member answers, the leader replies
    assert result.input_tokens == sum(c.usage.prompt_tokens for c in completions)
    assert result.output_tokens == sum(c.usage.completion_tokens for c in completions)


def test_concurrent_runs_on_one_target_keep_their_own_answers(fleet, monkeypatch) -> None:
    in_flight, peak = 0, 0
    original = openai.resources.chat.completions.AsyncCompletions.create

    async def create(self, *args, **kwargs):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            return await original(self, *args, **kwargs)
        finally:
            in_flight -= 1

    monkeypatch.setattr(openai.resources.chat.completions.AsyncCompletions, "create", create)
    tasks = [Task(task_type="qa", payload=f"Question number {i} about routing") for i in range(12)]
    target = agent(fleet)

    async def all_at_once():
        return await asyncio.gather(*(target.execute(task) for task in tasks))

    results = run(target, all_at_once())
    assert all(r.ok for r in results)
    assert [f"Question number {i} " in r.output for i, r in enumerate(results)] == [True] * 12
    assert peak > 1


@pytest.mark.parametrize(
    ("model", "error", "extra"),
    [
        ("down", ErrorType.SERVER_ERROR, {"status_code": 503}),
        ("limited", ErrorType.RATE_LIMITED, {"status_code": 429, "retry_after_seconds": 7.0}),
        ("broken", ErrorType.MALFORMED_RESPONSE, {}),
        ("no-such-model", ErrorType.CLIENT_ERROR, {"status_code": 404}),
    ],
)
def test_failed_runs_are_classified(fleet, model, error, extra) -> None:
    _, result = ask(agent(fleet, model))
    assert not result.ok
    assert result.error_type is error, result.error_message
    assert result.metadata["run_status"] == "ERROR"
    assert extra.items() <= result.metadata.items()


def test_refused_connection_and_timeout(fleet) -> None:
    refused = AgnoTarget(target_name="gone", base_url="http://127.0.0.1:9/v1", model="sure")
    assert ask(refused)[1].error_type is ErrorType.CONNECTION
    _, result = ask(agent(fleet, "stuck", timeout_seconds=0.5))
    assert result.error_type is ErrorType.TIMEOUT
    assert result.metadata["run_status"] == "TIMED_OUT"
    assert result.duration_ms < 2500


def test_cancel_a_running_agent(fleet) -> None:
    target = agent(fleet, "stuck", timeout_seconds=30)
    task = Task(task_type="qa", payload="Take your time.")

    async def run_then_cancel():
        execution = asyncio.create_task(target.execute(task))
        await asyncio.sleep(0.3)
        running = await target.status(task.id)
        cancelled = await target.cancel(task.id)
        return running, cancelled, await execution

    running, cancelled, result = run(target, run_then_cancel())
    assert running.state == "RUNNING" and cancelled
    assert result.error_type is ErrorType.CLIENT_ERROR and "cancelled" in result.error_message
    assert result.duration_ms < 2000
    assert run(target, target.status(task.id)).state == "CANCELLED"
    assert not run(target, target.cancel(task.id))
    assert run(target, target.status("never-ran")).state == "UNKNOWN"


def test_health(fleet) -> None:
    target = agent(fleet)
    assert run(target, target.health()).healthy
    gone = AgnoTarget(target_name="gone", base_url="http://127.0.0.1:9/v1", model="x")
    report = run(gone, gone.health())
    assert not report.healthy and report.detail


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "team"}, "members must list at least one agent"),
        ({"members": [{"name": "a"}]}, "members are only used when mode is 'team'"),
        ({"mode": "team", "members": [{"name": "a"}, {"name": "a"}]}, "duplicate names a"),
    ],
)
def test_block_validation(kwargs, message) -> None:
    with pytest.raises(ValidationError, match=message):
        AgnoTarget(target_name="t", base_url="http://127.0.0.1:1/v1", model="m", **kwargs)
