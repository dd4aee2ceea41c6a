"""The task that calls one target once: one task run per attempt, so the UI shows every attempt.

It is a sync task over the adapters' async `execute`: on Prefect 3.8 a sync subflow with a sync task
costs ~0.17 s, while an async subflow costs ~2.2 s and a sync one awaiting an async task ~1.2 s
(benchmarks/bench_subflow.py). `run_coro_as_sync` runs every call on Prefect's one shared event loop,
so pooled HTTP clients are reused across calls and threads.
"""

from __future__ import annotations

import time

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.utilities.asyncutils import run_coro_as_sync

from blocks.targets.base import TargetBlock
from routing.models import AttemptResult, ErrorType, Task


@task(
    name="call-target",
    task_run_name="call {target.target_name}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def call_target(target: TargetBlock, task: Task) -> AttemptResult:
    """Run `task` on `target`; an adapter that raises is reported as a failed attempt, not a crash."""
    started = time.perf_counter()
    try:
        return run_coro_as_sync(target.execute(task))
    except Exception as exc:  # a broken adapter must not lose the outcome or stop the fallback chain
        return AttemptResult(
            target=target.target_name,
            ok=False,
            duration_ms=(time.perf_counter() - started) * 1000,
            error_type=ErrorType.INTERNAL,
            error_message=target.redact(f"adapter {type(target).__name__} raised {type(exc).__name__}: {exc}"),
        )
