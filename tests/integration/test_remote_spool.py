"""The spool on an fsspec URL: segments from two processes, shipped to moto's S3 server on loopback and
to a plain directory, are ingested exactly once, however often the ingester runs."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import pytest
from remote_support import outcomes, remote_router

from blocks.store import DuckDBStore
from blocks.store.remote_spool import RemoteSpool, ingest_shipped
from blocks.store.spool import SpoolWriter
from routing.models import ExecutionRecord

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PER_PROCESS = 150


def write_and_ship(url: str, local: str, prefix: str, env: dict[str, str]) -> None:
    """One writer process: spool PER_PROCESS records in two segments, ship them, one left for next time."""
    os.environ.update(env)
    spool = RemoteSpool(url)
    writer = SpoolWriter(Path(local), max_records=100)
    for i in range(PER_PROCESS):
        writer.append("execution", ExecutionRecord(
            task_id=f"{prefix}-{i}", task_type="qa", target="a", success=True, duration_ms=float(i)
        ))
    spool.ship(Path(local))  # the full segment (100 records); the open one stays local
    writer.close()
    spool.ship(Path(local))  # the rest


def die_with_an_open_segment(url: str, env: dict[str, str]) -> None:
    """A worker process killed mid-batch: its segment of `url` stays open in this machine's outbox."""
    os.environ.update(env)
    from tasks.calls import process_spool

    writer = process_spool(url)
    for i in range(PER_PROCESS):
        writer.append("execution", ExecutionRecord(task_id=f"dead-{i}", task_type="qa", target="a", success=True, duration_ms=1.0))
    os._exit(0)  # no seal, no ship


def test_a_segment_a_dead_worker_left_in_the_outbox_is_shipped_by_the_next(tmp_path, store, monkeypatch) -> None:
    from tasks.calls import process_spool, seal_process_spools

    url = f"file://{tmp_path / 'shared'}"
    env = {"ADAPTIVE_ROUTER_OUTBOX": str(tmp_path / "outbox")}
    monkeypatch.setenv("ADAPTIVE_ROUTER_OUTBOX", env["ADAPTIVE_ROUTER_OUTBOX"])
    dead = mp.get_context("spawn").Process(target=die_with_an_open_segment, args=(url, env))
    dead.start()
    dead.join(timeout=180)
    assert dead.exitcode == 0 and RemoteSpool(url).shipped() == []
    process_spool(url).append("execution", ExecutionRecord(task_id="next", task_type="qa", target="a", success=True, duration_ms=1.0))
    assert seal_process_spools() == 2  # its own segment and the dead worker's
    assert ingest_shipped(store, RemoteSpool(url)).executions == PER_PROCESS + 1


def run_writers(url: str, tmp_path: Path, env: dict[str, str]) -> None:
    context = mp.get_context("spawn")
    writers = [
        context.Process(target=write_and_ship, args=(url, str(tmp_path / f"w{n}"), f"w{n}", env)) for n in range(2)
    ]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=180)
        assert w.exitcode == 0


def check_exactly_once(url: str, store: DuckDBStore) -> None:
    spool = RemoteSpool(url)
    assert len(spool.shipped()) == 4  # two segments from each process
    first = ingest_shipped(store, spool)
    assert first.executions == 2 * PER_PROCESS
    assert spool.shipped() == []  # deleted after their rows committed
    rows = store.query("SELECT task_id FROM executions")
    assert len(rows) == len({r["task_id"] for r in rows}) == 2 * PER_PROCESS
    assert ingest_shipped(store, spool).executions == 0


def test_segments_from_two_processes_on_s3_are_ingested_exactly_once(s3, tmp_path, store) -> None:
    run_writers("s3://spool/outcomes", tmp_path, s3)
    check_exactly_once("s3://spool/outcomes", store)


def test_a_segment_fetched_twice_after_a_crash_is_stored_once(s3, tmp_path, store) -> None:
    """The ingester died after committing but before deleting: the next run fetches it again."""
    run_writers("s3://spool/crash", tmp_path, s3)
    spool = RemoteSpool("s3://spool/crash")
    spool.fetch(store.spool_path)
    assert store.ingest().executions == 2 * PER_PROCESS  # committed; the shipped copies were not deleted
    assert ingest_shipped(store, spool).executions == 0  # fetched again, nothing added, now deleted
    assert spool.shipped() == [] and len(store.query("SELECT 1 FROM executions")) == 2 * PER_PROCESS


def test_segments_from_two_processes_in_a_directory_are_ingested_exactly_once(tmp_path, store) -> None:
    url = f"file://{tmp_path / 'shared'}"
    run_writers(url, tmp_path, {})
    check_exactly_once(url, store)


def test_published_state_on_s3_is_read_when_it_changes(s3, tmp_path) -> None:
    from datetime import UTC, datetime

    from blocks.store.remote_state import RemotePublishedReader, ship_published
    from routing.published import PublishedState

    local = tmp_path / "state.json"
    first = PublishedState(created_at=datetime(2026, 12, 1, tzinfo=UTC), capabilities={"a": {"math": 80.0}})
    local.write_text(first.model_dump_json())
    ship_published(local, "s3://spool/published")
    reader = RemotePublishedReader("s3://spool/published", interval=600)  # looks only when asked to
    nothing = RemotePublishedReader("s3://spool/nothing-yet", interval=600)
    try:
        assert reader.look_now(timeout=30) and reader.changed() == first
        assert reader.look_now(timeout=30) and reader.changed() is None  # unchanged: one HEAD, no download
        second = first.model_copy(update={"capabilities": {"a": {"math": 40.0}}})
        local.write_text(second.model_dump_json())
        ship_published(local, "s3://spool/published")
        assert reader.changed() is None  # shipped, not looked at yet: the call path does no I/O
        assert reader.look_now(timeout=30) and reader.changed() == second
        assert nothing.look_now(timeout=30) and nothing.changed() is None and nothing.lookout.failures == 0
    finally:
        reader.close()
        nothing.close()


# -- the ingest-outcomes deployment sweeps the URL --------------------------------------------------


def ingester_store(store: DuckDBStore, monkeypatch) -> None:
    """`store` as the flows' default store, holding one segment of its own left by a crashed run."""
    monkeypatch.setenv("ADAPTIVE_ROUTER_DB", str(store.path))
    store.record_execution(ExecutionRecord(task_id="local", task_type="qa", target="a", success=True, duration_ms=1.0))
    store.close()


def test_ingest_outcomes_sweeps_a_spool_url_on_s3(s3, prefect_harness, tmp_path, store, monkeypatch) -> None:
    from flows.maintenance import ingest_outcomes

    run_writers("s3://spool/deployment", tmp_path, s3)
    ingester_store(store, monkeypatch)
    report = ingest_outcomes(spool_url="s3://spool/deployment")
    assert (report.segments, report.executions) == (5, 2 * PER_PROCESS + 1)
    assert RemoteSpool("s3://spool/deployment").shipped() == []
    assert ingest_outcomes(spool_url="s3://spool/deployment").executions == 0
    assert len(store.query("SELECT DISTINCT task_id FROM executions")) == 2 * PER_PROCESS + 1


def test_ingest_outcomes_sweeps_the_saved_store_blocks_spool_url(prefect_harness, tmp_path, store, monkeypatch) -> None:
    """The deployment's default parameters: the URL comes from the store block (or the environment)."""
    from flows.maintenance import ingest_outcomes

    url = f"file://{tmp_path / 'shared'}"
    run_writers(url, tmp_path, {})
    ingester_store(store, monkeypatch)
    saved = DuckDBStore(database=str(store.path), spool_url=url)
    saved.save("remote-ingester", overwrite=True)
    assert DuckDBStore.load("remote-ingester").remote_spool_url == url
    assert ingest_outcomes(store="remote-ingester").executions == 2 * PER_PROCESS + 1
    assert RemoteSpool(url).shipped() == []
    run_writers(url, tmp_path, {})  # the writers ship a second batch
    monkeypatch.setenv("ADAPTIVE_ROUTER_SPOOL_URL", url)
    again = ingest_outcomes()  # no store named: the default store, the URL from the environment
    assert (again.segments, again.executions, again.duplicates) == (4, 2 * PER_PROCESS, 0)
    assert RemoteSpool(url).shipped() == []
    assert len(store.query("SELECT execution_id FROM executions")) == 4 * PER_PROCESS + 1


def test_spool_and_published_urls_are_checked_by_name(monkeypatch) -> None:
    from routing.errors import ConfigError

    with pytest.raises(ValueError, match="spool_url must be an fsspec URL"):
        DuckDBStore(spool_url="/shared/spool")
    with pytest.raises(ValueError, match="unknown fsspec protocol 'nfs'"):
        DuckDBStore(published_url="nfs://host/state")
    monkeypatch.setenv("ADAPTIVE_ROUTER_PUBLISHED_URL", "bogus://x")
    with pytest.raises(ConfigError, match=r"unknown fsspec protocol 'bogus'.*\$ADAPTIVE_ROUTER_PUBLISHED_URL"):
        DuckDBStore().remote_published_url  # noqa: B018


# -- the published state: shipped after recalculation, read by routers on other machines ------------


def check_published_both_ends(url: str, store: DuckDBStore, tmp_path: Path, monkeypatch) -> None:
    from blocks.store.snapshots import load_published, published_path
    from flows.recalculate import recalculate_stats
    from routing.models import Task

    monkeypatch.setenv("ADAPTIVE_ROUTER_DB", str(store.path))
    monkeypatch.setenv("ADAPTIVE_ROUTER_PUBLISHED_URL", url)
    runtime, strategy, names = remote_router(tmp_path, url)
    assert strategy.snapshot is None  # nothing shipped yet
    for record in outcomes(names, "qa"):
        store.record_execution(record)
    store.close()
    report = recalculate_stats()
    assert report.shipped == f"{url}/state.json"
    local = load_published(published_path(store))
    assert runtime.published.look_now(timeout=30)
    runtime.refresh()
    assert strategy.snapshot == local.snapshot and {e.task_type for e in local.snapshot.entries} == {"qa"}
    assert runtime.choose(Task(task_type="qa", payload="?")).pick == names[1]

    assert recalculate_stats().shipped is None  # nothing new: the shipped state stands
    for record in outcomes(names, "code", 50):
        store.record_execution(record)
    store.close()
    assert recalculate_stats().shipped == f"{url}/state.json"
    assert runtime.published.look_now(timeout=30)
    runtime.refresh()
    assert {e.task_type for e in strategy.snapshot.entries} == {"qa", "code"}
    runtime.close()


def test_published_state_shipped_to_s3_reaches_a_router_elsewhere(s3, prefect_harness, tmp_path, store, monkeypatch) -> None:
    check_published_both_ends("s3://spool/state", store, tmp_path, monkeypatch)


def test_published_state_shipped_to_a_directory_reaches_a_router_elsewhere(prefect_harness, tmp_path, store, monkeypatch) -> None:
    check_published_both_ends(f"file://{tmp_path / 'shared-state'}", store, tmp_path, monkeypatch)


def test_an_unreadable_published_url_keeps_the_last_state(tmp_path, caplog) -> None:
    from datetime import UTC, datetime

    from blocks.store.remote_state import RemotePublishedReader, ship_published
    from routing.published import PublishedState

    url = f"file://{tmp_path / 'published'}"
    local = tmp_path / "state.json"
    local.write_text(PublishedState(created_at=datetime(2026, 12, 1, tzinfo=UTC)).model_dump_json())
    ship_published(local, url)
    reader = RemotePublishedReader(url, interval=600)
    try:
        assert reader.look_now(timeout=30) and reader.changed() is not None
        (tmp_path / "published" / "state.json").unlink()
        (tmp_path / "published" / "state.json").mkdir()  # unreadable as a file: an OSError from the backend
        assert reader.look_now(timeout=30) and reader.changed() is None
        assert reader.lookout.failures == 1 and "published state.json at" in caplog.text
        assert "cannot be reached, going on with what this process has" in caplog.text
    finally:
        reader.close()


def test_an_invalid_published_document_is_logged_and_the_last_one_kept(tmp_path, caplog) -> None:
    from blocks.store.remote_state import RemotePublishedReader

    url = f"file://{tmp_path / 'published'}"
    (tmp_path / "published").mkdir()
    (tmp_path / "published" / "state.json").write_text('{"created_at": "not a time"}')
    reader = RemotePublishedReader(url, interval=600)
    try:
        assert reader.look_now(timeout=30) and reader.changed() is None
        assert "published state.json at" in caplog.text and "is invalid, keeping the last one" in caplog.text
        assert reader.lookout.failures == 0  # the URL answered: no backoff
    finally:
        reader.close()


# -- breaker gossip under the published URL: workers on other machines avoid a dead target ----------


def gossiping_boards(url: str, storage_options: dict | None = None):
    """Two 'processes' gossiping at `url`: the finder publishes whenever one of its breakers changes."""
    from blocks.store.gossip import BreakerGossip
    from routing.calls.breaker import BreakerBoard, BreakerConfig

    config = BreakerConfig(failure_threshold=2, open_timeout_seconds=60)
    gossips: list[BreakerGossip] = []
    finder = BreakerBoard(config, on_transition=lambda _t: gossips[0].publish())
    other = BreakerBoard(config)
    gossips += [  # a long interval: every look is one the test asks for
        BreakerGossip(url, finder, interval=600, storage_options=storage_options, name="host-a-1.json"),
        BreakerGossip(url, other, interval=600, storage_options=storage_options, name="host-b-2.json"),
    ]
    return finder, other, gossips


def trip(board, target: str) -> None:
    from routing.models import AttemptResult, ErrorType

    for _ in range(2):
        board.record(AttemptResult(target=target, ok=False, duration_ms=1.0, error_type=ErrorType.CONNECTION))


def test_a_breaker_opened_on_one_machine_is_avoided_by_another_through_s3(s3) -> None:
    from flows.runtime import gossip_location

    url = gossip_location(DuckDBStore(published_url="s3://spool/gossip/"))
    assert url == "s3://spool/gossip/breakers"
    finder, other, (publisher, reader) = gossiping_boards(url)
    try:
        assert reader.lookout.look_now(timeout=30) and other.available("dead")  # nothing published: no peers
        trip(finder, "dead")  # opens: the finder's thread is woken to write its own file
        assert not finder.available("dead")
        assert publisher.lookout.look_now(timeout=30)  # written by the time this look ends
        assert other.available("dead")  # not looked since
        assert reader.lookout.look_now(timeout=30) and not other.available("dead")
        assert other.available("alive")
        assert reader.peers().keys() == {"dead"}  # its own file (none yet) is not a peer's
        import boto3  # a third machine, its own S3 client: the reader's cached listing must not hide it

        until = time.time() + 60
        boto3.client("s3").put_object(Bucket="spool", Key="gossip/breakers/host-c-3.json",
                                      Body=json.dumps({"slow": until}))  # fmt: skip
        assert reader.lookout.look_now(timeout=30) and not other.available("slow") and not other.available("dead")
    finally:
        publisher.close()
        reader.close()


def test_an_unreachable_gossip_url_logs_once_and_never_fails_a_call(caplog) -> None:
    closed = {  # loopback port 1: refused at once; one attempt, no backoff
        "client_kwargs": {"endpoint_url": "http://127.0.0.1:1"},
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1},
        "key": "testing", "secret": "testing",
    }
    pytest.importorskip("s3fs")
    finder, other, (publisher, reader) = gossiping_boards("s3://nowhere/breakers", closed)
    try:
        trip(finder, "dead")  # the write the transition asks for fails on the thread: the breaker still opens
        assert not finder.available("dead")
        assert publisher.lookout.look_now(timeout=60) and publisher.lookout.failures >= 1
        assert publisher.lookout.look_now(timeout=60)  # the write is retried, and fails again
        other.adopt_peers({"known": 1e12})  # what an earlier look found
        assert reader.lookout.look_now(timeout=60) and reader.lookout.look_now(timeout=60)
        assert reader.lookout.delay >= 4 * reader.lookout.interval  # backing off
        assert not other.available("known") and other.available("dead")  # the last adopted view stays
    finally:
        publisher.close()
        reader.close()
    logged = [r.getMessage() for r in caplog.records if "breaker gossip" in r.getMessage()]
    assert len(logged) == 2 and all("cannot be reached" in m for m in logged)  # once per outage and process
