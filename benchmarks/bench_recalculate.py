"""Statistics recalculation, summary refresh, dashboard queries and storage at 100k, 1M and 10M executions.

Synthetic executions are generated inside DuckDB (20 targets, 12 task types, 6 categories, 4 tiers,
3 pools, 30 days in time order, three 32-hex-digit ids per row, no text or embeddings), then:

  full recalculation     blocks/store/stats.recalculate(full=True): every (target, task type) from scratch
  incremental            the same after 1,000 new executions of one target
  publish                the state file rebuilt from the tables (what routers load)
  refresh <summary>      each summary table rebuilt in one transaction over the 90-day horizon
  dashboard p95          typical dashboard reads of the summary tables on an open connection, and the
                         same answers computed from raw executions (the baseline the summaries replace)
  bytes per execution    the database file after CHECKPOINT: the rows written at schema 9 (primary key on
                         execution_id), the same store after migration 10 (the real file, and the blocks
                         in use), and copies with the ids as UUIDs and without the id columns
  ingestion              records spooled as routed calls spool them, then `DuckDBStore.ingest()` into the
                         store at schema 9 and after migration 10; then the same segment again (all
                         duplicates), as a retried ingest sees it
  pandas baseline        the recalculation's aggregates done by loading the rows into pandas instead

Aims: full recalculation of 10M under 10 s, summary queries under 50 ms p95, <= 120 bytes per execution.

    python benchmarks/bench_recalculate.py [--quick]      (--quick: 100k only, under a minute)
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
from common import report

from blocks.store import DuckDBStore
from blocks.store.snapshots import publish
from blocks.store.stats import recalculate
from blocks.store.summaries import Summary, rebuild
from routing import ExecutionRecord

START = datetime(2025, 5, 16)
NOW = START + timedelta(days=30)
GENERATE = """
INSERT INTO executions (execution_id, task_id, decision_id, attempt, timestamp, task_type, category, target,
                        model_tier, pool_type, strategy, success, duration_ms, quality_score, input_tokens,
                        output_tokens, cost_estimate, actual_cost, error_type)
SELECT replace(gen_random_uuid()::VARCHAR, '-', ''), replace(gen_random_uuid()::VARCHAR, '-', ''),
       replace(gen_random_uuid()::VARCHAR, '-', ''), 1,
       ?::TIMESTAMP + to_microseconds((i * ?)::BIGINT), 'type' || tt,
       ['coding', 'math', 'research', 'language', 'empathy', 'general'][1 + tt % 6], 'target' || t,
       ['small', 'standard', 'premium', 'specialist'][1 + t % 4], ['shared', 'dedicated', 'spot'][1 + t % 3],
       'thompson', ok, (40 + 15 * t) * exp((random() + random() + random() - 1.5) * 0.8),
       CASE WHEN ok THEN 60 + 40 * random() ELSE 40 * random() END, 200 + (i % 500), 100 + (i % 300),
       0.0001 * (1 + t), 0.0001 * (1 + t) * (0.5 + random()), CASE WHEN NOT ok THEN ['timeout', 'server_error', 'wrong_answer'][1 + (i % 3)] END
FROM (SELECT i, (hash(i * 13) % 20)::BIGINT AS t, (hash(i) % 12)::BIGINT AS tt, random() < 0.6 + 0.015 * (hash(i * 13) % 20)::BIGINT AS ok
      FROM range(?) r(i))
"""
DASHBOARD = {
    "tier performance, last 7 days": (
        "SELECT day, model_tier, success_rate, p95_latency_ms, total_cost FROM tier_daily_performance "
        "WHERE day >= ?::DATE ORDER BY day, model_tier",
        "SELECT timestamp::DATE AS day, model_tier, avg(success::INT), quantile_cont(duration_ms, 0.95), "
        "sum(actual_cost) FROM executions WHERE timestamp >= ?::DATE GROUP BY ALL ORDER BY 1, 2",
        [NOW - timedelta(days=7)],
    ),
    "pool performance, last 24 h": (
        "SELECT hour, pool_type, success_rate, p50_latency_ms, mean_cost FROM pool_hourly_performance "
        "WHERE hour >= ? ORDER BY hour, pool_type",
        "SELECT date_trunc('hour', timestamp), pool_type, avg(success::INT), quantile_cont(duration_ms, 0.5), "
        "avg(actual_cost) FROM executions WHERE timestamp >= ? GROUP BY ALL ORDER BY 1, 2",
        [NOW - timedelta(hours=24)],
    ),
    "solution patterns of a category": (
        "SELECT task_type, target, success_rate, mean_quality, top_error_type FROM solution_patterns "
        "WHERE category = ? ORDER BY executions DESC LIMIT 20",
        "SELECT task_type, target, avg(success::INT), avg(quality_score), mode(error_type) FROM executions "
        "WHERE category = ? GROUP BY ALL ORDER BY count(*) DESC LIMIT 20",
        ["math"],
    ),
    "target scores of a task type": (
        "SELECT target, n, success_rate, success_low, success_high, p95_latency_ms, success_p FROM target_stats "
        "WHERE task_type = ? ORDER BY success_rate DESC",
        "SELECT target, count(*), avg(success::INT), quantile_cont(duration_ms, 0.95) FROM executions "
        "WHERE task_type = ? GROUP BY ALL ORDER BY 3 DESC",
        ["type3"],
    ),
}


def timed(fn, repeat: int) -> list[float]:
    """Wall time of each call in milliseconds."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[18]


def row(size: str, measure: str, value: float, unit: str, aim: str = "", met: bool | None = None) -> dict:
    verdict = "" if met is None else ("met" if met else "MISSED")
    return {
        "executions": size,
        "measure": measure,
        "value": value,
        "unit": unit,
        "aim": aim,
        "verdict": verdict,
    }


def generate(con: duckdb.DuckDBPyConnection, n: int) -> float:
    step_us = 30 * 86400e6 / n
    started = time.perf_counter()
    con.execute(GENERATE, [START, step_us, n])
    return time.perf_counter() - started


def file_bytes(path: Path) -> int:
    return path.stat().st_size + sum(p.stat().st_size for p in path.parent.glob(path.name + ".wal"))


def in_use_bytes(con: duckdb.DuckDBPyConnection) -> int:
    """Bytes of the blocks the database uses: the file less the blocks freed by a dropped table, which
    DuckDB reuses for new data but does not give back to the file system."""
    block_size, used = con.execute("SELECT block_size, used_blocks FROM pragma_database_size()").fetchone()
    return block_size * used


def storage(con: duckdb.DuckDBPyConnection, path: Path, n: int) -> dict[str, float]:
    """Bytes per execution of copies: the ids as 16-byte UUIDs, and without the three id columns."""
    sizes: dict[str, float] = {}
    n = con.execute("SELECT count(*) FROM executions").fetchone()[0]
    uuids = "REPLACE (execution_id::UUID AS execution_id, task_id::UUID AS task_id, decision_id::UUID AS decision_id)"
    variants = {
        "copy with the ids as UUID": (f"CREATE TABLE v.e AS SELECT * {uuids} FROM executions",),
        "copy with the ids as UUID, primary key": (
            f"CREATE TABLE v.e AS SELECT * {uuids} FROM executions LIMIT 0",
            "ALTER TABLE v.e ADD PRIMARY KEY (execution_id)",
            f"INSERT INTO v.e SELECT * {uuids} FROM executions",
        ),
        "copy without the id columns": (
            "CREATE TABLE v.e AS SELECT * EXCLUDE (execution_id, task_id, decision_id) FROM executions",
        ),
    }
    for name, statements in variants.items():
        copy = path.with_name(f"variant-{len(sizes)}.duckdb")
        con.execute(f"ATTACH '{copy}' AS v")
        for statement in statements:
            con.execute(statement)
        con.execute("DETACH v")
        sizes[name] = file_bytes(copy) / n
    return sizes


def spool(directory: Path, count: int) -> Path:
    """`count` executions spooled as routed calls spool them (fresh ids), sealed; returns the spool."""
    spooler = DuckDBStore(database=str(directory / "spooler.duckdb"))
    with spooler:
        for i in range(count):
            spooler.record_execution(ExecutionRecord(
                task_id=f"task-{i}", task_type=f"type{i % 12}", target=f"target{i % 20}", model_tier="small",
                pool_type="http", strategy="thompson", success=i % 3 > 0, duration_ms=40.0 + i % 97,
                quality_score=float(i % 100), input_tokens=200 + i % 500, output_tokens=100 + i % 300,
                cost_estimate=0.0001, actual_cost=0.00012, metadata={"score": 0.5},
            ))  # fmt: skip
    return spooler.spool_path


def ingestion(store: DuckDBStore, spooled: Path, repeat: int = 3) -> tuple[float, float]:
    """Median rows per second of `store.ingest()` over the spooled segments, new and then all duplicates;
    each repeat on a fresh copy of the store's file."""
    original = store.path.with_name("ingest-original.duckdb")
    shutil.copy(store.path, original)
    rates: list[tuple[float, float]] = []
    for _ in range(repeat):
        shutil.copy(original, store.path)
        pair = []
        for _ in range(2):
            shutil.copytree(spooled, store.spool_path, dirs_exist_ok=True)
            count = sum(1 for segment in store.spool_path.glob("*.jsonl") for _ in segment.open())
            started = time.perf_counter()
            report = store.ingest()
            seconds = time.perf_counter() - started
            assert report.executions + report.duplicates == count and not report.rejected, report
            pair.append(count / seconds)
        rates.append((pair[0], pair[1]))
    original.unlink()
    return statistics.median(r[0] for r in rates), statistics.median(r[1] for r in rates)


def pandas_baseline(con: duckdb.DuckDBPyConnection) -> None:
    frame = con.execute("SELECT target, task_type, success, duration_ms, actual_cost FROM executions").df()
    grouped = frame.groupby(["target", "task_type"])
    grouped.agg(n=("success", "size"), successes=("success", "sum"), mean=("duration_ms", "mean"),
                sd=("duration_ms", "std"), cost=("actual_cost", "mean"))  # fmt: skip
    grouped["duration_ms"].quantile([0.5, 0.95, 0.99])


def migrated(n: int, label: str, path: Path, spooled: Path) -> tuple[DuckDBStore, list[dict]]:
    """A store with `n` executions written at schema 9, measured, then migrated to the latest schema
    (`upgrade()`, which compacts the file after migration 10) and measured again: the same rows, the
    real file. Ingestion is timed on copies at each schema."""
    store = DuckDBStore(database=str(path), auto_migrate=False)
    store.upgrade(to=9)
    with store.connect() as con:
        seconds = generate(con, n)
        con.execute("CHECKPOINT")
        before = file_bytes(path) / n
    print(f"{label}: generated in {seconds:.1f} s", flush=True)
    at_9 = path.with_name("at-schema-9.duckdb")
    shutil.copy(path, at_9)
    ingest_9 = ingestion(DuckDBStore(database=str(at_9), auto_migrate=False), spooled)
    at_9.unlink()
    started = time.perf_counter()
    store.upgrade()
    migration_s = time.perf_counter() - started
    with store.connect() as con:
        con.execute("CHECKPOINT")
        after, in_use = file_bytes(path) / n, in_use_bytes(con) / n
    head = f"schema {store.current_version()}"
    at_head = path.with_name("at-head.duckdb")
    shutil.copy(path, at_head)
    ingest_head = ingestion(DuckDBStore(database=str(at_head)), spooled)
    at_head.unlink()
    rows = [
        row(label, f"bytes per execution, {name}", size, "bytes (file / rows)", "<= 120", size <= 120)
        for name, size in (("schema 9 as written", before), (f"{head}, the migrated file", after),
                           (f"{head}, blocks in use", in_use))
    ]  # fmt: skip
    rows.append(row(label, f"migration to {head} (incl. compaction)", migration_s * 1000, "ms"))
    for schema, (new, again) in (("schema 9", ingest_9), (head, ingest_head)):
        rows.append(row(label, f"ingest new rows, {schema}", new, "rows/s, median of 3"))
        rows.append(row(label, f"ingest duplicates, {schema}", again, "rows/s, median of 3"))
    return store, rows


def measure(n: int, label: str, directory: Path, dashboards: bool, spooled: Path) -> list[dict]:
    path = directory / f"{label}.duckdb"
    store, rows = migrated(n, label, path, spooled)
    with store.connect() as con:
        full = timed(lambda: recalculate(con, NOW, full=True), 3)
        rows.append(row(label, "full recalculation", statistics.median(full), "ms median of 3",
                        "< 10,000 ms at 10M" if n == 10_000_000 else "",
                        statistics.median(full) < 10_000 if n == 10_000_000 else None))  # fmt: skip

        incremental = []
        for _ in range(3):  # 1,000 new executions of one target, then time the recalculation alone
            con.execute(GENERATE.replace("(hash(i * 13) % 20)::BIGINT", "0::BIGINT"), [NOW, 1.0, 1000])
            incremental += timed(lambda: recalculate(con, NOW), 1)
        rows.append(
            row(label, "incremental (1k new, 1 target)", statistics.median(incremental), "ms median of 3")
        )
        for summary in Summary:
            refresh = timed(lambda s=summary: rebuild(con, s, NOW, 90), 3)
            rows.append(row(label, f"refresh {summary.value}", statistics.median(refresh), "ms median of 3"))
        baseline = timed(lambda: pandas_baseline(con), 1)[0]
        rows.append(row(label, "pandas baseline of the aggregates", baseline, "ms",
                        f"pandas / full recalculation = {baseline / statistics.median(full):.1f}x"))  # fmt: skip
        if dashboards:
            for name, (summary_sql, raw_sql, params) in DASHBOARD.items():
                on_summary = timed(lambda q=summary_sql, p=params: con.execute(q, p).fetchall(), 200)
                on_raw = timed(lambda q=raw_sql, p=params: con.execute(q, p).fetchall(), 10)
                rows.append(row(label, f"dashboard p95: {name}", p95(on_summary), "ms, open connection",
                                f"< 50 ms; raw executions p95 {p95(on_raw):,.0f} ms", p95(on_summary) < 50))  # fmt: skip
        sizes = storage(con, path, n)
    if dashboards:

        def read_with_connect() -> None:
            with store.connect(read_only=True) as con:
                con.execute(
                    DASHBOARD["tier performance, last 7 days"][0],
                    DASHBOARD["tier performance, last 7 days"][2],
                ).fetchall()

        rows.append(row(label, "dashboard p95 incl. connect+close", p95(timed(read_with_connect, 40)), "ms",
                        "a read-only connection per request", None))  # fmt: skip
    publish_ms = timed(lambda: publish(store, "benchmark"), 3)
    rows.append(row(label, "publish state file", statistics.median(publish_ms), "ms median of 3"))
    for name, size in sizes.items():
        rows.append(row(label, f"bytes per execution, {name}", size, "bytes (file / rows)"))
    return rows


def main(quick: bool) -> None:
    sizes = [(100_000, "100k")] + ([] if quick else [(1_000_000, "1M"), (10_000_000, "10M")])
    rows = []
    with tempfile.TemporaryDirectory() as spool_directory:
        spooled = spool(Path(spool_directory), 2_000 if quick else 10_000)
        for n, label in sizes:
            with tempfile.TemporaryDirectory() as directory:
                rows += measure(n, label, Path(directory), dashboards=n == sizes[-1][0], spooled=spooled)
    report(
        "recalculate",
        "Recalculation, summaries, dashboard reads and storage by number of executions",
        rows,
        notes="DuckDB on this machine; synthetic rows without text or embeddings; ids are 32 hex digits; "
        "ingestion: 2,000 (--quick) or 10,000 spooled records into the store holding the rows above.",
    )


if __name__ == "__main__":
    main("--quick" in sys.argv)
