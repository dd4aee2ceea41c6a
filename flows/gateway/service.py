"""Routing a gateway request: the same AttemptChain as `route()`, with each attempt a `call-target`
task run of the gateway's long-lived flow run (a task costs ~14 ms here, a subflow ~330 ms), or, with
`subflow_per_request`, the whole request as its own `routed-call` flow run.

Requests arrive on many threads; the runtime's in-memory parts (strategy, ledger, spool writer) are
shared, so the host below serialises the microsecond steps (choose, admit, record) and lets the calls
themselves run in parallel.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from flows.gateway.metrics import GatewayMetrics
from flows.route import DEFAULT_RUNTIME, route
from flows.runtime import RoutingRuntime, get_runtime
from routing.calls.chain import AttemptChain
from routing.errors import AllTargetsFailedError
from routing.models import Candidate, Decision, ErrorType, RoutedResult, Task
from tasks.calls import call_target

NAMED_STRATEGY = "named"


class _Host:
    """The runtime as a ChainHost, one step at a time; a request that names a target gets it."""

    def __init__(self, runtime: RoutingRuntime, lock: threading.Lock, target: str | None) -> None:
        self._runtime, self._lock, self._target = runtime, lock, target
        self.router, self.breakers, self.retry, self.sessions = runtime.router, runtime.breakers, runtime.retry, runtime.sessions

    def choose(self, task: Task) -> Decision:
        if self._target is not None:
            return named_decision(task, self._target)
        with self._lock:
            return self._runtime.choose(task)

    def __getattr__(self, name: str):
        method = getattr(self._runtime, name)
        lock = self._lock

        def locked(*args, **kwargs):
            with lock:
                return method(*args, **kwargs)

        return locked


def named_decision(task: Task, target: str) -> Decision:
    """A request that names a target bypasses the strategy; the decision is still logged."""
    return Decision(task_id=task.id, task_type=task.task_type, strategy=NAMED_STRATEGY,
                    candidates=(Candidate(target=target, score=1.0),), pick=target, probability=1.0,
                    reason=f"the request named {target}")  # fmt: skip


class RequestFailed(Exception):
    """No answer: `budget` when budgets refused every target (or queued the task), else every attempt failed."""

    def __init__(self, message: str, budget: bool, result: RoutedResult | None = None) -> None:
        super().__init__(message)
        self.budget = budget
        self.result = result


@dataclass
class Gateway:
    """What the HTTP app routes through: a runtime by name, the metrics, the routing mode."""

    runtime_name: str = DEFAULT_RUNTIME
    subflow_per_request: bool = False
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        runtime = self.runtime()
        self.metrics.runtime = runtime
        runtime.hooks.append(self.metrics.observe)

    def runtime(self) -> RoutingRuntime:
        return get_runtime(self.runtime_name)

    def route(self, task: Task, target: str | None = None) -> RoutedResult:
        """Route `task` (to `target` alone when named); raises RequestFailed without an answer."""
        runtime = self.runtime()
        if target is not None:
            runtime.target(target)  # an unknown name fails here, naming the targets there are
        started = time.perf_counter()
        if self.subflow_per_request and target is None:
            try:
                result = route(task, self.runtime_name)
            except AllTargetsFailedError as exc:
                raise RequestFailed(str(exc), budget=_all_budget(exc.failures)) from exc
            mode = "subflow"
        else:
            host = _Host(runtime, self._lock, target)
            chain = AttemptChain.start(host, task)
            self.metrics.decision_seconds.observe(time.perf_counter() - started)
            result = chain.run(host, lambda name, t: call_target(runtime.target(name), t))
            mode = "task"
        self.metrics.request_seconds.labels(mode).observe(time.perf_counter() - started)
        if not result.success:
            reasons = "; ".join(f"{name}: {why}" for name, why in result.failures.items()) or "no target tried"
            budget = result.queued_until is not None or _all_budget(result.failures)
            raise RequestFailed(f"task {task.id} got no answer: {reasons}", budget, result)
        return result


def _all_budget(failures: dict[str, str]) -> bool:
    return bool(failures) and all(why.startswith(ErrorType.BUDGET_EXCEEDED.value) for why in failures.values())
