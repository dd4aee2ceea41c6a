"""The order of attempts for one routed task: retries on a target, then its fallbacks.

Pure bookkeeping, so the flows only execute what it says: call this target after this delay. It walks
the decision's fallback order, retries a target while the retry policy allows, skips targets whose
circuit breaker refuses calls, and remembers why each target failed for the caller's error.
"""

from __future__ import annotations

from routing.calls.breaker import BreakerBoard
from routing.calls.retry import RetryPolicy
from routing.errors import AllTargetsFailedError
from routing.models import AttemptResult, Decision, ErrorType

NO_RETRIES = RetryPolicy(max_retries=0)


class AttemptPlan:
    def __init__(
        self, decision: Decision, retry: RetryPolicy = NO_RETRIES, breakers: BreakerBoard | None = None
    ) -> None:
        self.decision = decision
        self.retry = retry
        self.breakers = breakers
        self.order = decision.fallback_order
        self.failures: dict[str, str] = {}
        self.succeeded = False
        self._index = 0
        self._tries = 0  # attempts made on order[_index]
        self._delay = 0.0

    def next_call(self) -> tuple[str, float] | None:
        """The target to call next and the seconds to wait first, or None when nothing is left to try."""
        while not self.succeeded and self._index < len(self.order):
            name = self.order[self._index]
            if self.breakers is not None and not self.breakers.allow(name):
                self.failures[name] = f"{ErrorType.CIRCUIT_OPEN}: breaker refuses calls"
                self._advance()
                continue
            return name, self._delay
        return None

    def record(self, result: AttemptResult, success: bool) -> None:
        """Feed the outcome of the call `next_call` asked for; `success` includes grading the answer."""
        self._tries += 1
        if self.breakers is not None:
            self.breakers.record(result)
        if success:
            self.succeeded = True
            self.failures.pop(result.target, None)
            return
        why = result.error_message or "failed"
        self.failures[result.target] = f"{result.error_type or ErrorType.WRONG_ANSWER}: {why}"
        if self.retry.should_retry(result, self._tries):
            self._delay = self.retry.delay(result, self._tries)
        else:
            self._advance()

    def skip(self, target: str, why: str) -> None:
        """Pass over the target `next_call` named without calling it (e.g. it would break a budget)."""
        self.failures[target] = why
        self._advance()

    def error(self, task_id: str) -> AllTargetsFailedError:
        return AllTargetsFailedError(task_id, {name: self.failures.get(name, "not tried") for name in self.order})

    def _advance(self) -> None:
        self._index += 1
        self._tries = 0
        self._delay = 0.0
