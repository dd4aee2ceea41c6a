"""RouterBench replay on synthetic files: loading and its errors, bandit feedback, baselines, AIQ."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from routerbench_synth import ACCURACY, MODELS, synth_rows, write_routerbench
from typer.testing import CliRunner

from flows.cli.replay import replay as replay_command
from routing.evaluation.replay import (
    DataFormatError,
    ReplayData,
    ReplayReport,
    aiq,
    eval_category,
    load_routerbench,
    nondecreasing_hull,
    oracle,
    replay,
    target_names,
    willingness_grid,
)
from routing.models import Category


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    return write_routerbench(tmp_path / "bench.csv", rows=400, seed=1)


def write_rows(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_load_reads_models_in_correctness_column_order(bench: Path) -> None:
    data = load_routerbench(bench)
    rows = synth_rows(400, seed=1)
    assert data.models == MODELS
    assert len(data) == 400 and data.correct.shape == data.cost.shape == (400, 3)
    assert data.sample_ids[0] == rows[0]["sample_id"] and data.prompts[5] == rows[5]["prompt"]
    assert data.correct[7].tolist() == [float(rows[7][m]) for m in MODELS]
    assert data.cost[7].tolist() == [float(rows[7][f"{m}|total_cost"]) for m in MODELS]


def test_load_concatenates_files_whose_columns_come_in_another_order(tmp_path: Path) -> None:
    first = write_routerbench(tmp_path / "a.csv", rows=10, seed=1)
    rows = synth_rows(6, seed=2)
    shuffled = [{k: row[k] for k in reversed(list(row))} for row in rows]
    second = write_rows(tmp_path / "b.csv", shuffled)
    data = load_routerbench([first, second])
    assert len(data) == 16
    assert data.correct[10:].tolist() == [[float(r[m]) for m in MODELS] for r in rows]


def test_blank_correctness_rows_are_skipped_and_listed(tmp_path: Path) -> None:
    rows = synth_rows(5)
    rows[2]["mid-model"] = ""
    data = load_routerbench(write_rows(tmp_path / "b.csv", rows))
    assert len(data) == 4
    (skipped,) = data.skipped
    assert (skipped.row, skipped.sample_id, skipped.missing) == (3, rows[2]["sample_id"], ("mid-model",))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.pop("eval_name"), "missing column 'eval_name'"),
        (
            lambda r: r.pop("mid-model"),
            r"missing column 'mid-model' \(correctness of the model in 'mid-model\|total_cost'\)",
        ),
        (
            lambda r: [r.pop(k) for k in list(r) if k.endswith("|total_cost")],
            "no '<model>|total_cost' column",
        ),
    ],
)
def test_missing_columns_are_named(tmp_path: Path, edit, message) -> None:
    rows = synth_rows(3)
    for row in rows:
        edit(row)
    with pytest.raises(DataFormatError, match=message):
        load_routerbench(write_rows(tmp_path / "b.csv", rows))


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        (
            "big/premium",
            "0.5",
            r"row 3 \(line \d+, sample_id '.*\.2'\): column 'big/premium' must be 0 or 1, got '0.5'",
        ),
        ("big/premium", "yes", "must be 0 or 1, got 'yes'"),
        (
            "mid-model|total_cost",
            "-1",
            "column 'mid-model|total_cost' must be a non-negative number, got '-1'",
        ),
        ("mid-model|total_cost", "", "must be a non-negative number, got ''"),
    ],
)
def test_bad_values_are_named_with_their_row(tmp_path: Path, column, value, message) -> None:
    rows = synth_rows(4)
    rows[2][column] = value
    with pytest.raises(DataFormatError, match=message):
        load_routerbench(write_rows(tmp_path / "b.csv", rows))


def test_files_with_other_models_are_refused(tmp_path: Path) -> None:
    first = write_routerbench(tmp_path / "a.csv", rows=4)
    rows = [{k.replace("mid-model", "other"): v for k, v in row.items()} for row in synth_rows(4)]
    with pytest.raises(DataFormatError, match="missing: mid-model; extra: other"):
        load_routerbench([first, write_rows(tmp_path / "b.csv", rows)])


def test_eval_names_map_to_categories() -> None:
    assert eval_category("arc-challenge", "") is Category.RESEARCH
    assert eval_category("winogrande", "") is Category.LANGUAGE
    assert eval_category("mmlu-college-math", "") is Category.GENERAL
    assert eval_category("unheard-of", "Fix this Python function: def f(): return 1/0") is Category.CODING


def test_single_models_and_oracle() -> None:
    correct = np.array([[1, 1, 0], [0, 1, 1], [0, 0, 0]], dtype=float)
    cost = np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0], [3.0, 2.0, 1.0]])
    data = ReplayData(("x", "y", "z"), ("r1", "r2", "r3"), ("p",) * 3, ("e",) * 3, correct, cost)
    best = oracle(data)
    # row 1: y (2.0) is the cheapest correct; row 2: z (1.0); row 3: nobody, the cheapest z (1.0)
    assert (best.correct, best.total_cost, best.accuracy) == (2, 4.0, pytest.approx(2 / 3))
    assert best.cost_per_correct == 2.0


def test_the_router_never_sees_outcomes_of_models_it_did_not_pick(bench: Path) -> None:
    """Rewriting every cell the router did not pick leaves every decision unchanged."""
    data = load_routerbench(bench)
    first = replay(data, "thompson", willingness_to_pay=0.01, seed=3)
    picked = np.zeros_like(data.correct, dtype=bool)
    for row, decision in enumerate(first.decisions):
        picked[row, MODELS.index(decision.target)] = True
    flipped = np.where(picked, data.correct, 1 - data.correct)
    inflated = np.where(picked, data.cost, data.cost * 10)
    second = replay(
        replace(data, correct=flipped, cost=inflated), "thompson", willingness_to_pay=0.01, seed=3
    )
    assert second.decisions == first.decisions
    assert second.models != first.models  # the baselines did change


def test_thompson_routes_per_eval_and_beats_every_single_model_on_value(bench: Path) -> None:
    data = load_routerbench(bench)
    report = replay(data, "thompson", willingness_to_pay=0.01, seed=4)
    run = report.runs[0]
    assert run.correct == round(run.accuracy * 400) and len(run.decisions) == 400
    assert sum(run.picks.values()) == 400
    net = {name: 0.01 * m.correct - m.total_cost for name, m in report.models.items()}
    assert 0.01 * run.correct - run.total_cost > max(net.values())
    # The mid model serves ARC, the small one Winogrande, the premium one is too dear at L = $0.01.
    late = run.decisions[200:]
    arc = [d.target for d in late if d.sample_id.startswith("arc")]
    wino = [d.target for d in late if d.sample_id.startswith("wino")]
    assert arc.count("mid-model") / len(arc) > 0.8
    assert wino.count("small/chat-7b") / len(wino) > 0.8
    assert report.models["big/premium"].accuracy == pytest.approx(data.correct[:, 0].mean())
    assert ACCURACY["big/premium"]["arc-challenge"] > ACCURACY["mid-model"]["arc-challenge"]


def test_warm_start_avoids_the_cold_start_exploration(tmp_path: Path, bench: Path) -> None:
    data = load_routerbench(bench)
    warm = load_routerbench(write_routerbench(tmp_path / "warm.csv", rows=300, seed=9))
    cold = replay(data, "thompson", willingness_to_pay=0.01, seed=5)
    warmed = replay(data, "thompson", willingness_to_pay=0.01, seed=5, warm_start=warm)
    premium_early = [[d.target for d in r.decisions[:60]].count("big/premium") for r in (cold, warmed)]
    assert premium_early[1] < premium_early[0]
    assert warmed.warm_start_rows == 300


def test_shuffle_replays_the_same_rows_in_another_order(bench: Path) -> None:
    data = load_routerbench(bench)
    report = replay(data, "ucb1", shuffle_seed=7)
    ids = [d.sample_id for d in report.decisions]
    assert sorted(ids) == sorted(data.sample_ids) and ids != list(data.sample_ids)


def test_several_prices_give_a_curve_and_its_aiq(bench: Path) -> None:
    data = load_routerbench(bench)
    report = replay(data, "thompson", willingness_to_pay=[0.001, 0.01, 1.0], seed=6)
    assert [r.willingness_to_pay for r in report.runs] == [0.001, 0.01, 1.0]
    costs = [r.total_cost for r in report.runs]
    assert costs[0] < costs[2]
    router = [(r.total_cost, r.accuracy) for r in report.runs]
    models = [(r.total_cost, r.accuracy) for r in report.models.values()]
    assert report.aiq == pytest.approx(aiq(router, report.aiq_cost_range))
    assert report.zero_router_aiq == pytest.approx(aiq(models, report.aiq_cost_range))
    assert report.aiq_cost_range == (min(c for c, _ in router + models), max(c for c, _ in router + models))
    again = ReplayReport.model_validate_json(report.model_dump_json())
    assert again.aiq == report.aiq and again.decisions == report.decisions
    assert json.loads(report.model_dump_json())["accuracy"] == report.runs[0].accuracy


def test_non_decreasing_hull_drops_points_below_the_chord_and_after_the_peak() -> None:
    points = [(0.0, 0.0), (1.0, 0.2), (2.0, 1.0), (3.0, 0.9), (2.0, 0.5)]
    assert nondecreasing_hull(points) == [(0.0, 0.0), (2.0, 1.0)]
    assert nondecreasing_hull([(1.0, 0.5), (2.0, 0.8), (3.0, 0.7)]) == [(1.0, 0.5), (2.0, 0.8)]


def test_aiq_hand_computed() -> None:
    # hull (1, .5) -> (2, .8), flat .8 to 3: area 0.65 + 0.8 = 1.45 over a range of 2
    assert aiq([(1.0, 0.5), (2.0, 0.8), (3.0, 0.7)], (1.0, 3.0)) == pytest.approx(0.725)
    # (1, .2) lies under the chord from (0, 0) to (2, 1): area 1 over a range of 2
    assert aiq([(0.0, 0.0), (1.0, 0.2), (2.0, 1.0)], (0.0, 2.0)) == pytest.approx(0.5)
    # nothing below the cheapest point: 0 on [0, 1], then 0.6 on [1, 4]
    assert aiq([(1.0, 0.6)], (0.0, 4.0)) == pytest.approx(0.45)


def test_target_names_are_valid_and_unique() -> None:
    assert target_names(["WizardLM/WizardLM-13B-V1.2", "a b", "a_b"]) == [
        "WizardLM_WizardLM-13B-V1.2",
        "a_b",
        "a_b_",
    ]


def test_replay_rejects_bad_arguments(bench: Path) -> None:
    data = load_routerbench(bench)
    with pytest.raises(ValueError, match="willingness_to_pay must be > 0"):
        replay(data, "thompson", willingness_to_pay=[0.1, 0])
    with pytest.raises(ValueError, match="unknown strategy"):
        replay(data, "nope")
    with pytest.raises(ValueError, match="no rows to replay"):
        replay(data.take([]), "thompson")


def test_cli_prints_the_comparison_and_writes_decisions_and_report(tmp_path: Path, bench: Path) -> None:
    import typer

    app = typer.Typer()
    app.command("replay")(replay_command)
    app.command("other")(lambda: None)  # a multi-command app, as the real CLI
    decisions, report = tmp_path / "decisions.csv", tmp_path / "report.json"
    result = CliRunner().invoke(
        app,
        [
            "replay",
            str(bench),
            "--strategy",
            "ucb1",
            "--decisions-out",
            str(decisions),
            "--report-out",
            str(report),
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "oracle" in result.output and "big/premium (best)" in result.output and "router" in result.output
    rows = list(csv.reader(decisions.open()))
    assert rows[0] == ["sample_id", "target"] and len(rows) == 401
    assert json.loads(report.read_text())["strategy"] == "ucb1"
    failed = CliRunner().invoke(app, ["replay", str(tmp_path / "absent.csv")])
    assert failed.exit_code == 1 and "error" in failed.output


@pytest.mark.slow
def test_the_willingness_grid_reaches_both_ends_of_the_frontier(tmp_path: Path, bench: Path) -> None:
    data = load_routerbench(bench)
    grid = willingness_grid(data, 9)
    mean_cost = data.cost.mean(axis=0)
    assert len(grid) == 9 and grid == sorted(grid)
    assert grid[0] == pytest.approx(mean_cost.min()) and grid[-1] == pytest.approx(200 * mean_cost.max())
    report = replay(data, "thompson", [grid[0], grid[-1]], seed=0)
    cheapest, dearest = int(mean_cost.argmin()), int(data.correct.mean(axis=0).argmax())
    assert max(report.runs[0].picks, key=report.runs[0].picks.get) == data.models[cheapest]
    assert max(report.runs[1].picks, key=report.runs[1].picks.get) == data.models[dearest]
    with pytest.raises(ValueError, match="at least 2"):
        willingness_grid(data, 1)

    import typer

    app = typer.Typer()
    app.command("replay")(replay_command)
    app.command("other")(lambda: None)
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["replay", str(bench), "--strategy", "thompson", "--curve", "3",
                                      "--report-out", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert [r["willingness_to_pay"] for r in json.loads(out.read_text())["runs"]] == pytest.approx(
        willingness_grid(data, 3))
    assert "AIQ" in result.output
    both = CliRunner().invoke(app, ["replay", str(bench), "--curve", "3", "--willingness-to-pay", "0.1"])
    assert both.exit_code == 1 and "not both" in both.output
