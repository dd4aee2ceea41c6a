"""The spool on an fsspec URL: segments from two processes, shipped to moto's S3 server on loopback and
to a plain directory, are ingested exactly once, however often the ingester runs."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

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


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    moto_server = pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import boto3

    boto3.client("s3").create_bucket(Bucket="spool")
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.stop()


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
    reader = RemotePublishedReader("s3://spool/published", interval=0.0)
    assert reader.changed() == first
    assert reader.changed() is None  # unchanged: one HEAD, no download
    second = first.model_copy(update={"capabilities": {"a": {"math": 40.0}}})
    local.write_text(second.model_dump_json())
    ship_published(local, "s3://spool/published")
    assert reader.changed() == second
    assert RemotePublishedReader("s3://spool/nothing-yet").changed() is None
