"""Why route-batch's cluster path sends plain Dask tasks: what one Prefect task run costs through
prefect-dask's DaskTaskRunner, against a plain Dask task and a task run on the flow's thread pool.

Each row is the median wall time of submitting a no-op and waiting for its result, from inside a flow
run, on a LocalCluster of 2 worker processes (Prefect's test harness as the API):
  plain dask task        `client.submit(fn, pure=False).result()`: what route-batch's chunks pay
  task run, thread pool  `noop.submit().result()` on the flow's default task runner
  task run, dask runner  `DaskTaskRunner.submit(noop, ...)`, the flow's parameters small
  ... flow with N tasks  the same from a flow given N Tasks as a parameter (route-batch's `tasks`)
`submit_ms` is the part spent in the flow before the call returns a future. prefect-dask serialises
Prefect's context (the settings, the flow run with its parameters) on every submit and dask tokenises it;
the worker rebuilds the settings and opens API clients for every task run (PrefectHQ/prefect#18191).

prefect-dask comes with the `bench` extra (`make install` installs it):
    python benchmarks/bench_dask_runner.py [--quick]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from common import report

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def _timed(submit: Callable[[], Any], repeat: int) -> dict:
    """Median ms from calling `submit` to its future returning, and to its result being back."""
    submit().result()  # the first call opens connections and imports on the worker
    submitted, done = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        future = submit()
        submitted.append((time.perf_counter() - start) * 1000)
        future.result()
        done.append((time.perf_counter() - start) * 1000)
    return {"median_ms": statistics.median(done), "submit_ms": statistics.median(submitted)}


def main(quick: bool) -> list[dict]:
    from distributed import LocalCluster
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect.testing.utilities import prefect_test_harness
    from prefect_dask import DaskTaskRunner

    from flows.demo import demo_tasks
    from flows.route import fast_subflows

    repeat, n_tasks = (10, 500) if quick else (40, 2000)

    @task(cache_policy=NO_CACHE, persist_result=False)
    def noop(x: int) -> int:
        return x

    def plain(x: int) -> int:
        return x

    rows: list[dict] = []

    @flow(persist_result=False)
    def measure(tasks: list, address: str, label: str) -> None:
        with DaskTaskRunner(address=address) as runner:
            if not tasks:
                client = runner.client
                rows.append({"call": "plain dask task", **_timed(lambda: client.submit(plain, 1, pure=False), repeat)})
                rows.append({"call": "task run, thread pool", **_timed(lambda: noop.submit(1), repeat)})
            rows.append({"call": label, **_timed(lambda: runner.submit(noop, parameters={"x": 1}), repeat)})

    with (
        prefect_test_harness(server_startup_timeout=180),
        LocalCluster(n_workers=2, threads_per_worker=4, processes=True, dashboard_address=None) as cluster,
        fast_subflows(),
    ):
        measure([], cluster.scheduler_address, "task run, dask runner")
        measure(demo_tasks(n_tasks, seed=7), cluster.scheduler_address, f"... flow with {n_tasks} tasks")
    plain_ms = rows[0]["median_ms"]
    for r in rows:
        r["vs_plain_dask"] = r["median_ms"] / plain_ms
    report("dask_runner", "One task from a flow run to a Dask worker and back (LocalCluster, 2 processes)", rows)
    return rows


if __name__ == "__main__":
    main("--quick" in sys.argv[1:])
