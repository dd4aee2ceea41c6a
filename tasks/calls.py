"""The task that calls one target once: one task run per attempt, so the UI shows every attempt.

It is a sync task over the adapters' async `execute`: on Prefect 3.8 a sync subflow with a sync task
costs ~0.17 s, while an async subflow costs ~2.2 s and a sync one awaiting an async task ~1.2 s
(benchmarks/bench_subflow.py). `run_coro_as_sync` runs every call on Prefect's one shared event loop,
so pooled HTTP clients are reused across calls and threads.
"""

from __future__ import annotations

import hashlib
import pickle
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.utilities.asyncutils import run_coro_as_sync

from blocks.store.remote_spool import RemoteSpool, outbox
from blocks.store.spool import SpoolWriter
from blocks.targets.base import TargetBlock
from routing.calls.outcomes import build_record
from routing.models import AttemptResult, Decision, ErrorType, ExecutionRecord, Task


@task(
    name="call-target",
    task_run_name="call {target.target_name}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def call_target(target: TargetBlock, task: Task) -> AttemptResult:
    """Run `task` on `target`; an adapter that raises is reported as a failed attempt, not a crash."""
    return _execute(target, task)


def _execute(target: TargetBlock, task: Task) -> AttemptResult:
    started = time.perf_counter()
    try:
        return run_coro_as_sync(target.execute(task))
    except Exception as exc:  # noqa: BLE001 -- a broken adapter must not lose the outcome or stop the chain
        return AttemptResult(
            target=target.target_name,
            ok=False,
            duration_ms=(time.perf_counter() - started) * 1000,
            error_type=ErrorType.INTERNAL,
            error_message=target.redact(f"adapter {type(target).__name__} raised {type(exc).__name__}: {exc}"),
        )


_writers: dict[str, SpoolWriter] = {}
_writers_lock = threading.Lock()


def process_spool(spool: str) -> SpoolWriter:
    """This process's writer for a spool (a directory, or an fsspec URL whose segments are written to
    this machine's outbox for it and shipped on sealing): one open segment per process."""
    with _writers_lock:
        writer = _writers.get(spool)
        if writer is None:
            writer = _writers[spool] = SpoolWriter(outbox(spool) if "://" in spool else Path(spool))
        return writer


def seal_process_spools() -> int:
    """Seal every segment this process has open (shipping those of URL spools), so the ingester may take
    them; returns how many segments were shipped."""
    shipped = 0
    with _writers_lock:
        for spool, writer in _writers.items():
            writer.close()
            if "://" in spool:
                shipped += len(RemoteSpool(spool).ship(writer.directory))
    return shipped


_warm_targets: dict[str, TargetBlock] = {}


def _warm(target: TargetBlock) -> TargetBlock:
    """The copy of `target` this process already holds, with its connections open: every call shipped
    to a worker brings a fresh copy, whose first call pays for a new client (~45 ms measured)."""
    key = hashlib.sha256(pickle.dumps(target)).hexdigest()  # secrets included, only as a digest
    with _writers_lock:
        return _warm_targets.setdefault(key, target)


@dataclass(frozen=True)
class SpooledCall:
    """One attempt for a worker elsewhere to make and spool: everything its record needs."""

    target: TargetBlock
    task: Task
    decision: Decision
    attempt: int
    estimate: float
    weight: float | None = 1.0  # the sampled row's weight; None: learned from, not stored


@task(
    name="call-targets-on-cluster",
    task_run_name="call {count} targets on the cluster",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def call_targets_on_cluster(client: Any, calls: list[SpooledCall], spool: str, count: int) -> list[tuple[AttemptResult, ExecutionRecord]]:
    """One task run (in the flow's process) per chunk of attempts sent to a Dask worker: `spool_calls`
    runs there as a plain Dask task (~10 ms there and back). A Prefect task run on the worker instead
    (prefect-dask's DaskTaskRunner) takes ~140 ms: ~50 ms per submit in the flow (Prefect's settings and
    flow run, the batch's parameters included, serialised and tokenised; ~115 ms with 500 tasks), the
    rest on the worker (settings rebuilt, API clients opened per task run): route-batch at 0.23-0.40x
    one process (benchmarks/bench_dask_runner.py). Pass `client` and `calls` wrapped in `quote()`:
    Prefect need not walk them."""
    return client.submit(spool_calls, calls, spool, pure=False).result()


def spool_calls(calls: list[SpooledCall], spool: str) -> list[tuple[AttemptResult, ExecutionRecord]]:
    """`call_target` for a worker process elsewhere (a Dask worker), for several attempts at once, made
    concurrently: each attempt's record is spooled here, in this process's own segment of `spool` (a
    directory or an fsspec URL), before the results go back to the flow; an attempt the sampling left
    out (`weight` None) is only sent back."""
    writer = process_spool(spool)

    def one(call: SpooledCall) -> tuple[AttemptResult, ExecutionRecord]:
        result = _execute(_warm(call.target), call.task)
        record = build_record(call.task, call.decision, call.target.descriptor(), result, call.attempt, call.estimate,
                              call.weight or 1.0)
        if call.weight is not None:
            writer.append("execution", record)
        return result, record

    with ThreadPoolExecutor(max_workers=max(1, len(calls))) as pool:
        return list(pool.map(one, calls))
