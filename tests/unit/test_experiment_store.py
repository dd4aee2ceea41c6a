"""Experiments and policies in a real DuckDB store, and the ab-test / policy command lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from experiments_support import route_synthetic
from typer.testing import CliRunner

from blocks.store import DuckDBStore
from blocks.store.experiments import (
    apply_policy,
    finish_experiment,
    list_experiments,
    live_path,
    load_experiment,
    load_live,
    load_policy_state,
    outcome_aggregates,
    policy_history,
    start_experiment,
    sync_assignments,
    variant_data,
)
from flows.cli.experiments import ab_test_app, policy_app
from routing.errors import ConfigError
from routing.experiments.assignment import Status, new_experiment
from routing.experiments.policy import parse_policy

runner = CliRunner()


@pytest.mark.slow
def test_an_experiment_is_stored_published_assigned_analysed_and_rolled_back(store: DuckDBStore) -> None:
    apply_policy(store, parse_policy("fixed:mid"), "start from mid", approved=True)
    experiment = start_experiment(store, new_experiment("x", parse_policy("fixed:mid"), [parse_policy("fixed:small")]))
    assert load_experiment(store, "x") == experiment and experiment.snapshot_id
    live = load_live(live_path(store))
    assert [e.name for e in live.experiments] == ["x"] and live.policies.policies["*"].spec == "fixed:mid"
    with pytest.raises(ConfigError, match="exists"):
        start_experiment(store, new_experiment("x", parse_policy("fixed:mid"), [parse_policy("ucb1")]))
    route_synthetic(store, [experiment], 300)
    assert sync_assignments(store) == 300 and sync_assignments(store) == 0
    (aggregate,) = outcome_aggregates(store)
    assert (aggregate.task_type, aggregate.recent_n, aggregate.earlier_n) == ("qa", 300, 0)
    assert outcome_aggregates(store, recent_hours=0)[0].earlier_n == 300
    control, treatment = variant_data(store, experiment)
    assert control.n + treatment.n == 300 and abs(control.n - treatment.n) < 60
    assert treatment.success.mean() < control.success.mean()
    # a change made while the experiment ran is undone by its rollback
    apply_policy(store, parse_policy("fixed:small"), "meanwhile", approved=True)
    finish_experiment(store, "x", Status.ROLLED_BACK, "rollback")
    assert load_policy_state(store).policies["*"].spec == "fixed:mid"
    assert load_live(live_path(store)).experiments == ()
    assert [c.applied_by for c in policy_history(store)][:1] == ["rollback"]
    assert list_experiments(store)[0].status is Status.ROLLED_BACK


def test_policy_changes_are_validated_and_audited(store: DuckDBStore) -> None:
    with pytest.raises(ConfigError, match="needs approval"):
        apply_policy(store, parse_policy("thompson"), "first")
    first = apply_policy(store, parse_policy("thompson"), "first", approved=True, confidence=0.9)
    second = apply_policy(store, parse_policy("thompson:discount=0.99"), "drift")
    with pytest.raises(ConfigError, match="outside its bounds"):
        apply_policy(store, parse_policy("thompson:discount=0.2"), "too far")
    history = policy_history(store)
    assert [c.id for c in history] == [second.id, first.id]
    assert history[1].confidence == 0.9 and history[1].old is None and history[0].snapshot_id


def cli(app, *args: str) -> tuple[int, str]:
    """Exit code and output, with rich's line wrapping undone (JSON output is never wrapped)."""
    result = runner.invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


@pytest.mark.slow
def test_ab_test_and_policy_commands(tmp_path: Path) -> None:
    db = str(tmp_path / "cli.duckdb")
    code, out = cli(ab_test_app, "start", "x", "--control", "fixed:mid", "--treatment", "fixed:small", "--require-ope", "-d", db)
    assert code == 1 and "no logged decisions" in out
    code, out = cli(ab_test_app, "start", "x", "--control", "fixed:mid", "--treatment", "fixed:small", "--min-samples", "50", "-d", db)
    assert code == 0 and "experiment x running" in out, out
    store = DuckDBStore(database=db)
    route_synthetic(store, list_experiments(store), 240)
    code, out = cli(ab_test_app, "status", "x", "--json", "-d", db)
    status = json.loads(out)
    assert code == 0 and status["status"] == "running"
    assert set(status["variants"]) == {"control", "treatment"}
    assert {"n", "successes", "success_rate", "mean_cost", "p95_ms"} <= set(status["variants"]["control"])
    assert status["decision"] in ("continue", "rollback") and 0 <= status["srm_pvalue"] <= 1 and "pvalue" in status
    # with logs, the gate evaluates off-policy and refuses the worse treatment
    code, out = cli(ab_test_app, "start", "y", "--control", "fixed:mid", "--treatment", "fixed:small", "--require-ope", "-d", db)
    assert code == 1 and "doubly_robust" in out and "below control" in out
    code, out = cli(ab_test_app, "analyze", "x", "--json", "-d", db)
    result = json.loads(out)
    assert result["decision"] == "rollback" and result["status"] == "rolled_back"
    assert "x" in cli(ab_test_app, "list", "-d", db)[1]
    code, out = cli(ab_test_app, "stop", "nope", "-d", db)
    assert code == 1 and "unknown experiment 'nope'" in out

    code, out = cli(policy_app, "apply", "weighted:min_samples=20", "-d", db)
    assert code == 1 and "needs approval" in out
    code, out = cli(policy_app, "apply", "weighted:min_samples=20", "--approve", "-d", db)
    assert code == 0 and "-> weighted:min_samples=20" in out
    snapshot = out.split("snapshot before it: ")[1].split()[0]
    assert "weighted:min_samples=20" in cli(policy_app, "list", "-d", db)[1]
    assert json.loads(cli(policy_app, "show", "-d", db)[1])["options"] == {"min_samples": 20}
    assert "applied by hand" in cli(policy_app, "history", "-d", db)[1]
    code, out = cli(policy_app, "apply", "weighted:min_sample=20", "--approve", "-d", db)
    assert code == 1 and "min_sample" in out
    code, out = cli(policy_app, "propose", "-d", db)
    assert code == 0 and "no adjustment proposed" in out  # weighted is no bandit: nothing to discount
    code, out = cli(policy_app, "rollback", snapshot, "-d", db)
    assert code == 0 and "restored" in out
    assert cli(policy_app, "show", "-d", db)[1].strip() == "null"
