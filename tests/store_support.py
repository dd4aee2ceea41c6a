"""Other processes against a store file, as DuckDB's file lock sees them (tests import this module)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).parents[1]

# Holds the write lock with an open transaction (one uncommitted budget row) until a line on stdin.
HOLD_LOCK = """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    con.execute("BEGIN TRANSACTION")
    con.execute("INSERT INTO budgets VALUES ('b', 'daily', 'global', NULL, 1.0, 'reject', now()::TIMESTAMP)")
    print("holding", flush=True)
    sys.stdin.readline()
"""


def run_child(code: str, *args: str, **popen) -> subprocess.Popen:
    """`code` (dedented) in a fresh interpreter on this checkout, stdout as text on a pipe."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args], cwd=ROOT, text=True, stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, **popen,
    )
