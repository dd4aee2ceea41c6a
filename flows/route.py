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

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

from blocks.store import StoreError
from flows.labels import label_current_run
from flows.runtime import RoutingRuntime, get_runtime
from routing.calls.chain import AttemptChain, CallTarget
from routing.errors import RoutingError
from routing.models import Decision, RoutedResult, Task
from tasks.calls import call_target

DEFAULT_RUNTIME = "default"


def _call(runtime: RoutingRuntime) -> CallTarget:
    return lambda name, task: call_target(runtime.target(name), task)


def _label(decision: Decision, task: Task) -> None:
    label_current_run(
        f"{task.task_type} -> {decision.pick} ({decision.strategy}, p={decision.probability:.2f})",
        tags=["adaptive-router", f"target:{decision.pick}", f"task-type:{task.task_type}"],
    )


@flow(name="routed-call", persist_result=False)
def routed_call(task: Task, runtime: str = DEFAULT_RUNTIME) -> RoutedResult:
    """Route one task: choose a target, call it, fall back along the ranking, log every attempt.

    Raises AllTargetsFailedError, naming every target and why it failed (a budget's limit and spend
    included), when no attempt succeeded; a task a budget queued returns with `queued_until` instead.
    """
    routing = get_runtime(runtime)
    chain = AttemptChain.start(routing, task)
    _label(chain.decision, task)
    get_run_logger().info("%s: %s", chain.decision.pick, chain.decision.reason)
    result = chain.run(routing, _call(routing))
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
                chains.append(AttemptChain.start(routing, task))
            except RoutingError as exc:  # no eligible target: this task fails, the batch goes on
                unroutable += 1
                logger.error("task %s not routed: %s", task.id, exc)
        _run_wave(routing, chains)
        results += [chain.finish(routing) for chain in chains]
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


def _run_wave(runtime: RoutingRuntime, chains: Sequence[AttemptChain]) -> None:
    """Run every chain's next call concurrently until all are done; retries wait their backoff first."""
    pending = list(chains)
    while pending:
        steps = [(chain, call) for chain in pending if (call := chain.next_call(runtime)) is not None]
        if not steps:
            return
        time.sleep(max(call.delay for _, call in steps))
        futures = [call_target.submit(runtime.target(call.target), chain.task) for chain, call in steps]
        for (chain, call), future in zip(steps, futures):
            chain.record(runtime, call, future.result())
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
