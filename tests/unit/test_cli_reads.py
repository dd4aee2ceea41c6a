"""`stats`, `health` and `explain` on a store with outcomes: what they show, that they import neither
Prefect nor scipy (most of their start, when they did), and that they read while another process holds
the store's lock."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from statsmodels.stats.proportion import proportion_confint
from store_support import HOLD_LOCK, run_child
from typer.testing import CliRunner

from blocks.store import Store
from flows.cli import app
from routing.calls.breaker import BreakerConfig
from routing.models import Candidate, Decision, ErrorType, ExecutionRecord

PROJECT = Path(__file__).resolve().parents[2]
runner = CliRunner(env={"COLUMNS": "200"})  # one table row per line
# target -> outcomes, oldest first: True a success, else the error type of the failure
OUTCOMES: dict[str, list[bool | ErrorType]] = {
    "small": [True] * 17 + [ErrorType.WRONG_ANSWER] * 3 + [ErrorType.TIMEOUT] * 2 + [True] * 2,
    "premium": [True] * 11 + [ErrorType.WRONG_ANSWER],
    "flaky": [True] * 4 + [ErrorType.TIMEOUT] * 6,
}


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A store with one decision and one attempt per outcome of OUTCOMES, recorded through the spool."""
    path = tmp_path / "reads.duckdb"
    store = Store(database=str(path))
    start = datetime.now(UTC) - timedelta(seconds=sum(map(len, OUTCOMES.values())))  # an open breaker stays open
    n = 0
    for target, outcomes in OUTCOMES.items():
        for outcome in outcomes:
            n += 1
            when = start + timedelta(seconds=n)
            decision = Decision(task_id=f"t{n}", task_type="qa", strategy="thompson", pick=target, probability=0.25,
                                reason=f"reason {n}", candidates=(Candidate(target=target, score=0.5),), timestamp=when)
            failed = outcome is not True
            store.record_decision(decision)
            store.record_execution(ExecutionRecord(
                task_id=f"t{n}", decision_id=decision.id, target=target, task_type="qa", success=not failed,
                duration_ms=100 + n, actual_cost=0.001, timestamp=when, error_type=outcome if failed else None,
                error_message=f"{outcome} at {n}" if failed else None,
            ))  # fmt: skip
    store.ingest()
    return str(path)


def _row(output: str, first_cell: str) -> list[str]:
    """The cells of the table row that starts with `first_cell` (the frontier's " *" aside)."""
    for line in output.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line)[1:-1]]
        if cells and cells[0].removesuffix(" *") == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in\n{output}")


def test_stats_gives_each_target_its_calls_success_and_wilson_interval(db: str) -> None:
    code, out = run("stats", "-d", db)
    assert code == 0, out
    for target, outcomes in OUTCOMES.items():
        successes, calls = outcomes.count(True), len(outcomes)
        low, high = proportion_confint(successes, calls, method="wilson")  # statsmodels as the reference
        cells = _row(out, target)
        assert cells[1] == str(calls)
        assert cells[2] == f"{successes / calls:.0%} ({low:.0%}-{high:.0%})"


def test_health_replays_each_targets_breaker(db: str) -> None:
    code, out = run("health", "-d", db)
    assert code == 0, out
    threshold = BreakerConfig().failure_threshold
    for target, outcomes in OUTCOMES.items():
        failures = [o for o in outcomes if o is not True]
        transport = [o for o in failures if o != ErrorType.WRONG_ANSWER]
        healthy = "".join("f" if o in transport else "h" for o in outcomes)  # a wrong answer is a healthy call
        trailing = len(healthy) - len(healthy.rstrip("f"))
        state, consecutive, transport_cell, wrong, successes, _ = _row(out, target)[1:]
        assert state == ("open" if trailing >= threshold else "closed")
        assert consecutive == str(trailing)
        assert (transport_cell, wrong) == (str(len(transport)), str(len(failures) - len(transport)))
        assert successes == str(outcomes.count(True))


def test_explain_shows_the_latest_decisions_with_their_attempts(db: str) -> None:
    code, out = run("explain", "--last", "2", "-d", db)
    assert code == 0, out
    n = sum(len(o) for o in OUTCOMES.values())
    assert [int(t) for t in re.findall(r"^task t(\d+) ", out, re.M)] == [n, n - 1]
    assert f"why: reason {n}" in out and f"timeout at {n}" in out
    code, out = run("explain", "t1", "-d", db)
    assert code == 0 and "thompson picked small with probability 0.250" in out and "success" in out


def _imported(command: list[str], database: str) -> tuple[set[str], str]:
    """The modules a fresh `adaptive-router COMMAND` imports (`-X importtime`), and its output."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "flows.cli", *command, "-d", database],
                          cwd=PROJECT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    modules = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)", done.stderr, re.M))
    return modules, done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("command", [["stats"], ["health"], ["explain", "--last", "3"]])
def test_read_commands_import_neither_prefect_nor_scipy(db: str, command: list[str]) -> None:
    modules, out = _imported(command, db)
    assert "flows.cli" in modules and "blocks.store" in modules  # the measurement sees the command's imports
    heavy = sorted(m for m in modules if m.split(".")[0] in ("prefect", "scipy", "statsmodels"))
    assert not heavy, heavy[:10]
    assert "task t" in out or "premium" in out


@pytest.mark.slow
def test_stats_reads_a_snapshot_while_another_process_holds_the_lock(db: str) -> None:
    holder = run_child(HOLD_LOCK, db, stdin=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "holding"
        modules, out = _imported(["stats"], db)
    finally:
        holder.communicate("\n", timeout=30)
    assert "prefect" not in modules and "Budgets this period" not in out  # the committed rows, not the open insert
    assert _row(out, "flaky")[1] == str(len(OUTCOMES["flaky"]))
