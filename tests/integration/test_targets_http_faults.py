"""Fault injection against the real HTTP target, and the breaker and retry policy reacting to the faults.

Faults come from a closed port and from the fleet's outage modes (hang, 429 with Retry-After, 500/503,
malformed JSON). The loop at the bottom drives routing.calls.plan.AttemptPlan as the routing flow does, minus
Prefect: choose, skip targets whose breaker is open, retry what the policy says, fall back along the ranking.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from blocks.fleet.config import FleetConfig, Latency, ModelSpec, Outage
from blocks.fleet.launcher import FleetServer
from blocks.targets.http import OpenAICompatibleTarget
from routing.calls.breaker import BreakerBoard, BreakerConfig, BreakerState
from routing.calls.plan import AttemptPlan
from routing.calls.retry import RetryPolicy
from routing.models import AttemptResult, ErrorType, Outcome, Task
from routing.router import Router
from routing.strategies.weighted import WeightedScore, WeightedScoreConfig

pytestmark = pytest.mark.integration

OUTAGE = 3  # "recovering" answers 503 to its first three requests, then recovers (used by one test only)


def spec(name: str, *outages: Outage, **kwargs) -> ModelSpec:
    return ModelSpec(name=name, latency=Latency(median_ms=5, sigma=0.1), outages=outages, **kwargs)


@pytest.fixture(scope="module")
def fleet() -> Iterator[FleetServer]:
    config = FleetConfig(
        hang_seconds=2,
        models=(
            spec("recovering", Outage(start_request=0, end_request=OUTAGE, mode="error")),
            spec("down", Outage(start_request=0, mode="error")),
            spec("backup"),
            spec("flaky", error_rate=1.0),
            spec("limited", Outage(start_request=0, mode="rate_limit"), retry_after_seconds=4),
            spec("broken", Outage(start_request=0, mode="malformed")),
            spec("stuck", Outage(start_request=0, mode="hang")),
        ),
    )
    with FleetServer(config) as server:
        yield server


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http(fleet: FleetServer, model: str, **kwargs) -> OpenAICompatibleTarget:
    return OpenAICompatibleTarget(target_name=model, base_url=fleet.base_url, model=model, **kwargs)


def call(target: OpenAICompatibleTarget, payload: str = "What is a circuit breaker?") -> AttemptResult:
    async def go():
        try:
            return await target.execute(Task(task_type="qa", payload=payload))
        finally:
            await target.aclose()

    return asyncio.run(go())


def test_refused_connection(fleet) -> None:
    target = OpenAICompatibleTarget(
        target_name="gone", base_url=f"http://127.0.0.1:{closed_port()}/v1", model="m"
    )
    result = call(target)
    assert result.error_type is ErrorType.CONNECTION and "cannot reach" in result.error_message
    assert RetryPolicy().should_retry(result, 1)


def test_hang_past_the_timeout(fleet) -> None:
    result = call(http(fleet, "stuck", timeout_seconds=0.3))
    assert result.error_type is ErrorType.TIMEOUT
    assert 300 <= result.duration_ms < 1500
    assert not RetryPolicy().should_retry(result, 1)


def test_rate_limited_with_retry_after(fleet) -> None:
    result = call(http(fleet, "limited"))
    assert result.error_type is ErrorType.RATE_LIMITED
    assert result.metadata == {"status_code": 429, "retry_after_seconds": 4.0}
    policy = RetryPolicy(seed=1)
    assert policy.should_retry(result, 1) and policy.delay(result, 1) >= 4.0
    assert not RetryPolicy(retry_after_cap_seconds=2).should_retry(result, 1)


@pytest.mark.parametrize(("model", "status"), [("flaky", 500), ("down", 503)])
def test_server_errors(fleet, model, status) -> None:
    result = call(http(fleet, model))
    assert result.error_type is ErrorType.SERVER_ERROR and result.metadata["status_code"] == status


def test_malformed_json(fleet) -> None:
    result = call(http(fleet, "broken"))
    assert (
        result.error_type is ErrorType.MALFORMED_RESPONSE and "unreadable completion" in result.error_message
    )


def test_unknown_model_is_a_client_error_never_retried(fleet) -> None:
    result = call(http(fleet, "no-such-model"))
    assert result.error_type is ErrorType.CLIENT_ERROR and not RetryPolicy().should_retry(result, 1)


# -- breaker + retries + fallback, driven by a small routing loop ----------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def route(router: Router, board: BreakerBoard, policy: RetryPolicy, targets: dict, task: Task) -> list:
    """Drive the attempt plan (retries, breaker skips, fallbacks) against the real targets."""
    plan = AttemptPlan(router.choose(task), policy, board)
    attempts: list[AttemptResult] = []
    while (step := plan.next_call()) is not None:
        name, delay = step
        await asyncio.sleep(delay)
        result = await targets[name].execute(task)
        attempts.append(result)
        plan.record(result, result.ok)
        router.observe(
            Outcome(target=name, task_type=task.task_type, success=result.ok, duration_ms=result.duration_ms)
        )
    return attempts


def test_breaker_opens_fallback_answers_and_recovery_closes_it(fleet) -> None:
    clock = FakeClock()
    board = BreakerBoard(BreakerConfig(failure_threshold=3, open_timeout_seconds=60), clock=clock)
    policy = RetryPolicy(max_retries=2, base_delay_seconds=0.01, max_delay_seconds=0.02, seed=0)
    targets = {name: http(fleet, name) for name in ("recovering", "backup")}
    router = Router(
        [t.descriptor() for t in targets.values()],
        strategy=WeightedScore(WeightedScoreConfig(min_samples=10_000)),  # keep the default order
        available=board.available,
    )
    tasks = [Task(task_type="qa", payload=f"Question {i}?") for i in range(5)]

    async def scenario():
        try:
            first = await route(router, board, policy, targets, tasks[0])
            opened = board.breaker("recovering").state
            second = await route(router, board, policy, targets, tasks[1])
            clock.now += 60  # the open period passes: the target may be tried again
            recovered = [await route(router, board, policy, targets, t) for t in tasks[2:4]]
            return first, opened, second, recovered
        finally:
            for target in targets.values():
                await target.aclose()

    first, opened, second, recovered = asyncio.run(scenario())

    # Task 0: the target fails its first attempt and both retries; the third failure opens its breaker.
    assert [(a.target, a.ok) for a in first] == [("recovering", False)] * 3 + [("backup", True)]
    assert {a.error_type for a in first[:3]} == {ErrorType.SERVER_ERROR}
    assert opened is BreakerState.OPEN
    # Task 1: the open breaker keeps the target out of the ranking: the backup answers at once.
    assert [(a.target, a.ok) for a in second] == [("backup", True)]
    # Tasks 2-3: half-open trials reach the recovered target; two successes close the breaker.
    assert [[(a.target, a.ok) for a in attempts] for attempts in recovered] == [[("recovering", True)]] * 2
    assert board.breaker("recovering").state is BreakerState.CLOSED
    assert [(t.from_state, t.to_state) for t in board.transitions] == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]
    assert "503" in board.transitions[0].reason


def test_half_open_trial_failure_reopens(fleet) -> None:
    clock = FakeClock()
    board = BreakerBoard(BreakerConfig(failure_threshold=1), clock=clock)
    dead = OpenAICompatibleTarget(
        target_name="dead", base_url=f"http://127.0.0.1:{closed_port()}/v1", model="m"
    )
    targets = {"dead": dead, "backup": http(fleet, "backup")}
    router = Router([t.descriptor() for t in targets.values()], available=board.available)
    policy = RetryPolicy(max_retries=0)

    async def scenario():
        try:
            await route(router, board, policy, targets, Task(task_type="qa", payload="one"))
            clock.now += 60
            return await route(router, board, policy, targets, Task(task_type="qa", payload="two"))
        finally:
            for target in targets.values():
                await target.aclose()

    trial = asyncio.run(scenario())
    assert [(a.target, a.error_type) for a in trial] == [("dead", ErrorType.CONNECTION), ("backup", None)]
    assert board.breaker("dead").state is BreakerState.OPEN
    assert board.snapshot()["dead"].opened_at == 60.0
