"""Logging overhead per routed outcome at detail sampling rates 1.0, 0.1 and 0.01 (issue 15).

Each routed outcome here is one decision and one attempt, logged through the runtime exactly as a
routed call logs them (`record_decision`, `record`): the sampling decision, the spooled lines and,
with `events`, a Prefect event each (captured in memory by Prefect's asserting client; the worker
thread's sending is off the routed call either way). Learning is left out (it is the same at every
rate and measured in bench_choose), so the figure is the logging alone. Each repeat logs `outcomes`
pre-built outcomes into a fresh spool; the table shows the median over repeats of the logging time per
outcome (us_per_outcome), the share of it saved against rate 1.0, the spool bytes per outcome and the
time to ingest the batch (a scheduled flow's cost, with ~0.1-0.5 s of it fixed per ingest).

    python benchmarks/bench_sampling.py [--quick] [--json PATH]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import report

from blocks.store import DuckDBStore
from blocks.targets.http import OpenAICompatibleTarget
from flows.runtime import RoutingRuntime
from routing.calls.outcomes import build_record
from routing.calls.sampling import DetailSampling
from routing.models import AttemptResult, Task

RATES = (1.0, 0.1, 0.01)


def outcomes(count: int, runtime: RoutingRuntime) -> list[tuple]:
    """`count` (decision, record) pairs as a routed call makes them, built before the clock starts."""
    pairs = []
    for i in range(count):
        task = Task(id=f"task-{i}", task_type="qa", payload=f"question {i}: what is {i} + {i}?")
        decision = runtime.router.choose(task)
        result = AttemptResult(target=decision.pick, ok=i % 5 != 0, output="answer", duration_ms=12.5 + i % 7,
                               input_tokens=20, output_tokens=40, cost=0.0001)  # fmt: skip
        pairs.append((decision, build_record(task, decision, runtime.router.target(decision.pick), result, 1, 0.0002)))
    return pairs


def log_all(runtime: RoutingRuntime, pairs: list[tuple]) -> float:
    """Seconds to log every pair, the spool segment sealed at the end (as a batch ends)."""
    start = time.perf_counter()
    for decision, record in pairs:
        runtime.record_decision(decision)
        runtime.record(record)
    runtime.store.close()
    return time.perf_counter() - start


def measure_once(rate: float, events: bool, count: int) -> tuple[float, float, float, int]:
    """One repeat: (logging us per outcome, spool bytes per outcome, ingest ms, decisions kept)."""
    with tempfile.TemporaryDirectory() as scratch:
        store = DuckDBStore(database=str(Path(scratch) / "bench.duckdb"))
        store.upgrade()
        targets = [OpenAICompatibleTarget(target_name=n, base_url="http://127.0.0.1:9/v1", model=n) for n in "ab"]
        runtime = RoutingRuntime.build(targets, store, sampling=DetailSampling(default_rate=rate), emit_events=events)
        runtime._observe = lambda record: None  # the logging alone
        pairs = outcomes(count, runtime)
        logging_us = log_all(runtime, pairs) / count * 1e6
        size = sum(p.stat().st_size for p in store.spool_path.glob("*.jsonl")) / count
        start = time.perf_counter()
        kept = store.ingest().decisions
        return logging_us, size, (time.perf_counter() - start) * 1e3, kept


def main(quick: bool, json_path: str | None) -> None:
    count, repeats = (5_000, 3) if quick else (20_000, 3)
    configs = [(rate, events) for events in (False, True) for rate in RATES]
    runs: dict[tuple, list] = {config: [] for config in configs}
    with _captured_events():
        for _ in range(repeats):  # repeats interleaved, so the machine's load falls on every rate alike
            for config in configs:
                runs[config].append(measure_once(*config, count))
    rows = []
    for (rate, events), samples in runs.items():
        logging_us, size, ingest_ms, kept = (statistics.median(column) for column in zip(*samples))
        rows.append({"rate": rate, "events": events, "outcomes": count, "kept": int(kept),
                     "us_per_outcome": logging_us, "spool_bytes": size, "ingest_ms": ingest_ms})  # fmt: skip
    for row in rows:
        full = next(r for r in rows if r["events"] == row["events"] and r["rate"] == 1.0)
        row["saved_pct"] = 100 * (1 - row["us_per_outcome"] / full["us_per_outcome"])
    notes = (f"{count} outcomes (one decision + one attempt each) per repeat, median of {repeats} repeats; "
             "learning excluded; spool_bytes per outcome; events captured in memory by Prefect's "
             "AssertingEventsClient")  # fmt: skip
    path = report("sampling", "Logging overhead per routed outcome by detail sampling rate", rows, notes)
    if json_path:
        Path(json_path).write_text(path.read_text())


class _captured_events:
    """Events go to Prefect's in-memory asserting client under a placeholder API URL, as in the tests."""

    def __enter__(self) -> None:
        from prefect.events.clients import AssertingEventsClient
        from prefect.events.worker import EventsWorker
        from prefect.settings import PREFECT_API_URL, temporary_settings

        self._settings = temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"})
        self._settings.__enter__()
        self._worker = EventsWorker.instance(AssertingEventsClient)
        self._instance = EventsWorker.__dict__["instance"]
        EventsWorker.instance = classmethod(lambda cls, *_: self._worker)

    def __exit__(self, *exc: object) -> None:
        from prefect.events.worker import EventsWorker

        self._worker.drain()
        EventsWorker.instance = self._instance
        self._settings.__exit__(*exc)


if __name__ == "__main__":
    args = sys.argv[1:]
    main("--quick" in args, args[args.index("--json") + 1] if "--json" in args else None)
