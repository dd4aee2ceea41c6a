"""What a new user sees: the demo's terminal output, end to end, also when Prefect is slow to start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SLOW_SERVER = Path(__file__).resolve().parents[1] / "fixtures" / "slow_prefect_server"


def run_demo(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", "demo", "--tasks", "24", *args],
        cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def test_a_slow_ephemeral_server_still_ends_with_the_tables_and_no_traceback(tmp_path: Path) -> None:
    # 30 s is beyond Prefect's own 20 s startup limit: the demo must allow for it
    env = {"PYTHONPATH": str(SLOW_SERVER), "SLOW_PREFECT_SERVER_SECONDS": "30"}
    result = run_demo(tmp_path, env=env)
    everything = result.stdout + result.stderr
    assert result.returncode == 0, everything
    assert "Traceback" not in everything and "ERROR" not in everything
    assert "starting the local fleet and Prefect's ephemeral API" in result.stdout
    assert "24 tasks," in result.stdout and "How the first pick shifted" in result.stdout
    assert " ".join(result.stdout.split()).endswith("local Prefect server and its UI)")  # the closing next: line
    log = tmp_path / ".adaptive-router" / "logs" / "demo.log"
    assert "Starting temporary server" in log.read_text()  # Prefect's own output went to the log


def test_a_file_that_is_not_a_store_fails_before_anything_is_routed(tmp_path: Path) -> None:
    notes = tmp_path / "notes.duckdb"
    notes.write_text("not a database\n" * 50)
    result = run_demo(tmp_path, "--database", str(notes))
    assert result.returncode == 1
    assert "is not a DuckDB database" in " ".join(result.stdout.split())
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "logs").exists()  # nothing started, so nothing logged
