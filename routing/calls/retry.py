"""When to try the same target again after a failed attempt, and how long to wait first.

Backoff is exponential with full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter", 2015):
the wait before retry k is uniform on [0, min(cap, base * 2**(k-1))], which spreads retries of many
callers apart instead of synchronising them.

Which failures are worth a retry on the same target (the alternative is the next target in the
fallback order, which the caller moves to when `should_retry` says no):
- CONNECTION, SERVER_ERROR, RATE_LIMITED: transient by nature; a 429's Retry-After (the adapter's
  `metadata["retry_after_seconds"]`) is honoured, and when it asks for longer than
  `retry_after_cap_seconds` we do not wait at all but move on to the fallback target.
- MALFORMED_RESPONSE: retried. An unreadable body comes back fast (a truncated or proxied response),
  so one more try is cheap, and a healthy target rarely repeats it.
- TIMEOUT: not retried by default. The attempt already spent the whole `timeout_seconds`; a target that
  hung once is likely still overloaded, and the caller's latency budget is better spent on the fallback
  target. Add it to `retryable` for targets with a short timeout.
- CLIENT_ERROR, AUTH, WRONG_ANSWER (and the router's own CIRCUIT_OPEN, BUDGET_EXCEEDED): never; the same
  request would fail the same way. The validator refuses them.
"""

from __future__ import annotations

import random

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from routing.models import FINITE, AttemptResult, ErrorType

NEVER_RETRYABLE = frozenset(
    {
        ErrorType.CLIENT_ERROR,
        ErrorType.AUTH,
        ErrorType.WRONG_ANSWER,
        ErrorType.CIRCUIT_OPEN,
        ErrorType.BUDGET_EXCEEDED,
    }
)

DEFAULT_RETRYABLE = frozenset(
    {ErrorType.CONNECTION, ErrorType.RATE_LIMITED, ErrorType.SERVER_ERROR, ErrorType.MALFORMED_RESPONSE}
)


class RetryPolicy(BaseModel):
    """Retries of one target; `seed` makes the jitter reproducible."""

    model_config = ConfigDict(extra="forbid", frozen=True, **FINITE)

    max_retries: int = Field(default=2, ge=0, description="Retries after the first attempt, per target.")
    base_delay_seconds: float = Field(
        default=0.5, ge=0, description="Backoff ceiling before the first retry."
    )
    max_delay_seconds: float = Field(default=10.0, ge=0, description="Backoff never waits longer than this.")
    retry_after_cap_seconds: float = Field(
        default=10.0,
        ge=0,
        description="A Retry-After longer than this sends the task to the fallback instead.",
    )
    retryable: frozenset[ErrorType] = Field(default=DEFAULT_RETRYABLE)
    seed: int | None = Field(default=None, description="Seed of the jitter's random generator.")

    _rng: random.Random = PrivateAttr()

    def model_post_init(self, context: object) -> None:
        self._rng = random.Random(self.seed)

    @field_validator("retryable")
    @classmethod
    def _only_transient(cls, value: frozenset[ErrorType]) -> frozenset[ErrorType]:
        forbidden = sorted(value & NEVER_RETRYABLE)
        if forbidden:
            raise ValueError(
                f"retryable must not contain {', '.join(forbidden)}: retrying cannot change them"
            )
        return value

    @model_validator(mode="after")
    def _cap_above_base(self) -> RetryPolicy:
        if self.max_delay_seconds < self.base_delay_seconds:
            raise ValueError(
                f"max_delay_seconds ({self.max_delay_seconds:g}) must be at least "
                f"base_delay_seconds ({self.base_delay_seconds:g})"
            )
        return self

    def should_retry(self, result: AttemptResult, attempt: int) -> bool:
        """Whether to call the same target again after `result`, the outcome of attempt number `attempt`."""
        _check_attempt(attempt)
        if result.ok or result.error_type not in self.retryable or attempt > self.max_retries:
            return False
        retry_after = _retry_after(result)
        return retry_after is None or retry_after <= self.retry_after_cap_seconds

    def delay(self, result: AttemptResult, attempt: int) -> float:
        """Seconds to wait before the retry that follows attempt number `attempt` (1-based)."""
        _check_attempt(attempt)
        ceiling = min(self.max_delay_seconds, self.base_delay_seconds * 2 ** min(attempt - 1, 64))
        jittered = self._rng.uniform(0.0, ceiling)
        retry_after = _retry_after(result)
        if retry_after is None:
            return jittered
        return max(min(retry_after, self.retry_after_cap_seconds), jittered)


def _check_attempt(attempt: int) -> None:
    if attempt < 1:
        raise ValueError(f"attempt must be 1 or more (the first attempt is 1), got {attempt}")


def _retry_after(result: AttemptResult) -> float | None:
    value = result.metadata.get("retry_after_seconds")
    return max(0.0, float(value)) if isinstance(value, int | float) and not isinstance(value, bool) else None
