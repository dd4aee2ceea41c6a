"""The circuit breaker's state machine, driven by a fake clock."""

import threading

import pytest
from pydantic import ValidationError

from routing.calls.breaker import BreakerBoard, BreakerConfig, BreakerState, CircuitBreaker
from routing.errors import NoEligibleTargetError
from routing.models import AttemptResult, ErrorType, Target, Task
from routing.router import Router


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


def opened(clock, config=None, **kwargs):
    breaker = CircuitBreaker("a", config or BreakerConfig(), clock=clock, **kwargs)
    for _ in range(breaker.config.failure_threshold):
        breaker.record_failure("boom")
    assert breaker.state is BreakerState.OPEN
    return breaker


def test_opens_after_threshold_consecutive_failures(clock):
    breaker = CircuitBreaker("a", BreakerConfig(failure_threshold=3), clock=clock)
    breaker.record_failure("x")
    breaker.record_failure("x")
    assert breaker.allow() and breaker.state is BreakerState.CLOSED
    breaker.record_failure("refused")
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow() and not breaker.peek()
    snap = breaker.snapshot()
    assert snap.last_error == "refused"
    assert snap.consecutive_failures == 3 and snap.total_failures == 3
    assert snap.opened_at == 1000.0 and snap.retry_at == 1060.0


def test_success_resets_the_consecutive_count(clock):
    breaker = CircuitBreaker("a", BreakerConfig(failure_threshold=2), clock=clock)
    for _ in range(5):
        breaker.record_failure("x")
        breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot().total_failures == 5


def test_half_open_after_timeout_then_closes_after_two_successes(clock):
    breaker = opened(clock)
    clock.now += 59.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert [(t.from_state, t.to_state) for t in breaker.transitions] == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]
    assert breaker.snapshot().opened_at is None


def test_trial_failure_reopens_and_restarts_the_timeout(clock):
    breaker = opened(clock)
    clock.now += 60
    assert breaker.allow()
    breaker.record_failure("still down")
    assert breaker.state is BreakerState.OPEN
    assert breaker.snapshot().opened_at == clock.now
    clock.now += 30
    assert not breaker.allow()
    assert breaker.transitions[-1].reason == "trial call failed: still down"


def test_half_open_admits_at_most_max_calls_in_flight(clock):
    breaker = opened(clock, BreakerConfig(success_threshold=3, half_open_max_calls=3))
    clock.now += 60
    assert [breaker.allow() for _ in range(4)] == [True, True, True, False]
    assert not breaker.peek()
    breaker.record_success()  # frees one slot
    assert breaker.peek() and breaker.allow()
    assert not breaker.allow()


def test_release_frees_a_trial_slot_without_a_verdict(clock):
    breaker = opened(clock, BreakerConfig(half_open_max_calls=1))
    clock.now += 60
    assert breaker.allow() and not breaker.allow()
    breaker.release()
    assert breaker.state is BreakerState.HALF_OPEN and breaker.allow()


def test_peek_never_reserves_a_slot(clock):
    breaker = opened(clock, BreakerConfig(half_open_max_calls=1))
    clock.now += 60
    assert all(breaker.peek() for _ in range(10))
    assert breaker.allow()
    assert not breaker.peek()


def test_callback_receives_each_transition_once(clock):
    seen = []
    breaker = opened(clock, on_transition=seen.append)
    clock.now += 60
    breaker.peek()
    breaker.snapshot()
    assert [t.to_state for t in seen] == [BreakerState.OPEN, BreakerState.HALF_OPEN]
    assert seen == breaker.transitions
    assert seen[0].reason == "5 consecutive failures: boom" and seen[0].at == 1000.0


def test_callback_may_read_the_breaker(clock):
    """Callbacks run outside the lock, so reading the breaker from one must not deadlock."""
    snapshots = []
    breaker = CircuitBreaker("a", BreakerConfig(failure_threshold=1), clock=clock)
    breaker._on_transition = lambda t: snapshots.append(breaker.snapshot().state)
    breaker.record_failure("x")
    assert snapshots == [BreakerState.OPEN]


def test_late_success_while_open_does_not_close(clock):
    breaker = opened(clock)
    breaker.record_success()
    assert breaker.state is BreakerState.OPEN


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("failure_threshold", 0),
        ("success_threshold", 0),
        ("open_timeout_seconds", 0),
        ("half_open_max_calls", 0),
        ("trip_on", ["circuit_open"]),
        ("retries", 3),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValidationError, match=field if field != "trip_on" else "circuit_open"):
        BreakerConfig(**{field: value})


def test_concurrent_allows_respect_the_half_open_limit(clock):
    breaker = opened(clock, BreakerConfig(half_open_max_calls=3))
    clock.now += 60
    results = []
    threads = [threading.Thread(target=lambda: results.append(breaker.allow())) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 3


def result(target, ok=True, error=None, message=None):
    return AttemptResult(target=target, ok=ok, duration_ms=1.0, error_type=error, error_message=message)


def test_board_counts_only_health_errors(clock):
    board = BreakerBoard(BreakerConfig(failure_threshold=2), clock=clock)
    for error in (ErrorType.CLIENT_ERROR, ErrorType.WRONG_ANSWER, ErrorType.BUDGET_EXCEEDED):
        board.record(result("a", ok=False, error=error))
        board.record(result("a", ok=False, error=error))
    assert board.breaker("a").state is BreakerState.CLOSED
    board.record(result("a", ok=False, error=ErrorType.CONNECTION, message="refused"))
    board.record(result("a", ok=False, error=ErrorType.SERVER_ERROR, message="HTTP 500"))
    assert board.breaker("a").state is BreakerState.OPEN
    assert board.snapshot()["a"].last_error == "server_error: HTTP 500"


def test_board_overrides_and_merged_transitions(clock):
    board = BreakerBoard(overrides={"b": BreakerConfig(failure_threshold=1)}, clock=clock)
    board.record(result("b", ok=False, error=ErrorType.TIMEOUT))
    clock.now += 1
    for _ in range(5):
        board.record(result("a", ok=False, error=ErrorType.TIMEOUT))
    assert [t.target for t in board.transitions] == ["b", "a"]
    assert set(board.snapshot()) == {"a", "b"}


def test_board_as_router_availability_filter(clock):
    board = BreakerBoard(BreakerConfig(failure_threshold=1, half_open_max_calls=1), clock=clock)
    targets = [Target(name=n) for n in ("a", "b")]
    router = Router(targets, available=board.available)
    task = Task(task_type="qa", payload="hi")
    board.record(result("a", ok=False, error=ErrorType.CONNECTION))
    assert [t.name for t in router.eligible(task)] == ["b"]
    clock.now += 60
    for _ in range(5):  # filtering repeatedly must leave the single trial slot free
        assert [t.name for t in router.eligible(task)] == ["a", "b"]
    assert board.allow("a")
    assert [t.name for t in router.eligible(task)] == ["b"]
    board.record(result("b", ok=False, error=ErrorType.CONNECTION))
    with pytest.raises(NoEligibleTargetError, match="unavailable"):
        router.eligible(task)
