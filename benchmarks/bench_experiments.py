"""Experiments: what peeking costs, how much power the always-valid rule keeps, how soon it rolls back.

Simulated experiments analysed with the very rule the `analyze-experiments` flow applies
(routing.experiments.analysis.analyze: mSPRT confidence sequences on the primary metric, guardrails on
cost, p95 latency and error rate, SRM, futility). Each variant's tasks have success ~ Bernoulli(p),
cost ~ Gamma, latency ~ lognormal, errors ~ Bernoulli(1 %), as on the demo fleet.

  A/A            control == treatment, peeked at every `peek` tasks per variant up to the horizon:
                 aa_false_positive_rate = share of experiments that ever said ship_treatment or rollback;
                 beside it, a fixed-horizon t test (Welch) re-run at every peek, p < 0.05 (the naive way)
  power          success 0.80 against 0.85, 0.90 (better) and 0.70 (worse): share reaching the right verdict
                 by the horizon and median tasks per variant at the decision; the fixed-horizon sample size
                 a two-proportion test needs for 80 % power is shown for scale
  rollback       a regressed treatment (0.85 -> 0.55, as `fixed:small` against Thompson on the demo fleet;
                 and a cost guardrail: 3x the cost, same success) at 50/50 traffic of 20 tasks a minute,
                 analysed every 15 minutes as the deployment does: minutes and tasks until `rollback`

    python benchmarks/bench_experiments.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from common import RESULTS, report
from scipy.stats import ttest_ind

from routing.experiments.analysis import VariantData, Verdict, analyze
from routing.experiments.assignment import ExperimentConfig
from routing.experiments.stats import sample_size_two_proportions

CONFIG = ExperimentConfig(min_samples=50)
WEIGHTS = [0.5, 0.5]
CLAIMS = {Verdict.SHIP_TREATMENT, Verdict.ROLLBACK}


def tasks(rng: np.random.Generator, n: int, p: float, cost: float = 0.001) -> dict[str, np.ndarray]:
    return {
        "success": (rng.random(n) < p).astype(float),
        "cost": rng.gamma(4.0, cost / 4, n),
        "latency_ms": rng.lognormal(4.5, 0.4, n),
        "errored": (rng.random(n) < 0.01).astype(float),
    }


def variant(name: str, data: dict[str, np.ndarray], n: int) -> VariantData:
    nan = np.full(n, np.nan)
    return VariantData(name, data["success"][:n], data["cost"][:n], data["latency_ms"][:n], data["errored"][:n], nan, nan)


def run(rng, n_max: int, peeks: list[int], p_control: float, p_treatment: float, cost_ratio: float = 1.0):
    """(first decisive verdict or None, tasks per variant then, naive t-test false alarm at any peek)."""
    control, treatment = tasks(rng, n_max, p_control), tasks(rng, n_max, p_treatment, 0.001 * cost_ratio)
    naive = False
    for n in peeks:
        result = analyze([variant("control", control, n), variant("treatment", treatment, n)], WEIGHTS, CONFIG, posterior=False)
        naive = naive or ttest_ind(treatment["success"][:n], control["success"][:n], equal_var=False).pvalue < 0.05
        if result.decision is not Verdict.CONTINUE:
            return result.decision, n, naive
    return None, n_max, naive


def main(quick: bool, json_path: Path) -> dict:
    rng = np.random.default_rng(2026)
    peek, horizon = 50, 1000
    peeks = list(range(peek, horizon + 1, peek))
    started = time.perf_counter()
    aa_rows, naive_hits, claims = [], 0, 0
    n_aa = 200 if quick else 1000
    for _ in range(n_aa):
        control, treatment = tasks(rng, horizon, 0.8), tasks(rng, horizon, 0.8)
        claimed = fired = stopped = False
        for n in peeks:
            if not stopped:  # the sequential rule stops at its first verdict, as the flow does
                result = analyze([variant("control", control, n), variant("treatment", treatment, n)], WEIGHTS, CONFIG, posterior=False)
                stopped = result.decision is not Verdict.CONTINUE
                claimed = result.decision in CLAIMS
            fired = fired or ttest_ind(treatment["success"][:n], control["success"][:n], equal_var=False).pvalue < 0.05
        claims += claimed
        naive_hits += fired
    aa_result = {"aa_experiments": n_aa, "peeks_per_experiment": len(peeks),
                 "aa_false_positive_rate": claims / n_aa, "naive_false_positive_rate": naive_hits / n_aa,
                 "naive_single_look_rate_expected": 0.05}  # fmt: skip
    aa_rows.append({"test": "always-valid rule (mSPRT + guardrails)", "experiments": n_aa, "peeks": len(peeks),
                    "false_positive_rate": aa_result["aa_false_positive_rate"]})  # fmt: skip
    aa_rows.append({"test": "Welch t re-run at every peek (naive)", "experiments": n_aa, "peeks": len(peeks),
                    "false_positive_rate": aa_result["naive_false_positive_rate"]})  # fmt: skip
    aa_seconds = time.perf_counter() - started

    power_rows = []
    n_power = 60 if quick else 300
    power_horizon = 3000
    power_peeks = list(range(100, power_horizon + 1, 100))
    for p_treatment, wanted in ((0.85, Verdict.SHIP_TREATMENT), (0.90, Verdict.SHIP_TREATMENT), (0.70, Verdict.ROLLBACK)):
        outcomes = [run(rng, power_horizon, power_peeks, 0.8, p_treatment)[:2] for _ in range(n_power)]
        right = [n for decision, n in outcomes if decision is wanted]
        power_rows.append({
            "effect": f"0.80 -> {p_treatment:.2f}", "experiments": n_power, "horizon_per_variant": power_horizon,
            "power": len(right) / n_power, "median_tasks_to_decision": statistics.median(right) if right else None,
            "fixed_horizon_n_for_80pct": sample_size_two_proportions(0.8, p_treatment),
        })  # fmt: skip

    rollback_rows = []
    n_rollback = 60 if quick else 300
    per_peek = 20 * 15 // 2  # 20 tasks a minute, half to each variant, analysed every 15 minutes
    for label, p_treatment, cost_ratio in (("success 0.85 -> 0.55", 0.55, 1.0), ("cost x3 (guardrail)", 0.85, 3.0)):
        results = [run(rng, per_peek * 8, [per_peek * k for k in range(1, 9)], 0.85, p_treatment, cost_ratio)[:2]
                   for _ in range(n_rollback)]  # fmt: skip
        rolled = [n for decision, n in results if decision is Verdict.ROLLBACK]
        rollback_rows.append({
            "regression": label, "experiments": n_rollback, "rolled_back": len(rolled) / n_rollback,
            "median_minutes_to_rollback": statistics.median(15 * n / per_peek for n in rolled) if rolled else None,
            "median_tasks_to_rollback": 2 * statistics.median(rolled) if rolled else None,
        })  # fmt: skip
    timing = time.perf_counter()
    control, treatment = tasks(rng, 1000, 0.8), tasks(rng, 1000, 0.8)
    for _ in range(20):
        analyze([variant("control", control, 1000), variant("treatment", treatment, 1000)], WEIGHTS, CONFIG)
    analysis_ms = (time.perf_counter() - timing) / 20 * 1000

    report("experiments_aa", f"A/A: {n_aa} experiments, {len(peeks)} peeks each (every {peek} tasks per variant)", aa_rows,
           "false positive: ship_treatment or rollback at any peek; the naive test re-runs Welch's t (p < 0.05) at each peek")  # fmt: skip
    report("experiments_power", "Power and tasks per variant to a decision (peek every 100)", power_rows,
           "fixed_horizon_n_for_80pct: tasks per variant a single-look two-proportion test needs")  # fmt: skip
    report("experiments_rollback", "Time to rollback at 20 tasks/min, 50/50, analysed every 15 min", rollback_rows)
    payload = {**aa_result, "power": power_rows, "rollback": rollback_rows, "analysis_ms_1000_per_variant": analysis_ms,
               "aa_seconds": aa_seconds, "quick": quick}  # fmt: skip
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(payload, indent=2))
    print(f"one full analysis (1,000 tasks per variant, P(best) included): {analysis_ms:.1f} ms; JSON: {json_path}")
    return payload


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 A/A experiments and fewer power runs (a few minutes)")
    parser.add_argument("--json", type=Path, default=RESULTS / "experiments.json", help="where to write the results")
    args = parser.parse_args()
    main(args.quick, args.json)
