"""Outcome logging across real processes: a killed writer, concurrent writers, concurrent ingesters."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from blocks.store import DuckDBStore

pytestmark = pytest.mark.integration

WRITER = textwrap.dedent(
    """
    import sys
    from blocks.store import DuckDBStore
    from routing import ExecutionRecord
    store = DuckDBStore(database=sys.argv[1])
    for i in range(int(sys.argv[2])):
        record = ExecutionRecord(task_id=f"{sys.argv[3]}-{i}", task_type="qa", target="a", success=True,
                                 duration_ms=1.0)
        store.record_execution(record)
        print(record.execution_id, flush=True)  # acknowledged: the call has returned
    store.writer().close()
    """
)


def writer(store: DuckDBStore, count: int, tag: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(store.path), str(count), tag],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2],
    )


def execution_ids(store: DuckDBStore) -> list[str]:
    return [r["execution_id"] for r in store.query("SELECT execution_id FROM executions")]


def test_killed_writer_loses_nothing_acknowledged_and_recovery_duplicates_nothing(store: DuckDBStore) -> None:
    child = writer(store, 1_000_000, "killed")
    acknowledged = [child.stdout.readline().strip() for _ in range(300)]
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()
    assert list(store.spool_path.glob("*.open")), "the dead writer's segment is left open"

    first = store.ingest()
    stored = execution_ids(store)
    assert set(acknowledged) <= set(stored)
    assert len(stored) == len(set(stored))
    # a torn last line (killed mid-write) is kept aside and reported, never silently dropped
    assert len(first.rejected) <= 1

    second = store.ingest()
    assert second.executions == 0 and execution_ids(store) == stored


def test_two_writers_at_once_lose_nothing(store: DuckDBStore) -> None:
    children = [writer(store, 400, tag) for tag in ("left", "right")]
    acknowledged = []
    while any(c.poll() is None for c in children):
        store.ingest(seal=False)  # an ingester running while both write
    for child in children:
        acknowledged += child.stdout.read().split()
        child.stdout.close()
        assert child.returncode == 0
    store.ingest()
    stored = execution_ids(store)
    assert len(acknowledged) == 800
    assert sorted(stored) == sorted(acknowledged)


def test_two_ingesters_at_once_duplicate_nothing(store: DuckDBStore) -> None:
    child = writer(store, 500, "solo")
    child.wait()
    child.stdout.close()
    script = "import sys; from blocks.store import DuckDBStore; DuckDBStore(database=sys.argv[1]).ingest()"
    ingesters = [
        subprocess.Popen([sys.executable, "-c", script, str(store.path)], cwd=Path(__file__).parents[2])
        for _ in range(2)
    ]
    assert [p.wait() for p in ingesters] == [0, 0]
    stored = execution_ids(store)
    assert len(stored) == len(set(stored)) == 500
