"""The DuckDB store: migrations, idempotent ingestion of the spool, and its errors (real files)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from blocks.store import DuckDBStore, StoreError, StoreLockedError
from blocks.store.migrations import HEAD, MIGRATIONS
from routing import Decision, ExecutionRecord

TABLES = {
    "executions", "routing_decisions", "feedback", "benchmark_results", "solutions",
    "policies", "policy_adjustments", "policy_snapshots", "q_table", "experiments",
    "experiment_assignments", "experiment_metrics",
}


def record(i: int, **fields) -> ExecutionRecord:
    return ExecutionRecord(task_id=f"task-{i}", task_type="qa", target="a", success=i % 2 == 0,
                           duration_ms=10.0 + i, actual_cost=0.001 * i, metadata={"i": i}, **fields)


def tables(store: DuckDBStore) -> set[str]:
    return {r["table_name"] for r in store.query("SELECT table_name FROM information_schema.tables")}


def test_upgrade_creates_every_table_and_records_versions(store: DuckDBStore) -> None:
    store = store.model_copy(update={"auto_migrate": False})
    assert store.current_version() == 0
    assert store.upgrade() == [m.version for m in MIGRATIONS]
    assert store.current_version() == HEAD
    assert tables(store) >= TABLES and "quality_policies" not in tables(store)  # dropped: nothing used it
    assert store.upgrade() == []


def test_migration_round_trip_keeps_data(store: DuckDBStore) -> None:
    store.upgrade()
    for i in range(3):
        store.record_execution(record(i))
    store.ingest()
    store.query("INSERT INTO session_state VALUES ('s', 'a', 'math', '[]', 1, now()::TIMESTAMP)")
    assert store.downgrade(1) == list(range(HEAD, 1, -1))
    assert "session_state" not in tables(store)
    assert store.query("SELECT count(*) AS n FROM executions") == [{"n": 3}]
    assert store.upgrade() == list(range(2, HEAD + 1))
    assert store.query("SELECT task_id FROM executions ORDER BY task_id") == [
        {"task_id": f"task-{i}"} for i in range(3)
    ]
    assert store.downgrade(0) == list(range(HEAD, 0, -1)) and tables(store) == {"schema_migrations"}


def test_a_fresh_store_migrates_itself_on_first_use(store: DuckDBStore) -> None:
    assert store.query("SELECT count(*) AS n FROM executions") == [{"n": 0}]
    assert store.current_version() == HEAD


def test_unknown_schema_version_is_named(store: DuckDBStore) -> None:
    with pytest.raises(StoreError, match="schema version 99 does not exist; versions run from 0 to"):
        store.upgrade(99)


def test_ingest_is_idempotent_and_keeps_every_field(store: DuckDBStore, tmp_path: Path) -> None:
    original = record(4, embedding=[0.5, 0.25] * 192, user_rating=5, session_id="s1")
    store.record_execution(original)
    store.record_decision(Decision(task_id="task-4", task_type="qa", strategy="weighted", candidates=(),
                                   pick="a", probability=0.9, reason="best"))
    first = store.ingest()
    assert (first.executions, first.decisions, first.duplicates, first.segments) == (1, 1, 0, 1)
    # the same records spooled again (a retried ingestion, a copied segment) add nothing
    store.record_execution(original)
    second = store.ingest()
    assert (second.executions, second.duplicates) == (0, 1)
    row = store.query("SELECT * FROM executions")[0]
    assert row["execution_id"] == original.execution_id
    assert list(row["embedding"]) == [0.5, 0.25] * 192 and row["user_rating"] == 5 and json.loads(row["metadata"]) == {"i": 4}
    assert row["actual_cost"] == pytest.approx(0.004)
    assert list(store.spool_path.glob("*.jsonl")) == []


def test_malformed_lines_are_kept_aside_and_reported(store: DuckDBStore) -> None:
    store.record_execution(record(1))
    store.writer().close()
    segment = next(store.spool_path.glob("*.jsonl"))
    good = segment.read_text()
    bad_record = json.loads(good)
    bad_record["data"]["duration_ms"] = -5
    segment.write_text(good + "{not json\n" + json.dumps(bad_record) + "\n" + '{"kind": "mystery", "data": {}}\n')
    report = store.ingest()
    assert report.executions == 1
    reasons = {line.line: line.reason for line in report.rejected}
    assert set(reasons) == {2, 3, 4}
    assert "not JSON" in reasons[2]
    assert reasons[3].startswith("duration_ms:")
    assert "mystery" in reasons[4]
    kept = (store.spool_path / "rejected").glob("*.rejected.jsonl")
    assert sum(len(p.read_text().splitlines()) for p in kept) == 3


def test_locked_store_raises_after_timeout_and_loses_nothing(store: DuckDBStore) -> None:
    store.upgrade()
    store.record_execution(record(1))
    script = (
        "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(30)"
    )
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", script, str(store.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        impatient = store.model_copy(update={"lock_timeout_seconds": 0.3})
        with pytest.raises(StoreLockedError, match="stayed locked .* stay in the spool"):
            impatient.ingest()
        # a routed call still logs while the file is locked
        impatient.record_execution(record(2))
    finally:
        holder.kill()
        holder.wait()
    report = store.ingest()
    assert report.executions == 2


def test_file_that_is_not_duckdb_is_named(tmp_path: Path) -> None:
    path = tmp_path / "notes.duckdb"
    path.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(StoreError, match=f"{path} is not a DuckDB database"):
        DuckDBStore(database=str(path)).current_version()


def test_uncreatable_directory_is_named() -> None:
    with pytest.raises(StoreError, match="cannot create the store directory /proc/no-such-process"):
        DuckDBStore(database="/proc/no-such-process/r.duckdb").current_version()


def test_path_under_a_file_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match=f"cannot create the store directory {blocker}"):
        DuckDBStore(database=str(blocker / "r.duckdb")).current_version()


def test_default_path_and_environment_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ADAPTIVE_ROUTER_DB", raising=False)
    assert DuckDBStore().path == Path(".adaptive-router/router.duckdb")
    monkeypatch.setenv("ADAPTIVE_ROUTER_DB", str(tmp_path / "env.duckdb"))
    assert DuckDBStore().path == tmp_path / "env.duckdb"
    assert DuckDBStore(database="explicit.duckdb").path == Path("explicit.duckdb")


def test_store_file_is_a_real_duckdb_database(store: DuckDBStore) -> None:
    store.upgrade()
    with duckdb.connect(str(store.path), read_only=True) as con:
        assert con.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == HEAD
