"""route-batch over a local Dask cluster of worker processes sharing one spool, against one process.

Both runs route the same tasks to the local fleet through `route-batch` on a temporary Prefect server
(Prefect's test harness); the Dask run's calls run on a LocalCluster of `--workers` (>= 2) processes
(a task run of the flow per worker's chunk of each wave) that spool into the same directory, then the
store ingests. Each timed run follows an untimed warm-up batch of WARM_UP other tasks. `lost` counts
attempts the flow saw that no table row holds, `duplicated` spooled lines of an execution already
spooled (rows are keyed by execution id, so a duplicate could never reach the table twice; the count
says whether one was written). Hot-path and memory figures come from bench_choose, in this process.

    python benchmarks/bench_scale.py [--quick] [--json PATH] [--workers N]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from common import report

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
WARM_UP = 32
"""Tasks routed, untimed, before each timed run: imports, HTTP clients and the workers' first segment
are paid once by a long-lived cluster, not per batch."""


def spooled_execution_ids(spool: Path) -> Counter:
    ids: Counter = Counter()
    for segment in spool.iterdir():
        if segment.is_file():
            for line in segment.read_text().splitlines():
                record = json.loads(line)
                if record["kind"] == "execution":
                    ids[record["data"]["execution_id"]] += 1
    return ids


def run(tasks, targets, scratch: Path, label: str, cluster_address: str | None, concurrency: int) -> dict:
    from blocks.store import DuckDBStore
    from flows.route import fast_subflows, route_batch
    from flows.runtime import RoutingRuntime, register_runtime

    store = DuckDBStore(database=str(scratch / f"{label}.duckdb"))
    register_runtime(label, RoutingRuntime.build(targets, store))
    start = time.perf_counter()
    with fast_subflows():
        results = route_batch(tasks, runtime=label, concurrency=concurrency, ingest=False,
                              cluster_address=cluster_address)
    seconds = time.perf_counter() - start
    store.close()
    spooled = spooled_execution_ids(store.spool_path)
    report_ = store.ingest()
    attempts = {a.execution_id for r in results for a in r.attempts}
    stored = {r["execution_id"] for r in store.query("SELECT execution_id FROM executions")}
    return {
        "run": label, "tasks": len(results), "attempts": len(attempts), "seconds": seconds,
        "tasks_per_s": len(results) / seconds, "ingested": report_.executions,
        "lost": len(attempts - stored), "duplicated": sum(n - 1 for n in spooled.values() if n > 1),
    }


def main(quick: bool, json_path: str | None, workers: int) -> dict:
    import bench_choose
    from distributed import LocalCluster
    from prefect.testing.utilities import prefect_test_harness

    from blocks.fleet.config import STABLE_FLEET_PATH, load_fleet_config
    from blocks.fleet.launcher import FleetServer
    from blocks.fleet.targets import fleet_targets
    from flows.demo import demo_tasks
    from routing.errors import RoutingError

    n_tasks = 500 if quick else 2000
    config = load_fleet_config(STABLE_FLEET_PATH)
    rows = []
    with (
        prefect_test_harness(server_startup_timeout=180),
        FleetServer(config) as fleet,
        tempfile.TemporaryDirectory() as scratch,
    ):
        targets = fleet_targets(config, fleet.base_url)

        def routable(task) -> bool:
            from routing import Router

            try:
                return bool(Router([t.descriptor() for t in targets]).eligible(task))
            except RoutingError:
                return False

        routable_tasks = [t for t in demo_tasks(n_tasks * 2, seed=7) if routable(t)]
        tasks, warm_up = routable_tasks[:n_tasks], routable_tasks[n_tasks : n_tasks + WARM_UP]
        run(warm_up, targets, Path(scratch), "single-warm-up", None, 16)
        rows.append(run(tasks, targets, Path(scratch), "single", None, 16))
        with LocalCluster(n_workers=workers, threads_per_worker=4, processes=True,
                          dashboard_address=None) as cluster:
            run(warm_up, targets, Path(scratch), "dask-warm-up", cluster.scheduler_address, 16)
            rows.append(run(tasks, targets, Path(scratch), "dask", cluster.scheduler_address, 16))
    single, dask = rows
    report("scale", f"route-batch: one process vs a Dask LocalCluster of {workers} processes", rows)
    hot = bench_choose.latency_rows(2_000 if quick else 20_000)
    memory = bench_choose.memory_rows(200 if quick else 1000, 20, 5)
    result = {
        "dask_workers": workers,
        "tasks": dask["tasks"],
        "attempts": dask["attempts"],
        "lost": dask["lost"],
        "duplicated": dask["duplicated"],
        "throughput_tasks_per_s": dask["tasks_per_s"],
        "single_process_tasks_per_s": single["tasks_per_s"],
        "throughput_vs_single": dask["tasks_per_s"] / single["tasks_per_s"],
        "runs": rows,
        "hot_path": hot,
        "memory": memory,
    }
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    args = sys.argv[1:]
    main(
        "--quick" in args,
        args[args.index("--json") + 1] if "--json" in args else None,
        int(args[args.index("--workers") + 1]) if "--workers" in args else 2,
    )
