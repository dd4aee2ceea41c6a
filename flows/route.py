"""The routing flows: `routed-call` wraps one adapter call, `route-batch` routes many in one flow run.

Both choose with the runtime's Router, call the pick as a `call-target` task, fall back along the
ranking when an attempt fails, and spool every attempt and decision for the store. Nothing here
waits on DuckDB: `route-batch` ingests the spool at the end, and if the file is locked the records
simply stay spooled for the next ingestion.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

from blocks.store import StoreError
from flows.runtime import RoutingRuntime, get_runtime
from routing.calls.outcomes import build_record
from routing.calls.plan import AttemptPlan
from routing.context.category import detect_category
from routing.errors import RoutingError
from routing.models import AttemptResult, Decision, ErrorType, ExecutionRecord, QueuedTask, RoutedResult, Task
from routing.spend.budgets import BudgetExceededError, Reservation
from tasks.calls import call_target

DEFAULT_RUNTIME = "default"


@dataclass
class _Chain:
    """One task working its way through its attempt plan."""

    task: Task
    plan: AttemptPlan
    attempts: list[ExecutionRecord] = field(default_factory=list)
    queued_until: datetime | None = None

    @property
    def decision(self) -> Decision:
        return self.plan.decision

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


def _start(runtime: RoutingRuntime, task: Task) -> _Chain:
    """Choose (keeping a session on its target while its topic holds) and log the decision.

    A task that does not name its category gets the one its words suggest, so that category-aware
    strategies and the outcome records agree on it.
    """
    if "category" not in task.model_fields_set:
        task = task.model_copy(update={"category": detect_category(task.payload)})
    decision = runtime.sessions.route(task, runtime.choose)
    runtime.store.record_decision(decision)
    return _Chain(task, AttemptPlan(decision, runtime.retry, runtime.breakers))


@dataclass(frozen=True)
class _Call:
    """One attempt about to be made: its target, the backoff to wait first, its cost estimate and the
    budget reservation holding that estimate."""

    target: str
    delay: float
    estimate: float
    reservation: Reservation | None


def _next_call(runtime: RoutingRuntime, chain: _Chain) -> _Call | None:
    """The chain's next call that fits the budgets."""
    while (step := chain.plan.next_call()) is not None:
        name, delay = step
        estimate = runtime.target(name).cost_estimate(chain.task)
        try:
            return _Call(name, delay, estimate, runtime.admit(chain.task, name, estimate))
        except BudgetExceededError as exc:
            chain.plan.skip(name, f"{ErrorType.BUDGET_EXCEEDED}: {exc}")
            if exc.policy == "queue":
                chain.queued_until = exc.retry_at
    return None


def _record(runtime: RoutingRuntime, chain: _Chain, call: _Call, result: AttemptResult) -> None:
    runtime.settle(call.reservation, result.cost)
    target = runtime.router.target(call.target)
    record = build_record(chain.task, chain.decision, target, result, len(chain.attempts) + 1, call.estimate)
    runtime.record(record)
    chain.attempts.append(record)
    chain.plan.record(result, record.success)


def _finish(runtime: RoutingRuntime, chain: _Chain) -> RoutedResult:
    result = chain.result()
    if chain.task.session_id and result.success and result.target != chain.decision.pick:
        runtime.sessions.set_target(chain.task.session_id, result.target)  # the fallback now holds it
    if result.queued_until is not None:
        reason = "; ".join(f"{name}: {why}" for name, why in result.failures.items())
        runtime.store.record_queued(QueuedTask(task=chain.task, reason=reason, not_before=result.queued_until))
    runtime.finished(result)
    return result


def _run_chain(runtime: RoutingRuntime, chain: _Chain) -> RoutedResult:
    while (call := _next_call(runtime, chain)) is not None:
        time.sleep(call.delay)
        _record(runtime, chain, call, call_target(runtime.target(call.target), chain.task))
    return _finish(runtime, chain)


def _label_current_run(decision: Decision, task: Task) -> None:
    """Name and tag the flow run after the decision, so the UI's run list reads as a routing log."""
    run_id = flow_run.get_id()
    if run_id is None:
        return
    name = f"{task.task_type} -> {decision.pick} ({decision.strategy}, p={decision.probability:.2f})"
    tags = ["adaptive-router", f"target:{decision.pick}", f"task-type:{task.task_type}"]
    with get_client(sync_client=True) as client:
        client.update_flow_run(run_id, name=name, tags=tags)


@flow(name="routed-call", persist_result=False)
def routed_call(task: Task, runtime: str = DEFAULT_RUNTIME) -> RoutedResult:
    """Route one task: choose a target, call it, fall back along the ranking, log every attempt.

    Raises AllTargetsFailedError, naming every target and why it failed (a budget's limit and spend
    included), when no attempt succeeded; a task a budget queued returns with `queued_until` instead.
    """
    routing = get_runtime(runtime)
    chain = _start(routing, task)
    _label_current_run(chain.decision, task)
    get_run_logger().info("%s: %s", chain.decision.pick, chain.decision.reason)
    result = _run_chain(routing, chain)
    if not result.success and result.queued_until is None:
        raise chain.plan.error(task.id)
    return result


@contextmanager
def fast_subflows() -> Iterator[None]:
    """Turn off flow-run heartbeats: on Prefect 3.8 joining the heartbeat thread adds ~1 s per subflow."""
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def route(task: Task, runtime: str = DEFAULT_RUNTIME) -> RoutedResult:
    """Route one task through the `routed-call` subflow, with the subflow overhead kept low."""
    with fast_subflows():
        return routed_call(task, runtime)


@flow(name="route-batch", persist_result=False)
def route_batch(
    tasks: list[Task], runtime: str = DEFAULT_RUNTIME, concurrency: int = 8, ingest: bool = True
) -> list[RoutedResult]:
    """Route many tasks in one flow run, `concurrency` at a time, with a task run per attempt.

    Tasks go in waves: each wave is chosen with everything learned from the waves before it, its
    calls run concurrently, and failed attempts fall back to their next target within the wave.
    A task no target can take (capabilities, open breakers, constraints) is logged with the reason
    and left out of the results; the others go on.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    routing = get_runtime(runtime)
    logger = get_run_logger()
    progress = create_progress_artifact(0.0, key="route-batch-progress", description="Tasks routed")
    results: list[RoutedResult] = []
    unroutable = 0
    for start in range(0, len(tasks), concurrency):
        chains = []
        for task in tasks[start : start + concurrency]:
            try:
                chains.append(_start(routing, task))
            except RoutingError as exc:  # no eligible target: this task fails, the batch goes on
                unroutable += 1
                logger.error("task %s not routed: %s", task.id, exc)
        _run_wave(routing, chains)
        results += [_finish(routing, chain) for chain in chains]
        update_progress_artifact(progress, 100.0 * min(start + concurrency, len(tasks)) / len(tasks))
    _publish_summary(results)
    if ingest:
        _ingest(routing, logger)
    ok = sum(r.success for r in results)
    logger.info(
        "routed %d tasks: %d succeeded, %d failed, %d had no eligible target",
        len(results), ok, len(results) - ok, unroutable,
    )
    return results


def _run_wave(runtime: RoutingRuntime, chains: Sequence[_Chain]) -> None:
    """Run every chain's next call concurrently until all are done; retries wait their backoff first."""
    pending = list(chains)
    while pending:
        steps = [(chain, call) for chain in pending if (call := _next_call(runtime, chain)) is not None]
        if not steps:
            return
        time.sleep(max(call.delay for _, call in steps))
        futures = [call_target.submit(runtime.target(call.target), chain.task) for chain, call in steps]
        for (chain, call), future in zip(steps, futures):
            _record(runtime, chain, call, future.result())
        pending = [chain for chain, _ in steps]


def _publish_summary(results: Sequence[RoutedResult]) -> None:
    per_target: dict[str, dict[str, float]] = {}
    for result in results:
        for attempt in result.attempts:
            row = per_target.setdefault(attempt.target, {"attempts": 0, "successes": 0, "cost": 0.0})
            row["attempts"] += 1
            row["successes"] += attempt.success
            row["cost"] += attempt.actual_cost or 0.0
    table = [
        {
            "target": name,
            "attempts": int(row["attempts"]),
            "success_rate": round(row["successes"] / row["attempts"], 3),
            "cost_usd": round(row["cost"], 6),
        }
        for name, row in sorted(per_target.items())
    ]
    create_table_artifact(table, key="route-batch-targets", description="Attempts per target in this batch")


def _ingest(runtime: RoutingRuntime, logger: logging.Logger | logging.LoggerAdapter) -> None:
    try:
        report = runtime.store.ingest()
        runtime.persist()
    except StoreError as exc:
        logger.warning("outcomes stay spooled for the next ingestion: %s", exc)
        return
    if report.rejected:
        logger.warning("%d malformed spool lines kept aside: %s", len(report.rejected), report.rejected[:3])
    logger.info("ingested %d executions and %d decisions", report.executions, report.decisions)
