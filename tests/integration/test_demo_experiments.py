"""`ab-test start`, then the demo, then `ab-test analyze`: an experiment on the real fleet, end to end.

The demo builds its runtime as any routing path does; the runtime reads the running experiments the
store published, routes each task by its variant's policy and logs experiment, variant and propensity
on the decision. Thompson sampling against always-the-small-model is a regression the sequential rule
must catch within 400 tasks (and the policy snapshot must come back). A policy against itself must
not reach a verdict: a fixed one, whose tasks are independent as the always-valid bounds assume (two
Thompson learners are not: their trajectories can differ in cost beyond the guardrail's margin).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from blocks.fleet.config import STABLE_FLEET_PATH
from flows.cli.experiments import ab_test_app, policy_app
from flows.demo import run_demo

pytestmark = [pytest.mark.integration, pytest.mark.slow]
runner = CliRunner()


def cli(app, *args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def experiment(tmp_path: Path, treatment: str, control: str = "thompson") -> tuple[str, dict]:
    from blocks.store import DuckDBStore

    db = str(tmp_path / "router.duckdb")
    cli(policy_app, "apply", "thompson", "--approve", "-d", db)  # the policy in force before the test
    cli(ab_test_app, "start", "x", "--control", control, "--treatment", treatment, "--traffic", "0.5", "-d", db)
    report = run_demo(tasks=400, seed=5, database=db, fleet_config=STABLE_FLEET_PATH)
    assert report.tasks == 400
    decisions = DuckDBStore(database=db).query(
        "SELECT variant, count(*) AS n, min(probability) AS p FROM routing_decisions GROUP BY variant ORDER BY variant"
    )
    assert [d["variant"] for d in decisions] == ["control", "treatment"]  # every task went through the experiment
    assert all(0 < d["p"] <= 1 for d in decisions)
    return db, json.loads(cli(ab_test_app, "analyze", "x", "--json", "-d", db))


def test_always_small_against_thompson_is_caught_and_the_snapshot_restored(prefect_harness, tmp_path: Path) -> None:
    from blocks.store import DuckDBStore
    from blocks.store.experiments import load_experiment, load_policy_state, load_snapshot

    db, result = experiment(tmp_path, "fixed:small")
    assert result["decision"] in ("keep_control", "rollback"), result["reason"]
    variants = result["variants"]
    assert variants["treatment"]["success_rate"] < variants["control"]["success_rate"]
    assert variants["control"]["n"] + variants["treatment"]["n"] == 400 and result["srm_pvalue"] > 0.001
    store = DuckDBStore(database=db)
    if result["decision"] == "rollback":
        assert result["status"] == "rolled_back"
        snapshot = load_snapshot(store, load_experiment(store, "x").snapshot_id)
        assert load_policy_state(store).policies == snapshot.state.policies
        assert snapshot.state.policies["*"].spec == "thompson"


def test_a_policy_against_itself_reaches_no_verdict(prefect_harness, tmp_path: Path) -> None:
    _, result = experiment(tmp_path, "fixed:mid", control="fixed:mid")
    assert result["decision"] == "continue", result["reason"]
    assert result["status"] == "running"
