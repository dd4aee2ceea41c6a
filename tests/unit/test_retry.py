"""The retry policy: which failures are retried, how often, and the full-jitter backoff."""

import random
import statistics

import pytest
from pydantic import ValidationError

from routing.calls.retry import DEFAULT_RETRYABLE, RetryPolicy
from routing.models import AttemptResult, ErrorType


def failure(error, **metadata):
    return AttemptResult(target="t", ok=False, duration_ms=5.0, error_type=error, metadata=metadata)


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (ErrorType.CONNECTION, True),
        (ErrorType.SERVER_ERROR, True),
        (ErrorType.RATE_LIMITED, True),
        (ErrorType.MALFORMED_RESPONSE, True),
        (ErrorType.TIMEOUT, False),
        (ErrorType.CLIENT_ERROR, False),
        (ErrorType.AUTH, False),
        (ErrorType.WRONG_ANSWER, False),
        (ErrorType.CIRCUIT_OPEN, False),
    ],
)
def test_default_retryable_types(error, retried):
    assert RetryPolicy().should_retry(failure(error), attempt=1) is retried


def test_retries_stop_after_max_retries():
    policy = RetryPolicy(max_retries=2)
    verdicts = [policy.should_retry(failure(ErrorType.CONNECTION), attempt) for attempt in (1, 2, 3, 4)]
    assert verdicts == [True, True, False, False]
    assert not RetryPolicy(max_retries=0).should_retry(failure(ErrorType.CONNECTION), 1)


def test_success_is_never_retried():
    ok = AttemptResult(target="t", ok=True, duration_ms=1.0)
    assert not RetryPolicy().should_retry(ok, 1)


def test_timeout_can_be_opted_in():
    policy = RetryPolicy(retryable=DEFAULT_RETRYABLE | {ErrorType.TIMEOUT})
    assert policy.should_retry(failure(ErrorType.TIMEOUT), 1)


def test_full_jitter_matches_the_reference_draws():
    """delay = uniform(0, min(cap, base * 2**(attempt-1))), drawn from random.Random(seed)."""
    policy = RetryPolicy(seed=7, base_delay_seconds=0.5, max_delay_seconds=10)
    reference = random.Random(7)
    for attempt in (1, 2, 3, 4, 5, 6, 7):
        ceiling = min(10.0, 0.5 * 2 ** (attempt - 1))
        assert policy.delay(failure(ErrorType.CONNECTION), attempt) == reference.uniform(0, ceiling)


def test_jitter_spreads_uniformly_below_the_ceiling():
    policy = RetryPolicy(seed=1, base_delay_seconds=1.0, max_delay_seconds=4.0)
    draws = [policy.delay(failure(ErrorType.SERVER_ERROR), 3) for _ in range(4000)]
    assert min(draws) >= 0 and max(draws) <= 4.0
    assert statistics.fmean(draws) == pytest.approx(2.0, abs=0.1)  # mean of U(0, 4)
    assert all(policy.delay(failure(ErrorType.SERVER_ERROR), 60) <= 4.0 for _ in range(100))
    assert policy.delay(failure(ErrorType.SERVER_ERROR), 10_000) <= 4.0


def test_same_seed_same_delays():
    a, b = RetryPolicy(seed=3), RetryPolicy(seed=3)
    result = failure(ErrorType.CONNECTION)
    assert [a.delay(result, k) for k in (1, 2, 3)] == [b.delay(result, k) for k in (1, 2, 3)]


def test_retry_after_is_honoured_within_the_cap():
    policy = RetryPolicy(seed=0, base_delay_seconds=0.1, max_delay_seconds=0.2, retry_after_cap_seconds=5)
    limited = failure(ErrorType.RATE_LIMITED, retry_after_seconds=3)
    assert policy.should_retry(limited, 1)
    assert policy.delay(limited, 1) == 3.0


def test_retry_after_beyond_the_cap_goes_to_the_fallback():
    policy = RetryPolicy(retry_after_cap_seconds=5)
    assert not policy.should_retry(failure(ErrorType.RATE_LIMITED, retry_after_seconds=120), 1)
    assert policy.delay(failure(ErrorType.RATE_LIMITED, retry_after_seconds=120), 1) == 5.0


def test_jitter_wins_over_a_shorter_retry_after():
    policy = RetryPolicy(seed=0, base_delay_seconds=8, max_delay_seconds=8)
    expected = random.Random(0).uniform(0, 8)
    assert policy.delay(failure(ErrorType.RATE_LIMITED, retry_after_seconds=0), 1) == expected


@pytest.mark.parametrize("bad", ["soon", None, True])
def test_unreadable_retry_after_is_ignored(bad):
    policy = RetryPolicy(seed=2, max_delay_seconds=0.5, base_delay_seconds=0.5)
    assert policy.delay(failure(ErrorType.RATE_LIMITED, retry_after_seconds=bad), 1) <= 0.5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"retryable": ["connection", "auth"]}, "retryable must not contain auth"),
        ({"retryable": ["wrong_answer", "client_error"]}, "client_error, wrong_answer"),
        ({"max_retries": -1}, "max_retries"),
        ({"base_delay_seconds": 2, "max_delay_seconds": 1}, "max_delay_seconds \\(1\\) must be at least"),
        ({"retry_after_cap_seconds": -1}, "retry_after_cap_seconds"),
        ({"jitter": "full"}, "jitter"),
    ],
)
def test_policy_rejects_bad_config(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        RetryPolicy(**kwargs)


def test_attempt_numbers_start_at_one():
    with pytest.raises(ValueError, match="attempt must be 1 or more"):
        RetryPolicy().delay(failure(ErrorType.CONNECTION), 0)
