"""Schema 10 (executions without the primary-key index): a store written at version 9 migrates up and
back down keeping every row and value, and ingestion stays idempotent without the index (real files)."""

from __future__ import annotations

import shutil
import threading
from datetime import datetime

import duckdb
import pytest

from blocks.store import DuckDBStore
from blocks.store.migrations import HEAD
from routing import ExecutionRecord

EMBEDDING = [round(0.001 * i - 0.2, 3) for i in range(384)]


def records() -> list[ExecutionRecord]:
    """Generated (UUID) ids and ids a user chose, every optional field empty or set, an embedding."""
    full = dict(
        decision_id="decision ü/1", session_id="sess-1", description="prompt", repo="r", file_count=3,
        estimated_tokens=2**40, model_tier="small", pool_type="http", strategy="thompson",
        routing_confidence=0.25, complexity=0.5, quality_score=87.5, input_tokens=2**33, output_tokens=7,
        cost_estimate=1e-7, actual_cost=0.0123456789012345, error_type="timeout", error_message="slow",
        user_acceptance=False, user_rating=2, peak_memory_mb=1.5, cpu_time_ms=3.25, solution_summary="ok",
        embedding=EMBEDDING, metadata={"score": 0.5, "nested": {"a": [1, None]}},
    )
    return [
        ExecutionRecord(task_id="t-1", task_type="qa", target="a", success=True, duration_ms=1.0),
        ExecutionRecord(execution_id="my execution 1", task_id="my task", task_type="qa", target="b",
                        success=False, duration_ms=2.5, attempt=2, **full),
        ExecutionRecord(execution_id="0" * 32, task_id="f" * 32, task_type="code", target="a", success=True,
                        duration_ms=0.0, timestamp=datetime(2025, 1, 2, 3, 4, 5, 678901), **full),
    ]


def snapshot(store: DuckDBStore) -> list[tuple]:
    with store.read() as con:
        return con.execute("SELECT * FROM executions ORDER BY execution_id").fetchall()


def primary_keys(store: DuckDBStore) -> int:
    return store.query(
        "SELECT count(*) AS n FROM duckdb_constraints() WHERE table_name = 'executions' "
        "AND constraint_type = 'PRIMARY KEY'"
    )[0]["n"]


def test_a_version_9_store_migrates_up_and_down_keeping_every_row(store: DuckDBStore) -> None:
    store = store.model_copy(update={"auto_migrate": False})
    store.upgrade(to=9)
    written = records()
    for record in written:
        store.record_execution(record)
    assert store.ingest().executions == 3  # the loader works on a version-9 table as well
    store.query(  # NULL wherever the table allows it, which a record never leaves
        "INSERT INTO executions (execution_id, task_id, timestamp, task_type, target, success, duration_ms) "
        "VALUES ('raw', 'raw-task', '2025-05-05 00:00:00', 'qa', 'c', TRUE, 9.5)"
    )
    before = snapshot(store)
    assert len(before) == 4 and primary_keys(store) == 1

    size_at_9 = store.path.stat().st_size
    assert store.upgrade(to=10) == [10] and snapshot(store) == before and primary_keys(store) == 0
    assert store.path.stat().st_size <= size_at_9  # compacted: the old table's blocks are not kept
    assert store.query("SELECT count(*) AS n FROM duckdb_constraints() WHERE table_name = 'routing_decisions' "
                       "AND constraint_type = 'PRIMARY KEY'") == [{"n": 1}]  # the copy keeps other keys
    row = store.query("SELECT * FROM executions WHERE execution_id = 'my execution 1'")[0]
    assert list(row["embedding"]) == pytest.approx(EMBEDDING) and row["input_tokens"] == 2**33
    assert row["actual_cost"] == 0.0123456789012345 and row["decision_id"] == "decision ü/1"
    with pytest.raises(duckdb.ConstraintException, match="task_id"):  # NOT NULL kept
        store.query("INSERT INTO executions (execution_id, timestamp, task_type, target, success, duration_ms) "
                    "VALUES ('x', now()::TIMESTAMP, 'qa', 'a', TRUE, 1)")
    assert store.query("INSERT INTO executions (execution_id, task_id, timestamp, task_type, target, success, "
                       "duration_ms) VALUES ('d', 't', now()::TIMESTAMP, 'qa', 'a', TRUE, 1) RETURNING attempt") \
        == [{"attempt": 1}]  # DEFAULT kept
    store.query("DELETE FROM executions WHERE execution_id = 'd'")

    # ingesting the same records again adds nothing, a new one is added
    for record in written:
        store.record_execution(record)
    new = ExecutionRecord(task_id="t-2", task_type="qa", target="a", success=True, duration_ms=1.0)
    store.record_execution(new)
    report = store.ingest()
    assert (report.executions, report.duplicates) == (1, 3)
    assert len(snapshot(store)) == 5

    # a row written twice by hand (ingestion never does) goes down as its first copy
    store.query("INSERT INTO executions BY NAME SELECT * REPLACE (timestamp + INTERVAL 1 DAY AS timestamp, "
                "'second' AS target) FROM executions WHERE execution_id = 'raw'")
    assert store.downgrade(9) == [10] and primary_keys(store) == 1
    after = store.query("SELECT * FROM executions WHERE execution_id = ?", [new.execution_id])
    assert len(after) == 1
    store.query("DELETE FROM executions WHERE execution_id = ?", [new.execution_id])
    assert snapshot(store) == before

    # up to the head: every row kept, each weighing 1 (stored before telemetry sampling)
    assert store.upgrade() == [10, 11]
    assert store.query("SELECT count(*) AS n, min(weight) AS low, max(weight) AS high FROM executions") \
        == [{"n": 4, "low": 1.0, "high": 1.0}]


def test_threads_ingesting_copies_of_a_segment_store_each_row_once(store: DuckDBStore) -> None:
    """Connections of one process share the database: without the per-file ingest lock two threads
    could both find an id missing and both insert it (there is no primary key to refuse the second)."""
    sent = [ExecutionRecord(task_id=f"t{i}", task_type="qa", target="a", success=True, duration_ms=1.0)
            for i in range(1000)]
    with store:
        for record in sent:
            store.record_execution(record)
    (segment,) = store.spool_path.glob("*.jsonl")
    for copy in range(3):  # what a crash between commit and unlink, or a re-shipped segment, leaves
        shutil.copy(segment, segment.with_name(f"copy{copy}-{segment.name}"))
    store.upgrade()
    failures: list[BaseException] = []

    def ingest() -> None:
        try:
            store.ingest()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread below
            failures.append(exc)

    threads = [threading.Thread(target=ingest) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert store.query("SELECT count(*) AS n, count(DISTINCT execution_id) AS ids FROM executions") == [
        {"n": 1000, "ids": 1000}
    ]


def test_compact_gives_back_freed_blocks_and_keeps_the_store_usable(store: DuckDBStore) -> None:
    store.query("CREATE TABLE scratch AS SELECT md5(i::VARCHAR) AS x FROM range(100000) r(i)")
    store.query("CHECKPOINT")
    store.record_execution(ExecutionRecord(task_id="kept", task_type="qa", target="a", success=True, duration_ms=1))
    store.ingest()  # written after scratch: its blocks are freed in the middle of the file, not at the end
    store.query("CHECKPOINT")
    store.query("DROP TABLE scratch")
    store.query("CHECKPOINT")
    assert store.compact() > 1_000_000  # DuckDB keeps the dropped table's blocks as free space until then
    assert store.current_version() == HEAD and store.query("SELECT task_id FROM executions") == [{"task_id": "kept"}]
    assert not list(store.path.parent.glob(".*compacting*"))
