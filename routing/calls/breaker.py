"""Circuit breakers: stop sending work to a target that keeps failing, and probe it before trusting it again.

One breaker per target moves CLOSED -> OPEN after `failure_threshold` consecutive failures, OPEN ->
HALF_OPEN once `open_timeout_seconds` have passed, and HALF_OPEN -> CLOSED after `success_threshold`
trial successes (any trial failure re-opens it). While half-open at most `half_open_max_calls` trials
are in flight at once, so a recovering target is not flooded.

Two questions are kept apart on purpose: `peek()` (would a call be let through now?) is free and is what
the Router's `available` filter asks for every eligible target on every decision; `allow()` is asked
only for the target actually about to be called, and reserves a half-open trial slot. Filtering with
`allow()` would burn trial slots on targets that are then not picked.

Time comes from an injectable clock (`time.time` by default, so `opened_at` is an epoch timestamp that
means something in a log); a wall-clock jump shortens or stretches one open period, which is harmless.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from routing.models import FINITE, AttemptResult, ErrorType

Clock = Callable[[], float]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


# Failures that say the target itself is unwell. A client error, a wrong answer or an exhausted budget
# says nothing about the target's health, so by default they neither trip nor heal a breaker.
DEFAULT_TRIP_ON = frozenset(
    {
        ErrorType.TIMEOUT,
        ErrorType.CONNECTION,
        ErrorType.RATE_LIMITED,
        ErrorType.SERVER_ERROR,
        ErrorType.MALFORMED_RESPONSE,
        ErrorType.AUTH,
        ErrorType.TARGET_ERROR,
    }
)


class BreakerConfig(BaseModel):
    """Thresholds of one breaker; the defaults are the classic 5 failures / 60 s / 2 successes."""

    model_config = ConfigDict(extra="forbid", frozen=True, **FINITE)

    failure_threshold: int = Field(default=5, ge=1, description="Consecutive failures that open the breaker.")
    success_threshold: int = Field(default=2, ge=1, description="Half-open successes that close it again.")
    open_timeout_seconds: float = Field(
        default=60.0, gt=0, description="How long it stays open before trials."
    )
    half_open_max_calls: int = Field(
        default=3, ge=1, description="Trial calls in flight at once while half-open."
    )
    trip_on: frozenset[ErrorType] = Field(
        default=DEFAULT_TRIP_ON, description="Error types counted as failures by BreakerBoard.record()."
    )

    @model_validator(mode="after")
    def _trip_on_sensible(self) -> BreakerConfig:
        if ErrorType.CIRCUIT_OPEN in self.trip_on:
            raise ValueError(
                "trip_on must not contain circuit_open: a skipped call would keep the breaker open"
            )
        return self


@dataclass(frozen=True)
class Transition:
    """One change of state, as reported to the `on_transition` callback and kept in `transitions`."""

    target: str
    from_state: BreakerState
    to_state: BreakerState
    at: float
    reason: str


class BreakerSnapshot(BaseModel):
    """A breaker's state for logs, events and the UI."""

    model_config = ConfigDict(frozen=True)

    target: str
    state: BreakerState
    consecutive_failures: int
    total_failures: int
    total_successes: int
    half_open_successes: int
    half_open_in_flight: int
    last_error: str | None
    opened_at: float | None
    retry_at: float | None = Field(description="When an open breaker starts letting trials through.")


TransitionCallback = Callable[[Transition], None]


class CircuitBreaker:
    """The breaker of one target; thread-safe, callbacks run outside its lock."""

    def __init__(
        self,
        target: str,
        config: BreakerConfig | None = None,
        *,
        clock: Clock = time.time,
        on_transition: TransitionCallback | None = None,
    ) -> None:
        self.target = target
        self.config = config or BreakerConfig()
        self.transitions: list[Transition] = []
        self._clock = clock
        self._on_transition = on_transition
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._consecutive_failures = 0
        self._total_failures = 0
        self._total_successes = 0
        self._half_open_successes = 0
        self._in_flight = 0
        self._last_error: str | None = None
        self._opened_at: float | None = None

    @property
    def state(self) -> BreakerState:
        with self._lock:
            fired = self._advance_clock()
            state = self._state
        self._fire(fired)
        return state

    def peek(self) -> bool:
        """Whether `allow()` would let a call through now, without reserving anything."""
        if self._state is BreakerState.CLOSED:  # lock-free fast path: a racy read is merely an earlier one
            return True
        with self._lock:
            fired = self._advance_clock()
            verdict = self._state is BreakerState.CLOSED or (
                self._state is BreakerState.HALF_OPEN and self._in_flight < self.config.half_open_max_calls
            )
        self._fire(fired)
        return verdict

    def allow(self) -> bool:
        """Whether to make a call now; while half-open a True reserves one trial slot until its result."""
        with self._lock:
            fired = self._advance_clock()
            if self._state is BreakerState.CLOSED:
                verdict = True
            elif self._state is BreakerState.HALF_OPEN and self._in_flight < self.config.half_open_max_calls:
                self._in_flight += 1
                verdict = True
            else:
                verdict = False
        self._fire(fired)
        return verdict

    def record_success(self) -> None:
        with self._lock:
            fired = self._advance_clock()
            self._total_successes += 1
            self._consecutive_failures = 0
            if self._state is BreakerState.HALF_OPEN:
                self._release_slot()
                self._half_open_successes += 1
                if self._half_open_successes >= self.config.success_threshold:
                    fired.append(
                        self._move(BreakerState.CLOSED, f"{self._half_open_successes} trial successes")
                    )
        self._fire(fired)

    def record_failure(self, error_message: str | None = None) -> None:
        with self._lock:
            fired = self._advance_clock()
            self._total_failures += 1
            self._consecutive_failures += 1
            self._last_error = error_message
            why = f": {error_message}" if error_message else ""
            if self._state is BreakerState.HALF_OPEN:
                fired.append(self._move(BreakerState.OPEN, f"trial call failed{why}"))
            elif (
                self._state is BreakerState.CLOSED
                and self._consecutive_failures >= self.config.failure_threshold
            ):
                fired.append(
                    self._move(BreakerState.OPEN, f"{self._consecutive_failures} consecutive failures{why}")
                )
        self._fire(fired)

    def release(self) -> None:
        """A call let through ended with no verdict on the target's health (cancelled, client error)."""
        with self._lock:
            if self._state is BreakerState.HALF_OPEN:
                self._release_slot()

    def snapshot(self) -> BreakerSnapshot:
        with self._lock:
            fired = self._advance_clock()
            opened_at = self._opened_at if self._state is not BreakerState.CLOSED else None
            snap = BreakerSnapshot(
                target=self.target,
                state=self._state,
                consecutive_failures=self._consecutive_failures,
                total_failures=self._total_failures,
                total_successes=self._total_successes,
                half_open_successes=self._half_open_successes,
                half_open_in_flight=self._in_flight,
                last_error=self._last_error,
                opened_at=opened_at,
                retry_at=opened_at + self.config.open_timeout_seconds
                if self._state is BreakerState.OPEN and opened_at is not None
                else None,
            )
        self._fire(fired)
        return snap

    # -- internals: called with the lock held; they return transitions for _fire to report afterwards.

    def _advance_clock(self) -> list[Transition]:
        if (
            self._state is BreakerState.OPEN
            and self._opened_at is not None
            and self._clock() - self._opened_at >= self.config.open_timeout_seconds
        ):
            return [self._move(BreakerState.HALF_OPEN, f"open for {self.config.open_timeout_seconds:g} s")]
        return []

    def _release_slot(self) -> None:
        self._in_flight = max(0, self._in_flight - 1)

    def _move(self, to: BreakerState, reason: str) -> Transition:
        now = self._clock()
        transition = Transition(self.target, self._state, to, now, reason)
        self._state = to
        self._half_open_successes = 0
        self._in_flight = 0
        if to is BreakerState.OPEN:
            self._opened_at = now
        elif to is BreakerState.CLOSED:
            self._consecutive_failures = 0
            self._opened_at = None
        self.transitions.append(transition)
        return transition

    def _fire(self, transitions: list[Transition]) -> None:
        if self._on_transition is not None:
            for transition in transitions:
                self._on_transition(transition)


class BreakerBoard:
    """One breaker per target, created on first use; `available` plugs into `Router(available=...)`."""

    def __init__(
        self,
        config: BreakerConfig | None = None,
        *,
        overrides: dict[str, BreakerConfig] | None = None,
        clock: Clock = time.time,
        on_transition: TransitionCallback | None = None,
    ) -> None:
        self.config = config or BreakerConfig()
        self._overrides = dict(overrides or {})
        self._clock = clock
        self._on_transition = on_transition
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()
        self._peers_open: dict[str, float] = {}  # target -> until when another process found it dead

    def breaker(self, target: str) -> CircuitBreaker:
        breaker = self._breakers.get(target)
        if breaker is None:
            with self._lock:
                breaker = self._breakers.get(target)
                if breaker is None:
                    breaker = CircuitBreaker(
                        target,
                        self._overrides.get(target, self.config),
                        clock=self._clock,
                        on_transition=self._on_transition,
                    )
                    self._breakers[target] = breaker
        return breaker

    def available(self, target: str) -> bool:
        """The Router's eligibility filter: never reserves a trial slot; a target another process's
        breaker holds open (see `adopt_peers`) is unavailable here too until that breaker's retry time."""
        if self._peers_open:
            until = self._peers_open.get(target)
            if until is not None and self._clock() < until:
                return False
        return self.breaker(target).peek()

    def open_until(self) -> dict[str, float]:
        """Targets whose breaker is open here, with when each starts letting trials through (to gossip)."""
        found = {}
        for name, breaker in list(self._breakers.items()):
            snap = breaker.snapshot()
            if snap.state is BreakerState.OPEN and snap.retry_at is not None:
                found[name] = snap.retry_at
        return found

    def adopt_peers(self, open_until: Mapping[str, float]) -> None:
        """Take what other processes' breakers found: each target held open until the time given
        (replacing what was adopted before; a target no peer holds open any more is released)."""
        self._peers_open = dict(open_until)

    def allow(self, target: str) -> bool:
        """Ask right before calling `target`; a True while half-open must be followed by `record`."""
        return self.breaker(target).allow()

    def record(self, result: AttemptResult) -> None:
        """Feed one attempt: success heals, a `trip_on` error is a failure, anything else is neutral."""
        breaker = self.breaker(result.target)
        if result.ok:
            breaker.record_success()
        elif result.error_type in breaker.config.trip_on:
            detail = f": {result.error_message}" if result.error_message else ""
            breaker.record_failure(f"{result.error_type}{detail}")
        else:
            breaker.release()

    def snapshot(self) -> dict[str, BreakerSnapshot]:
        return {name: breaker.snapshot() for name, breaker in list(self._breakers.items())}

    @property
    def transitions(self) -> list[Transition]:
        """Every breaker's transitions, oldest first."""
        merged = [t for breaker in list(self._breakers.values()) for t in breaker.transitions]
        return sorted(merged, key=lambda t: t.at)
