"""The command line on real DuckDB files: migrations, budgets, strategies, stats and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "cli.duckdb")


def test_db_upgrade_current_downgrade(db: str) -> None:
    from blocks.store.migrations import HEAD

    assert run("db", "upgrade", "-d", db)[0] == 0
    assert f"version {HEAD} (latest {HEAD})" in run("db", "current", "-d", db)[1]
    code, out = run("db", "downgrade", "--to", "1", "-d", db)
    assert code == 0 and "now at version 1" in out
    code, out = run("db", "upgrade", "--to", "99", "-d", db)
    assert code == 1 and "schema version 99 does not exist" in out


def test_a_file_that_is_not_duckdb_is_named(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n" * 50)
    code, out = run("db", "current", "-d", str(notes))
    assert code == 1 and "is not a DuckDB database" in out


def test_budgets_and_strategies_round_trip_through_the_store(db: str) -> None:
    from blocks.store import DuckDBStore
    from blocks.store.budgets import load_budgets
    from blocks.store.objectives import load_objectives

    assert run("set-budget", "daily", "2.5", "--policy", "queue", "-d", db)[0] == 0
    assert run("set-budget", "weekly", "9", "--scope", "target", "--scope-value", "premium", "-d", db)[0] == 0
    assert run("set-budget", "daily", "3", "-d", db)[0] == 0  # replaces the first
    budgets = {(b.period, b.scope, b.scope_value): (b.limit, b.policy) for b in load_budgets(DuckDBStore(database=db))}
    assert budgets == {("daily", "overall", None): (3.0, "reject"), ("weekly", "target", "premium"): (9.0, "reject")}

    code, out = run("set-strategy", "code_qa", "critical", "-d", db)
    assert code == 0 and "success 0.95" in out
    assert load_objectives(DuckDBStore(database=db))["code_qa"].priority == "critical"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("set-budget", "daily", "1", "--scope", "target"), "scope_value is required for scope 'target'"),
        (("set-budget", "yearly", "1"), "yearly"),
        (("set-strategy", "qa", "batch", "--success", "0.9", "--cost", "0.3", "--latency", "0"), "must sum to 1"),
        (("set-strategy", "qa", "batch", "--success", "0.9"), "give all three weights"),
    ],
)
def test_bad_input_is_named(db: str, args: tuple[str, ...], message: str) -> None:
    code, out = run(*args, "-d", db)
    assert code != 0 and message in out


def test_stats_on_an_empty_store(db: str) -> None:
    assert run("db", "upgrade", "-d", db)[0] == 0
    assert run("stats", "-d", db) == (0, "no executions recorded yet")


@pytest.mark.parametrize("command", ["stats", "health", "explain"])
def test_read_commands_never_create_a_store(tmp_path: Path, command: str) -> None:
    missing = tmp_path / "nowhere" / "x.duckdb"
    code, out = run(command, "-d", str(missing))
    assert code == 1 and "no store at" in out and "adaptive-router demo" in out
    assert not missing.parent.exists()


def test_db_check_passes_a_sound_store_and_names_a_truncated_one(db: str, tmp_path: Path) -> None:
    assert run("db", "upgrade", "-d", db)[0] == 0
    code, out = run("db", "check", "-d", db)
    assert code == 0, out
    truncated = tmp_path / "truncated.duckdb"
    data = Path(db).read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    code, out = run("db", "check", "-d", str(truncated))
    assert code == 1 and str(truncated.name) in out and "Traceback" not in out
