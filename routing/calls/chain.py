"""One task working its way down its ranking: choose, admit under budgets, call, record, fall back.

The chain is the rule of a routed call; the caller supplies the I/O through a `ChainHost` (spooling
records, reserving budgets, estimating costs) and the call itself, so the same chain runs inside the
`routed-call` subflow, a `route-batch` wave, the gateway, or a plain unit test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from routing.calls.breaker import BreakerBoard
from routing.calls.outcomes import build_record
from routing.calls.plan import AttemptPlan
from routing.calls.retry import RetryPolicy
from routing.context.category import detect_category
from routing.context.session import SessionTracker
from routing.errors import LedgerError
from routing.models import (
    AttemptResult,
    Decision,
    ErrorType,
    ExecutionRecord,
    QueuedTask,
    RoutedResult,
    Task,
)
from routing.router import Router
from routing.spend.budgets import BudgetExceededError, Reservation

CallTarget = Callable[[str, Task], AttemptResult]
"""Calls the named target with the task and returns what happened (never raises for a failed call)."""


class ChainHost(Protocol):
    """What a chain needs from the process it runs in: the router and the I/O around each attempt."""

    router: Router
    breakers: BreakerBoard
    retry: RetryPolicy
    sessions: SessionTracker

    def prepare(self, task: Task) -> Task:
        """The task as it will be routed and recorded, e.g. with its prompt's embedding added."""
        ...

    def choose(self, task: Task) -> Decision:
        """The router's decision, or that of the task's variant when an experiment runs (see experiments.live)."""
        ...

    def record_decision(self, decision: Decision) -> None: ...

    def estimate(self, target: str, task: Task) -> float:
        """Upper-bound cost of calling `target` with `task`, in dollars."""
        ...

    def admit(self, task: Task, target: str, estimate: float) -> Reservation | None:
        """Reserve `estimate` against every budget; raises BudgetExceededError, or LedgerError when the
        budgets cannot be checked."""
        ...

    def settle(self, reservation: Reservation | None, actual_cost: float) -> None: ...

    def record(self, record: ExecutionRecord) -> None:
        """Keep the attempt (durably; only a sampled one, see calls/sampling.py) and let the router learn from it."""
        ...

    def learn(self, record: ExecutionRecord) -> None:
        """Let the router learn from an attempt another process kept already."""
        ...

    def queue(self, queued: QueuedTask) -> None: ...

    def finished(self, result: RoutedResult) -> None: ...


@dataclass(frozen=True)
class PlannedCall:
    """One attempt about to be made: its target, the backoff to wait first, its cost estimate and the
    budget reservation holding that estimate."""

    target: str
    delay: float
    estimate: float
    reservation: Reservation | None


@dataclass
class AttemptChain:
    """A task, its attempt plan and every attempt made so far."""

    task: Task
    plan: AttemptPlan
    attempts: list[ExecutionRecord] = field(default_factory=list)
    queued_until: datetime | None = None

    @classmethod
    def start(cls, host: ChainHost, task: Task) -> AttemptChain:
        """Choose (keeping a session on its target while its topic holds) and log the decision.

        A task that does not name its category gets the one its words suggest, so that category-aware
        strategies and the outcome records agree on it.
        """
        if "category" not in task.model_fields_set:
            task = task.model_copy(update={"category": detect_category(task.payload)})
        task = host.prepare(task)
        decision = host.sessions.route(task, host.choose)
        host.record_decision(decision)
        return cls(task, AttemptPlan(decision, host.retry, host.breakers))

    @property
    def decision(self) -> Decision:
        return self.plan.decision

    def next_call(self, host: ChainHost) -> PlannedCall | None:
        """The next call that fits the budgets; targets a budget refuses, or whose budgets cannot be
        checked (the ledger's server unreachable), are skipped with the reason."""
        while (step := self.plan.next_call()) is not None:
            name, delay = step
            estimate = host.estimate(name, self.task)
            try:
                return PlannedCall(name, delay, estimate, host.admit(self.task, name, estimate))
            except BudgetExceededError as exc:
                self.plan.skip(name, f"{ErrorType.BUDGET_EXCEEDED}: {exc}")
                if exc.policy == "queue":
                    self.queued_until = exc.retry_at
            except LedgerError as exc:  # fail closed: a budget that cannot be checked is never risked
                self.plan.skip(name, f"{ErrorType.BUDGET_EXCEEDED}: refused, the budget ledger cannot be used: {exc}")
        return None

    def record(
        self, host: ChainHost, call: PlannedCall, result: AttemptResult, spooled: ExecutionRecord | None = None
    ) -> None:
        """Settle, keep and learn from one attempt; `spooled` is its record when the process that made
        the call spooled it already (a distributed worker): the router then only learns from it."""
        host.settle(call.reservation, result.cost)
        if spooled is None:
            target = host.router.target(call.target)
            record = build_record(self.task, self.decision, target, result, self.next_attempt, call.estimate)
            host.record(record)
        else:
            record = spooled
            host.learn(record)
        self.attempts.append(record)
        self.plan.record(result, record.success)

    @property
    def next_attempt(self) -> int:
        return len(self.attempts) + 1

    def result(self) -> RoutedResult:
        winner = next((a for a in self.attempts if a.success), None)
        return RoutedResult(
            task_id=self.task.id,
            decision=self.decision,
            attempts=tuple(self.attempts),
            success=winner is not None,
            target=winner.target if winner else None,
            output=winner.solution_summary if winner else None,
            failures=self.plan.failures,
            queued_until=None if winner else self.queued_until,
        )

    def finish(self, host: ChainHost) -> RoutedResult:
        """The result; a session follows the target that served it, a task a budget queued is queued."""
        result = self.result()
        if self.task.session_id and result.success and result.target != self.decision.pick:
            host.sessions.set_target(self.task.session_id, result.target)  # the fallback now holds it
        if result.queued_until is not None:
            reason = "; ".join(f"{name}: {why}" for name, why in result.failures.items())
            host.queue(QueuedTask(task=self.task, reason=reason, not_before=result.queued_until))
        host.finished(result)
        return result

    def run(self, host: ChainHost, call: CallTarget, sleep: Callable[[float], None] = time.sleep) -> RoutedResult:
        """Make calls one after another until one succeeds or the plan is spent."""
        while (planned := self.next_call(host)) is not None:
            sleep(planned.delay)
            self.record(host, planned, call(planned.target, self.task))
        return self.finish(host)
