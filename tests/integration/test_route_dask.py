"""route-batch on a Dask cluster (LocalCluster, 2 worker processes): every attempt lands exactly once."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from blocks.fleet.targets import fleet_targets
from blocks.store import DuckDBStore
from flows.demo import demo_tasks
from flows.route import route_batch
from flows.runtime import RoutingRuntime, register_runtime, unregister_runtime
from routing.errors import RoutingError

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def cluster() -> Iterator:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster


@pytest.fixture
def runtime(prefect_harness, fleet, store: DuckDBStore) -> Iterator[RoutingRuntime]:
    runtime = RoutingRuntime.build(fleet_targets(fleet.config, fleet.base_url)[:3], store)
    register_runtime("dask", runtime)
    yield runtime
    unregister_runtime("dask")


def test_dask_route_batch_loses_and_duplicates_nothing(cluster, runtime: RoutingRuntime, store) -> None:
    capable = [t for t in demo_tasks(80, seed=3) if _routable(runtime, t)]
    tasks = capable[:40]
    assert len(tasks) == 40
    results = route_batch(tasks, runtime="dask", concurrency=8, ingest=False, cluster_address=cluster.scheduler_address)
    assert len(results) == len(tasks)
    attempts = [a for r in results for a in r.attempts]

    segments = [p.name for p in store.spool_path.iterdir() if p.is_file()]
    writers = {name.split("-")[-2] for name in segments}  # <host>-<pid>-<id>.jsonl or .open
    worker_pids = {str(pid) for pid in _worker_pids(cluster)}
    assert worker_pids <= writers and len(worker_pids) == 2  # each worker spooled a segment of its own
    assert str(os.getpid()) in writers  # the flow spooled the decisions (its segment still open)

    report = store.ingest()
    assert (report.executions, report.decisions) == (len(attempts), len(tasks))
    rows = store.query("SELECT execution_id, task_id, attempt FROM executions")
    assert len(rows) == len({r["execution_id"] for r in rows}) == len(attempts)
    assert {r["execution_id"] for r in rows} == {a.execution_id for a in attempts}
    assert store.ingest().executions == 0  # nothing left to ingest twice


def _routable(runtime: RoutingRuntime, task) -> bool:
    try:
        return bool(runtime.router.eligible(task))
    except RoutingError:
        return False


def _worker_pids(cluster) -> set[int]:
    from distributed import Client

    with Client(cluster) as client:
        return set(client.run(os.getpid).values())


def test_dask_workers_ship_to_s3_and_ingest_outcomes_stores_each_attempt_once(
    s3, prefect_harness, fleet, store: DuckDBStore, monkeypatch, tmp_path
) -> None:
    """Workers 'on other machines' (their own spool directories) ship their segments to moto's S3 server;
    the ingest-outcomes flow, reading the URL from the store, stores every attempt exactly once."""
    distributed = pytest.importorskip("distributed")
    from blocks.store.remote_spool import RemoteSpool
    from flows.maintenance import ingest_outcomes

    url = "s3://spool/dask"
    monkeypatch.setenv("ADAPTIVE_ROUTER_OUTBOX", str(tmp_path / "outbox"))  # inherited by the workers
    remote = store.model_copy(update={"spool_url": url})
    runtime = RoutingRuntime.build(fleet_targets(fleet.config, fleet.base_url)[:3], remote)
    register_runtime("dask-s3", runtime)
    tasks = [t for t in demo_tasks(60, seed=4) if _routable(runtime, t)][:24]
    try:  # the cluster starts after the s3 fixture: its workers inherit the endpoint, credentials, outbox
        with distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None) as cluster:
            results = route_batch(tasks, runtime="dask-s3", concurrency=8, ingest=False,
                                  cluster_address=cluster.scheduler_address)
    finally:
        unregister_runtime("dask-s3")
    attempts = {a.execution_id for r in results for a in r.attempts}
    assert len(results) == len(tasks) and len(RemoteSpool(url).shipped()) == 2  # one segment per worker
    remote.close()  # the flow's own segment (the decisions), as a finished run leaves it
    monkeypatch.setenv("ADAPTIVE_ROUTER_DB", str(store.path))
    monkeypatch.setenv("ADAPTIVE_ROUTER_SPOOL_URL", url)
    report = ingest_outcomes()
    assert (report.executions, report.decisions) == (len(attempts), len(tasks))
    rows = store.query("SELECT execution_id FROM executions")
    assert len(rows) == len(attempts) and {r["execution_id"] for r in rows} == attempts
    assert RemoteSpool(url).shipped() == [] and ingest_outcomes().executions == 0
