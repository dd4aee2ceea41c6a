"""The attempt plan: retries on a target, then fallbacks, skipping open breakers."""

from __future__ import annotations

import pytest

from routing import AttemptResult, Candidate, Decision, ErrorType
from routing.calls.breaker import BreakerBoard, BreakerConfig
from routing.calls.plan import AttemptPlan
from routing.calls.retry import RetryPolicy


def decision(*order: str) -> Decision:
    return Decision(task_id="t", task_type="qa", strategy="weighted", pick=order[0], probability=1.0, reason="r",
                    candidates=tuple(Candidate(target=n, score=-i) for i, n in enumerate(order)))


def fail(target: str, error: ErrorType, **metadata) -> AttemptResult:
    return AttemptResult(target=target, ok=False, duration_ms=1, error_type=error, error_message="boom",
                         metadata=metadata)


def ok(target: str) -> AttemptResult:
    return AttemptResult(target=target, ok=True, output="fine", duration_ms=1)


def test_success_on_the_pick_ends_the_plan() -> None:
    plan = AttemptPlan(decision("a", "b"))
    assert plan.next_call() == ("a", 0.0)
    plan.record(ok("a"), success=True)
    assert plan.next_call() is None and plan.succeeded and plan.failures == {}


def test_retryable_errors_retry_the_same_target_with_backoff_then_fall_back() -> None:
    plan = AttemptPlan(decision("a", "b"), RetryPolicy(max_retries=2, base_delay_seconds=0.4, seed=1))
    calls = []
    while (step := plan.next_call()) is not None:
        calls.append(step)
        name, _ = step
        plan.record(fail(name, ErrorType.SERVER_ERROR) if name == "a" else ok(name), success=name == "b")
    assert [name for name, _ in calls] == ["a", "a", "a", "b"]
    assert calls[0][1] == 0.0 and 0 <= calls[1][1] <= 0.4 and 0 <= calls[2][1] <= 0.8 and calls[3][1] == 0.0
    assert plan.succeeded and "a" in plan.failures and "b" not in plan.failures


def test_rate_limit_waits_at_least_retry_after() -> None:
    plan = AttemptPlan(decision("a"), RetryPolicy(max_retries=1, base_delay_seconds=0.01))
    plan.next_call()
    plan.record(fail("a", ErrorType.RATE_LIMITED, retry_after_seconds=2.0), success=False)
    assert plan.next_call() == ("a", 2.0)


@pytest.mark.parametrize("error", [ErrorType.CLIENT_ERROR, ErrorType.AUTH, ErrorType.WRONG_ANSWER])
def test_errors_not_worth_retrying_go_straight_to_the_fallback(error: ErrorType) -> None:
    plan = AttemptPlan(decision("a", "b"), RetryPolicy(max_retries=3))
    plan.next_call()
    result = ok("a") if error == ErrorType.WRONG_ANSWER else fail("a", error)
    plan.record(result, success=False)
    assert plan.next_call() == ("b", 0.0)


def test_open_breakers_are_skipped_and_named_in_the_error() -> None:
    board = BreakerBoard(BreakerConfig(failure_threshold=1))
    board.record(fail("a", ErrorType.CONNECTION))
    plan = AttemptPlan(decision("a", "b"), breakers=board)
    assert plan.next_call() == ("b", 0.0)
    plan.record(fail("b", ErrorType.CLIENT_ERROR), success=False)
    assert plan.next_call() is None
    error = plan.error("t")
    assert error.failures == {"a": "circuit_open: breaker refuses calls", "b": "client_error: boom"}
    assert "every target failed" in str(error) and "a: circuit_open" in str(error)
