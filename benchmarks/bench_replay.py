"""RouterBench replay (../shared/data/routerbench): each strategy against every single model and the oracle.

  cold   every row replayed in a seeded random order from no knowledge (bandit feedback only)
  warm   30% of the rows (seeded split) observed first with every model's outcome, as a benchmark run
         would give; the other 70% replayed and scored
Then the cost-quality curve of Thompson sampling over several willingness-to-pay values L (dollars per
correct answer), cold and warm, with RouterBench's AIQ next to the zero router's (random mixtures of
single models). The aim: >= 95% of the most accurate model's accuracy for <= 30% of its cost; the
"per-eval mixture" row is the best any router can do at that cost when, like ours, it only knows the
eval of each prompt (chosen in hindsight).

    python benchmarks/bench_replay.py [--quick]
"""

from __future__ import annotations

import os
import statistics
import sys

import numpy as np
from common import ROUTERBENCH, report

from routing.evaluation.replay import (
    ReplayData,
    ReplayReport,
    load_routerbench,
    nondecreasing_hull,
    replay,
    willingness_grid,
)

os.environ.setdefault("COLUMNS", "200")  # wide tables stay readable when piped

STRATEGIES = ("thompson", "gaussian_thompson", "ucb1", "epsilon_greedy", "qlearning", "ensemble", "weighted")
CURVE_POINTS = 13  # willingness_grid: the cheapest model's cost per call to 200x the dearest's
WARM_FRACTION = 0.3
AIM_ACCURACY, AIM_COST = 0.95, 0.3  # of the most accurate model's accuracy and cost


def averaged(reports: list[ReplayReport], run: int) -> tuple[float, float]:
    """Mean (accuracy, total cost) of run `run` over seeds."""
    return (
        statistics.fmean(r.runs[run].accuracy for r in reports),
        statistics.fmean(r.runs[run].total_cost for r in reports),
    )


def row(setting: str, strategy: str, level, accuracy: float, cost: float, reference: ReplayReport) -> dict:
    best = reference.models[reference.best_model]
    return {
        "setting": setting,
        "policy": strategy,
        "L": "-" if level is None else f"{level:g}",
        "accuracy": accuracy,
        "total_cost": cost,
        "accuracy_vs_best": accuracy / best.accuracy,
        "cost_vs_best": cost / best.total_cost,
        "meets_aim": "yes"
        if accuracy >= AIM_ACCURACY * best.accuracy and cost <= AIM_COST * best.total_cost
        else "",
    }


def reference_rows(setting: str, reference: ReplayReport) -> list[dict]:
    rows = [
        row(
            setting,
            f"model {reference.best_model} (best)",
            None,
            *_point(reference.models[reference.best_model]),
            reference,
        )
    ]
    cheap_good = max(
        reference.models.items(), key=lambda item: item[1].accuracy / (item[1].total_cost + 1e-9)
    )
    rows.append(
        row(setting, f"model {cheap_good[0]} (best accuracy per $)", None, *_point(cheap_good[1]), reference)
    )
    rows.append(row(setting, "oracle", None, *_point(reference.oracle), reference))
    return rows


def _point(result) -> tuple[float, float]:
    return result.accuracy, result.total_cost


def per_eval_ceiling(data: ReplayData, budget: float) -> tuple[float, float]:
    """(accuracy, cost) of the best per-eval mixture of single models within `budget` dollars, chosen in
    hindsight: the ceiling of any router whose only context is the eval (ours has no prompt features).
    Greedy over the segments of each eval's concave (cost, correct) hull, steepest first, is optimal."""
    evals = np.array(data.eval_names)
    cost = correct = 0.0
    segments = []
    for name in np.unique(evals):
        rows = evals == name
        hull = nondecreasing_hull(
            (data.cost[rows, j].sum(), data.correct[rows, j].sum()) for j in range(len(data.models))
        )
        cost, correct = cost + hull[0][0], correct + hull[0][1]
        for (c1, q1), (c2, q2) in zip(hull, hull[1:]):
            segments.append(((q2 - q1) / (c2 - c1), c2 - c1, q2 - q1))
    for _, extra_cost, extra_correct in sorted(segments, reverse=True):
        share = min(1.0, max(0.0, budget - cost) / extra_cost)
        cost, correct = cost + share * extra_cost, correct + share * extra_correct
    return correct / len(data), cost


def main(quick: bool) -> None:
    paths = sorted(ROUTERBENCH.glob("*.csv"))
    if not paths:
        print(f"skipped: no RouterBench data in {ROUTERBENCH}")
        return
    seeds = 1 if quick else 3
    data = load_routerbench(paths)
    warm, rest = data.split(WARM_FRACTION, seed=0)
    settings = {"cold": (data, None), "warm": (rest, warm)}
    rows, curves = [], []
    for setting, (evaluated, history) in settings.items():
        for strategy in STRATEGIES:
            levels = [None, 0.05] if strategy != "weighted" else [None]
            reports = [
                replay(evaluated, strategy, levels, warm_start=history, shuffle_seed=s, seed=s)
                for s in range(seeds)
            ]
            for i, level in enumerate(levels):
                rows.append(row(setting, strategy, level, *averaged(reports, i), reports[0]))
        rows += reference_rows(setting, reports[0])
        budget = AIM_COST * reports[0].models[reports[0].best_model].total_cost
        ceiling = per_eval_ceiling(evaluated, budget)
        rows.append(row(setting, "per-eval mixture, hindsight (ceiling)", None, *ceiling, reports[0]))
        levels = willingness_grid(evaluated, CURVE_POINTS)
        curve = [
            replay(evaluated, "thompson", levels, warm_start=history, shuffle_seed=s, seed=s)
            for s in range(seeds)
        ]
        for i, level in enumerate(levels):
            rows.append(row(setting, "thompson curve", level, *averaged(curve, i), curve[0]))
        curves.append(
            {
                "setting": setting,
                "rows": curve[0].rows,
                "aiq": statistics.fmean(r.aiq for r in curve),
                "zero_router_aiq": curve[0].zero_router_aiq,
                "aiq_ratio": statistics.fmean(r.aiq for r in curve) / curve[0].zero_router_aiq,
            }
        )
    notes = (
        f"{len(data)} rows ({len(data.skipped)} skipped for blank cells); warm: {len(warm)} rows observed, "
        f"{len(rest)} replayed; mean of {seeds} seeded orders; aim = accuracy >= 95% of best, cost <= 30%"
    )
    report("replay", "RouterBench replay: router vs single models vs oracle", rows, notes)
    report(
        "replay_aiq",
        "RouterBench AIQ of the Thompson cost-quality curve",
        curves,
        f"{CURVE_POINTS} L values from the cheapest model's cost per call to 200x the dearest's (willingness_grid); "
        "zero router = hull of the single models",
    )


if __name__ == "__main__":
    main("--quick" in sys.argv)
