"""The routing flows: `routed-call` wraps one adapter call, `route-batch` routes many in one flow run.

Both choose with the runtime's Router, call the pick as a `call-target` task, fall back along the
ranking when an attempt fails, and spool every attempt and decision for the store. Nothing here
waits on DuckDB: `route-batch` ingests the spool at the end, and if the file is locked the records
simply stay spooled for the next ingestion.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager

import httpx
from prefect import flow, get_run_logger, tags
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.context import SettingsContext, get_settings_context
from prefect.exceptions import PrefectException
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY
from prefect.utilities.annotations import quote

from blocks.store import StoreError
from flows.labels import label_current_run
from flows.runtime import RoutingRuntime, get_runtime
from routing.calls.chain import AttemptChain, CallTarget, PlannedCall
from routing.errors import RoutingError
from routing.models import Decision, RoutedResult, Task
from tasks.calls import SpooledCall, call_target, call_targets_on_cluster, seal_process_spools

DEFAULT_RUNTIME = "default"


def _call(runtime: RoutingRuntime) -> CallTarget:
    return lambda name, task: call_target(runtime.target(name), task)


def _run_name(decision: Decision, task: Task) -> str:
    return f"{task.task_type} -> {decision.pick} ({decision.strategy}, p={decision.probability:.2f})"


def _run_tags(decision: Decision, task: Task) -> list[str]:
    return ["adaptive-router", f"target:{decision.pick}", f"task-type:{task.task_type}"]


_STARTED: dict[str, AttemptChain] = {}
"""Chains `route()` started (chose) before entering the subflow, by task id: the subflow's tags are
then set when its run is created, and only its name is left to the background labeller."""


@flow(name="routed-call", persist_result=False)
def routed_call(task: Task, runtime: str = DEFAULT_RUNTIME) -> RoutedResult:
    """Route one task: choose a target, call it, fall back along the ranking, log every attempt.

    Raises AllTargetsFailedError, naming every target and why it failed (a budget's limit and spend
    included), when no attempt succeeded; a task a budget queued returns with `queued_until` instead.
    """
    routing = get_runtime(runtime)
    chain = _STARTED.pop(task.id, None)
    if chain is None:
        chain = AttemptChain.start(routing, task)
        renamed = label_current_run(_run_name(chain.decision, task), _run_tags(chain.decision, task), wait=False)
    else:  # route() chose already and the run was created with the decision's tags
        renamed = label_current_run(_run_name(chain.decision, task), wait=False)
    get_run_logger().info("%s: %s", chain.decision.pick, chain.decision.reason)
    try:
        result = chain.run(routing, _call(routing))
    finally:
        _settle(renamed)
    if not result.success and result.queued_until is None:
        raise chain.plan.error(task.id)
    return result


def _settle(renamed: Future | None) -> None:
    """Wait for the run's rename (it overlapped the call); a failed rename is logged, not raised."""
    if renamed is None:
        return
    try:
        renamed.result()
    except (httpx.HTTPError, PrefectException, OSError) as exc:  # a refused rename must not fail the call
        get_run_logger().warning("run not renamed: %s", exc)


_QUIET: dict[int, tuple[object, object]] = {}  # id(settings) -> (settings, the same without heartbeats)


@contextmanager
def fast_subflows() -> Iterator[None]:
    """Turn off flow-run heartbeats: joining the heartbeat thread adds up to ~1 s to every flow run.

    Prefect's `temporary_settings` rebuilds the settings on every entry (50-90 ms measured); the copy
    without heartbeats is built once per settings object in the process and re-entered after that.
    """
    context = get_settings_context()
    if context.settings.flows.heartbeat_frequency is None:
        yield
        return
    known = _QUIET.get(id(context.settings))
    if known is None or known[0] is not context.settings:
        quiet = context.settings.copy_with_update(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})
        known = _QUIET[id(context.settings)] = (context.settings, quiet)
    with SettingsContext(profile=context.profile, settings=known[1]):
        yield


def route(task: Task, runtime: str = DEFAULT_RUNTIME) -> RoutedResult:
    """Route one task through the `routed-call` subflow, with the subflow overhead kept low.

    The choice is made here, before the subflow starts, so its run is created with the decision's
    tags (no API call to add them) and renamed in the background.
    """
    routing = get_runtime(runtime)
    chain = AttemptChain.start(routing, task)
    _STARTED[task.id] = chain
    try:
        with fast_subflows(), tags(*_run_tags(chain.decision, task)):
            return routed_call(task, runtime)
    finally:
        _STARTED.pop(task.id, None)


@flow(name="route-batch", persist_result=False)
def route_batch(
    tasks: list[Task],
    runtime: str = DEFAULT_RUNTIME,
    concurrency: int = 8,
    ingest: bool = True,
    cluster_address: str | None = None,
    spool_url: str | None = None,
) -> list[RoutedResult]:
    """Route many tasks in one flow run, `concurrency` at a time, with a task run per attempt.

    Given `cluster_address` (a Dask scheduler, `tcp://host:8786`), the attempts run on that cluster's
    workers, a task run per worker's chunk of each wave, each worker process spooling its own segment in the
    runtime's spool directory (which every worker must reach), or shipping it to `spool_url` (any
    fsspec URL: s3://bucket/spool, a shared directory; default the store's `spool_url`) for workers on
    other machines; the flow chooses, budgets and learns. Segments shipped to a URL are ingested by the
    `ingest-outcomes` deployment (the single ingester).

    Tasks go in waves: each wave is chosen with everything learned from the waves before it (and what
    was published meanwhile: statistics, policies, experiments), its calls run concurrently, and
    failed attempts fall back to their next target within the wave.
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
    with _attempt_runner(routing, cluster_address, spool_url) as submit:
        for start in range(0, len(tasks), concurrency):
            if start:  # what a recalculation or a policy change published meanwhile (cheap: see refresh)
                routing.refresh()
            chains = []
            for task in tasks[start : start + concurrency]:
                try:
                    chains.append(AttemptChain.start(routing, task))
                except RoutingError as exc:  # no eligible target: this task fails, the batch goes on
                    unroutable += 1
                    logger.error("task %s not routed: %s", task.id, exc)
            _run_wave(routing, chains, submit)
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


Step = tuple[AttemptChain, PlannedCall]
Submit = Callable[[RoutingRuntime, list[Step]], list[Callable[[], tuple]]]
"""Starts a wave's attempts; per attempt, what waits for it: (AttemptResult, its spooled record or None)."""


def _local_submit(runtime: RoutingRuntime, steps: list[Step]) -> list[Callable[[], tuple]]:
    futures = [call_target.submit(runtime.target(call.target), chain.task) for chain, call in steps]
    return [lambda future=future: (future.result(), None) for future in futures]


@contextmanager
def _attempt_runner(
    runtime: RoutingRuntime, cluster_address: str | None, spool_url: str | None = None
) -> Iterator[Submit]:
    """Where attempts run: this flow's task runner (a task run per attempt), or a Dask cluster: there a
    wave goes as one chunk per worker, each chunk one task run of this flow that has a worker make its
    calls concurrently and spool their records (tasks/calls.py says why not a Prefect task run per
    worker). The workers' segments are sealed (and shipped to `spool_url`) when the batch ends."""
    if cluster_address is None:
        yield _local_submit
        return
    from distributed import Client

    spool = spool_url or runtime.store.remote_spool_url or str(runtime.store.spool_path.resolve())
    with Client(cluster_address) as client:
        workers = max(1, len(client.scheduler_info()["workers"]))

        def submit(runtime: RoutingRuntime, steps: list[Step]) -> list[Callable[[], tuple]]:
            share = -(-len(steps) // workers)
            waits: list[Callable[[], tuple]] = []
            for first in range(0, len(steps), share):
                chunk = steps[first : first + share]
                calls = [
                    SpooledCall(
                        target=runtime.target(call.target), task=chain.task, decision=chain.decision,
                        attempt=chain.next_attempt, estimate=call.estimate,
                        weight=runtime.detail_weight(chain.decision),
                    )
                    for chain, call in chunk
                ]
                future = call_targets_on_cluster.submit(quote(client), quote(calls), spool, len(calls))
                waits += [lambda future=future, i=i: future.result()[i] for i in range(len(chunk))]
            return waits

        try:
            yield submit
        finally:
            client.run(seal_process_spools)


def _run_wave(runtime: RoutingRuntime, chains: Sequence[AttemptChain], submit: Submit = _local_submit) -> None:
    """Run every chain's next call concurrently until all are done; retries wait their backoff first."""
    pending = list(chains)
    while pending:
        steps = [(chain, call) for chain in pending if (call := chain.next_call(runtime)) is not None]
        if not steps:
            return
        time.sleep(max(call.delay for _, call in steps))
        waits = submit(runtime, steps)
        for (chain, call), wait in zip(steps, waits):
            result, spooled = wait()
            chain.record(runtime, call, result, spooled)
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
