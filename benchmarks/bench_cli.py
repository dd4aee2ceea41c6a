"""How fast the command line answers: `--help`, read-only commands and `explain`, as whole processes.

Each command runs `--repeat` times in a fresh interpreter; the table gives the median and the slowest
wall time, beside `python -c pass` (the interpreter's own start) measured in the same run. The read
commands run against a small store written first through the spool.

    python benchmarks/bench_cli.py [--quick] [--repeat N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import median, report

CLI = [sys.executable, "-m", "flows.cli"]


def wall_seconds(args: list[str], repeat: int, cwd: Path) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(args, cwd=cwd, capture_output=True, check=True)
        samples.append(time.perf_counter() - start)
    return samples


def seed_store(path: Path) -> None:
    from blocks.store import DuckDBStore
    from routing.models import Candidate, Decision, ExecutionRecord

    store = DuckDBStore(database=str(path))
    now = datetime.now(UTC)
    for i in range(500):
        target = ("small", "mid", "premium")[i % 3]
        decision = Decision(task_id=f"t{i}", task_type="qa", strategy="thompson", pick=target, probability=0.5,
                            reason="bench", candidates=(Candidate(target=target, score=0.5),))
        store.record_decision(decision)
        store.record_execution(ExecutionRecord(task_id=f"t{i}", decision_id=decision.id, target=target,
                                               task_type="qa", success=i % 4 != 0, duration_ms=50 + i % 30,
                                               actual_cost=0.0001, timestamp=now - timedelta(seconds=i)))
    store.ingest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs per command")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    repeat = 3 if args.quick else args.repeat
    project = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        database = str(Path(tmp) / "bench.duckdb")
        seed_store(Path(database))
        commands = {
            "python -c pass (baseline)": [sys.executable, "-c", "pass"],
            "adaptive-router --help": [*CLI, "--help"],
            "adaptive-router stats": [*CLI, "stats", "-d", database],
            "adaptive-router health": [*CLI, "health", "-d", database],
            "adaptive-router explain --last 3": [*CLI, "explain", "--last", "3", "-d", database],
        }
        rows = []
        baseline = None
        for name, command in commands.items():
            samples = wall_seconds(command, repeat, project)
            baseline = baseline or median(samples)
            rows.append({"command": name, "median_s": median(samples), "max_s": max(samples),
                         "x_baseline": median(samples) / baseline, "runs": repeat})
    report("bench_cli", "Command-line latency (wall seconds, fresh interpreter each run)", rows,
           notes=f"python benchmarks/bench_cli.py{' --quick' if args.quick else ''}")


if __name__ == "__main__":
    main()
