"""Sustained outcome logging: records per second from 1 and from 4 processes, spool versus direct DuckDB.

  spool            each call appends a line to its process's spool segment (what routed calls do)
  ingest           then one ingestion moves every spooled record into DuckDB (records per second of it)
  direct DuckDB    the baseline: each record opens the file, inserts one row and closes, retrying on the
                   lock (the naive design that makes calls wait on one another)

    python benchmarks/bench_logging.py [--quick]
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

from common import report

from blocks.store import DuckDBStore
from routing import ExecutionRecord


def make_record(process: int, i: int) -> ExecutionRecord:
    return ExecutionRecord(task_id=f"p{process}-{i}", task_type="qa", target="a", success=i % 3 != 0,
                           duration_ms=12.5, actual_cost=0.0001, input_tokens=20, output_tokens=40)


def spool_worker(database: str, process: int, count: int, barrier, times) -> None:
    store = DuckDBStore(database=database)
    records = [make_record(process, i) for i in range(count)]
    barrier.wait()
    start = time.time()
    for record in records:
        store.record_execution(record)
    store.writer().close()
    times.put((start, time.time()))


def direct_worker(database: str, process: int, count: int, barrier, times) -> None:
    store = DuckDBStore(database=database, lock_timeout_seconds=600)
    columns = "execution_id, task_id, task_type, target, success, duration_ms, timestamp"
    records = [make_record(process, i) for i in range(count)]
    barrier.wait()
    start = time.time()
    for r in records:
        with store.connect() as con:
            con.execute(f"INSERT INTO executions ({columns}) VALUES (?, ?, ?, ?, ?, ?, now()::TIMESTAMP)",
                        [r.execution_id, r.task_id, r.task_type, r.target, r.success, r.duration_ms])
    times.put((start, time.time()))


def run(worker, database: str, processes: int, per_process: int) -> float:
    """Records per second, all processes together, from the common start to the last one's end."""
    ctx = mp.get_context("spawn")
    barrier, times = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(database, p, per_process, barrier, times)) for p in range(processes)]
    for p in procs:
        p.start()
    spans = [times.get() for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"{worker.__name__} exited with {p.exitcode}")
    return processes * per_process / (max(end for _, end in spans) - min(start for start, _ in spans))


def main(quick: bool) -> None:
    spooled = 5_000 if quick else 50_000
    direct = 100 if quick else 400
    rows = []
    for processes in (1, 4):
        with tempfile.TemporaryDirectory() as scratch:
            database = str(Path(scratch) / "bench.duckdb")
            store = DuckDBStore(database=database)
            store.upgrade()
            spool_rate = run(spool_worker, database, processes, spooled // processes)
            start = time.perf_counter()
            ingested = store.ingest().executions
            ingest_rate = ingested / (time.perf_counter() - start)
            direct_rate = run(direct_worker, database, processes, direct // processes)
        rows.append({
            "processes": processes,
            "spool_records_per_s": spool_rate,
            "ingest_records_per_s": ingest_rate,
            "direct_duckdb_records_per_s": direct_rate,
            "spool_vs_direct": spool_rate / direct_rate,
        })
    notes = f"spool: {spooled} records per row; direct: {direct}; timed from a common start, imports excluded"
    report("logging", "Sustained outcome logging", rows, notes)


if __name__ == "__main__":
    main("--quick" in sys.argv)
