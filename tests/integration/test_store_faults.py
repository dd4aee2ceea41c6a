"""Fault classes of issue 10 on real DuckDB files and real subprocesses: poison records, the writer /
ingester race (widened), truncated and locked stores, a full spool."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from store_support import HOLD_LOCK, run_child
from typer.testing import CliRunner

from blocks.store import DuckDBStore, StoreCorruptError, check_store
from blocks.store.spool import SpoolWriter
from routing.models import ExecutionRecord

pytestmark = pytest.mark.integration

def execution_ids(store: DuckDBStore) -> list[str]:
    return [r["execution_id"] for r in store.query("SELECT execution_id FROM executions")]


def good(i: int) -> ExecutionRecord:
    return ExecutionRecord(execution_id=f"good-{i:04d}", task_id=f"t{i}", task_type="qa", target="a",
                           success=True, duration_ms=1.0 + i)


def line(data: dict, kind: str = "execution") -> str:
    return json.dumps({"kind": kind, "data": data})


# -- 1. poison records ------------------------------------------------------------------------------


WRITE_GOOD = """
    import sys
    from blocks.store import DuckDBStore
    from routing.models import ExecutionRecord
    store = DuckDBStore(database=sys.argv[1])
    for i in range(int(sys.argv[2]), int(sys.argv[3])):
        store.record_execution(ExecutionRecord(execution_id=f"good-{i:04d}", task_id=f"t{i}", task_type="qa",
                                               target="a", success=True, duration_ms=1.0 + i))
    store.writer().close()
"""


@pytest.mark.slow
def test_poison_between_good_records_stops_nothing(store: DuckDBStore) -> None:
    """Segments before and after a poisoned one, from real writer processes; the store at schema 5,
    where token counts are still INTEGER, so a count of 2^40 passes validation but DuckDB refuses it."""
    store = store.model_copy(update={"auto_migrate": False})
    store.upgrade(to=5)
    assert run_child(WRITE_GOOD, str(store.path), "0", "100").wait() == 0
    poisoned = [line(good(i).model_dump(mode="json")) for i in range(100, 110)]
    poisoned.insert(3, line(good(900).model_dump(mode="json") | {"input_tokens": 2**40}))  # DuckDB refuses
    poisoned.insert(6, line(good(901).model_dump(mode="json") | {"file_count": 2**40}))  # validation refuses
    surrogate = line(good(902).model_dump(mode="json")).replace('"error_message": null', '"error_message": "x\\ud800y"')
    poisoned.insert(8, surrogate)  # passes pydantic, breaks DuckDB's JSON reader: cleaned and flagged
    poisoned.insert(9, '{"kind": "decision", "data": {"probability": NaN}}')
    (store.spool_path / "zz-poisoned.jsonl").write_text("\n".join(poisoned) + "\n")
    assert run_child(WRITE_GOOD, str(store.path), "110", "200").wait() == 0

    report = store.ingest()

    stored = set(execution_ids(store))
    assert {f"good-{i:04d}" for i in range(200)} <= stored
    assert "good-0902" in stored and "good-0900" not in stored and "good-0901" not in stored
    row = store.query("SELECT error_message, metadata FROM executions WHERE execution_id = 'good-0902'")[0]
    assert row["error_message"] == "x\ufffdy" and json.loads(row["metadata"])["sanitised"] == ["error_message"]
    reasons = {r.line: r.reason for r in report.rejected}
    assert len(reasons) == 3 and reasons[4].startswith("refused by the store") and "1099511627776" in reasons[4]
    assert "file_count" in reasons[7]
    kept = [json.loads(x) for x in (store.spool_path / "rejected" / "zz-poisoned.rejected.jsonl").read_text().splitlines()]
    assert [k["line"] for k in kept] == [4, 7, 10] and all(k["raw"] for k in kept)
    assert not list(store.spool_path.glob("*.jsonl")) and not list(store.spool_path.glob("*.open"))

    again = store.ingest()
    assert again.segments == 0 and again.rejected == [] and len(execution_ids(store)) == len(stored)


def test_at_head_schema_a_huge_token_count_is_stored(store: DuckDBStore) -> None:
    store.record_execution(good(1).model_copy(update={"input_tokens": 2**40}))
    assert store.ingest().rejected == []
    assert store.query("SELECT input_tokens FROM executions") == [{"input_tokens": 2**40}]


# -- 2. the writer / ingester race, widened -----------------------------------------------------------

SLOW_LOCK_WRITER = """
    import fcntl, sys, time
    from blocks.store import DuckDBStore
    from blocks.store.spool import SpoolWriter
    from routing.models import ExecutionRecord

    real_flock = fcntl.flock
    def slow_flock(fd, operation):  # widen the window between creating a segment and locking it
        if operation & fcntl.LOCK_EX:
            time.sleep(0.3)
        return real_flock(fd, operation)
    fcntl.flock = slow_flock

    store = DuckDBStore(database=sys.argv[1])
    store._writer = SpoolWriter(store.spool_path, max_records=3)  # a new segment every 3 records
    for i in range(int(sys.argv[2])):
        record = ExecutionRecord(task_id=f"race-{i}", task_type="qa", target="a", success=True, duration_ms=1.0)
        store.record_execution(record)
        print(record.execution_id, flush=True)  # acknowledged
    store.writer().close()
    print("pending", store.writer().pending, flush=True)
"""


@pytest.mark.slow
def test_an_ingester_in_the_widened_creation_window_loses_nothing(store: DuckDBStore) -> None:
    store.upgrade()
    child = run_child(SLOW_LOCK_WRITER, str(store.path), "60", stderr=subprocess.PIPE)
    sweeps = 0
    while child.poll() is None:
        store.ingest(seal=False)  # as fast as it can: every new segment is looked at in its window
        sweeps += 1
    out, err = child.communicate()
    assert child.returncode == 0, err
    *acknowledged, pending = out.split("\n")[:-1]
    assert pending == "pending 0" and "Traceback" not in err and "at risk" not in err
    store.ingest(seal=False)
    stored = execution_ids(store)
    assert sweeps > 10
    assert sorted(stored) == sorted(acknowledged) and len(acknowledged) == 60


# -- 3. truncated, corrupt and locked stores ------------------------------------------------------


def filled(store: DuckDBStore, n: int = 2000) -> DuckDBStore:
    for i in range(n):
        store.record_execution(good(i))
    store.ingest()
    with store.connect() as con:
        con.execute("CHECKPOINT")
    return store


@pytest.mark.slow
def test_a_truncated_store_fails_with_one_clear_line_in_check_and_stats(store: DuckDBStore) -> None:
    filled(store)
    os.truncate(store.path, 12288)
    report = check_store(store.path)
    assert not report.ok and len(report.lines()) == 1
    assert report.lines()[0].startswith(f"{store.path} is not a DuckDB database, or is corrupt or truncated")
    assert "db check" in report.lines()[0]
    with pytest.raises(StoreCorruptError, match="restore it from a backup"):
        store.query("SELECT count(*) FROM executions")

    from flows.cli import app

    result = CliRunner().invoke(app, ["stats", "--database", str(store.path)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output and str(store.path) in result.output.replace("\n", "")
    assert "corrupt or truncated" in result.output


def test_check_finds_damage_past_the_header(store: DuckDBStore) -> None:
    filled(store)
    healthy = check_store(store.path)
    assert healthy.ok and {t.table: t.rows for t in healthy.tables}["executions"] == 2000
    os.truncate(store.path, store.path.stat().st_size // 2)
    damaged = check_store(store.path)
    assert not damaged.ok and any(t.error for t in damaged.tables)
    assert "DAMAGED" in damaged.lines()[0]


def test_reads_do_not_wait_on_a_writer_holding_the_lock(store: DuckDBStore) -> None:
    filled(store, 300)
    holder = run_child(HOLD_LOCK, str(store.path), stdin=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "holding"
        store.record_execution(good(5000))
        store.writer().close()
        assert store.ingest(seal=False, wait=False).locked  # the write path sees the lock...
        # ...the read path reads a snapshot: committed rows only, the holder's open transaction not
        assert store.query("SELECT count(*) AS n FROM executions") == [{"n": 300}]
        assert store.query("SELECT count(*) AS n FROM budgets") == [{"n": 0}]
        assert check_store(store.path).ok
    finally:
        holder.stdin.close()
        holder.wait()
    assert store.ingest().executions == 1


# -- 4. a full spool ------------------------------------------------------------------------------

FULL_DISK_WRITER = """
    import resource, signal, sys
    from blocks.store import DuckDBStore
    from routing.models import ExecutionRecord
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG, like ENOSPC
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100, hard))  # no line fits
    store = DuckDBStore(database=sys.argv[1])
    ids = []
    for i in range(30):
        record = ExecutionRecord(task_id=f"full-{i}", task_type="qa", target="a", success=True, duration_ms=1.0,
                                 description="x" * 200)
        store.record_execution(record)  # must not raise although the spool is full
        ids.append(record.execution_id)
    print("held", store.writer().pending, flush=True)
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space again
    print("after", store.writer().flush_pending(), flush=True)
    store.writer().close()
    print(" ".join(ids), flush=True)
"""


@pytest.mark.slow
def test_a_full_spool_holds_outcomes_in_memory_and_writes_them_later(store: DuckDBStore) -> None:
    child = run_child(FULL_DISK_WRITER, str(store.path), stderr=subprocess.PIPE)
    out, err = child.communicate()
    assert child.returncode == 0, err
    held, after, ids = out.strip().split("\n")
    assert held == "held 30" and after == "after 0"
    assert "outcomes at risk" in err and "writable again" in err and "Traceback" not in err
    report = store.ingest()
    assert report.rejected == []  # the line the full disk cut short was removed, then written whole
    assert sorted(execution_ids(store)) == sorted(ids.split())


def test_an_unwritable_spool_never_raises_into_the_caller(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the spool directory should be")
    told = []
    writer = SpoolWriter(blocked / "spool", on_trouble=told.append)
    for i in range(5):
        writer.append("execution", good(i))
    assert writer.pending == 5 and len(told) == 1 and "outcomes at risk" in told[0]
    blocked.unlink()
    shutil.rmtree(blocked, ignore_errors=True)
    assert writer.flush_pending() == 0 and "writable again" in told[-1]
    writer.close()
    assert sum(len(p.read_text().splitlines()) for p in (blocked / "spool").glob("*.jsonl")) == 5
