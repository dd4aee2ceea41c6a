"""Experiments: what peeking costs, how much power the always-valid rule keeps, how soon it rolls back.

Simulated experiments analysed with the very rule the `analyze-experiments` flow applies
(routing.experiments.analysis.analyze: mSPRT confidence sequences on the primary metric, guardrails on
cost, p95 latency and error rate, SRM, futility). Each variant's tasks have success ~ Bernoulli(p),
cost ~ Gamma, latency ~ lognormal, errors ~ Bernoulli(1 %), as on the demo fleet.

  A/A            control == treatment, peeked at every `peek` tasks per variant up to the horizon:
                 aa_false_positive_rate = share of experiments that ever said ship_treatment or rollback;
                 beside it, a fixed-horizon t test (Welch) re-run at every peek, p < 0.05 (the naive way)
  power          success 0.80 against 0.85, 0.90 (better: ship_treatment) and 0.70 (worse: rollback or
                 keep_control): share reaching the right verdict by the horizon of 3,000 tasks per variant and
                 median tasks per variant at the decision; the fixed-horizon sample size
                 a two-proportion test needs for 80 % power is shown for scale
  qlearning      the seed's claim that Q-learning improves routing by > 5 %, measured as an experiment:
                 Thompson sampling (control) against Q-learning (treatment), both cost-aware (L = $0.01),
                 50/50 through the same PolicyRouting the runtime uses, on the stable fleet's per-category
                 success rates and prices (simulated calls, the demo's task mix); reward L x success - cost
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

from blocks.fleet.config import STABLE_FLEET_PATH, load_fleet_config
from blocks.fleet.knowledge import generate_tasks
from routing.experiments.analysis import VariantData, Verdict, analyze
from routing.experiments.assignment import ExperimentConfig, new_experiment
from routing.experiments.fixed_horizon import sample_size_two_proportions
from routing.experiments.live import PolicyRouting
from routing.experiments.policy import parse_policy
from routing.models import Outcome, Target, Task
from routing.router import Router

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


def qlearning_against_bandit(n_tasks: int, seed: int) -> dict:
    """One experiment, Thompson vs Q-learning, on simulated calls to the stable fleet."""
    fleet = load_fleet_config(STABLE_FLEET_PATH)
    targets = [Target(name=m.name) for m in fleet.models]
    names = [t.name for t in targets]
    config = ExperimentConfig(metric="reward", min_samples=100)
    experiment = new_experiment("qlearning-vs-bandit", parse_policy("thompson:willingness_to_pay=0.01"),
                                [parse_policy("qlearning:willingness_to_pay=0.01")], 0.5, config)  # fmt: skip
    routing = PolicyRouting(Router(targets, parse_policy("thompson").build(names, seed)), [experiment], seed=seed)
    rng = np.random.default_rng(seed)
    rows: dict[str, list[dict]] = {v.name: [] for v in experiment.variants}
    for entry in generate_tasks(n_tasks, seed):
        task = Task(task_type=entry.task_type, category=entry.category, payload=entry.prompt)
        decision = routing.choose(task)
        model = fleet.model(decision.pick)
        success = bool(rng.random() < model.quality_for(task.category))
        output_tokens = 20 + model.verbosity
        cost = (task.estimated_tokens * model.price.input_per_1k_tokens + output_tokens * model.price.output_per_1k_tokens) / 1000
        latency = float(rng.lognormal(np.log(model.latency.median_ms), model.latency.sigma))
        routing.observe(Outcome(target=model.name, task_type=task.task_type, category=task.category, success=success,
                                duration_ms=latency, cost=cost), decision.id)  # fmt: skip
        rows[decision.variant].append({"success": success, "cost": cost, "latency_ms": latency, "errored": 0})
    result = analyze([VariantData.from_rows(v.name, rows[v.name]) for v in experiment.variants], experiment.weights, config)
    control, treatment = result.variants
    bound = result.comparisons[0].primary
    return {
        "seed": seed, "tasks": n_tasks, "thompson_reward": control.mean_reward, "qlearning_reward": treatment.mean_reward,
        "improvement_pct": 100 * (treatment.mean_reward - control.mean_reward) / abs(control.mean_reward),
        "difference_low": bound.low, "difference_high": bound.high, "decision": result.decision.value,
    }  # fmt: skip


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
    for p_treatment in (0.85, 0.90, 0.70):
        outcomes = [run(rng, power_horizon, power_peeks, 0.8, p_treatment)[:2] for _ in range(n_power)]
        # a better treatment must be shipped; a worse one stopped (rollback, or keep_control when it can no
        # longer be better by the minimum effect before it is proven worse)
        wanted = {Verdict.SHIP_TREATMENT} if p_treatment > 0.8 else {Verdict.ROLLBACK, Verdict.KEEP_CONTROL}
        right = [n for decision, n in outcomes if decision in wanted]
        power_rows.append({
            "effect": f"0.80 -> {p_treatment:.2f}", "experiments": n_power, "horizon_per_variant": power_horizon,
            "power": len(right) / n_power,
            "rollback_share": sum(d is Verdict.ROLLBACK for d, _ in outcomes) / n_power,
            "median_tasks_to_decision": float(statistics.median(right)) if right else None,
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
    q_rows = [qlearning_against_bandit(2000 if quick else 4000, seed) for seed in range(1 if quick else 3)]
    timing = time.perf_counter()
    control, treatment = tasks(rng, 1000, 0.8), tasks(rng, 1000, 0.8)
    for _ in range(20):
        analyze([variant("control", control, 1000), variant("treatment", treatment, 1000)], WEIGHTS, CONFIG)
    analysis_ms = (time.perf_counter() - timing) / 20 * 1000

    report("experiments_aa", f"A/A: {n_aa} experiments, {len(peeks)} peeks each (every {peek} tasks per variant)", aa_rows,
           "false positive: ship_treatment or rollback at any peek; the naive test re-runs Welch's t (p < 0.05) at each peek")  # fmt: skip
    report("experiments_power", "Power and tasks per variant to a decision (peek every 100)", power_rows,
           "fixed_horizon_n_for_80pct: tasks per variant a single-look two-proportion test needs")  # fmt: skip
    report("experiments_qlearning", "Q-learning against Thompson sampling as an experiment (reward = L x success - cost)",
           q_rows, "the seed claimed > 5 % improvement for Q-learning; improvement_pct is measured, difference_* is the "
           "always-valid 95 % bound on its reward minus Thompson's")  # fmt: skip
    report("experiments_rollback", "Time to rollback at 20 tasks/min, 50/50, analysed every 15 min", rollback_rows)
    payload = {**aa_result, "power": power_rows, "rollback": rollback_rows, "qlearning_vs_bandit": q_rows, "analysis_ms_1000_per_variant": analysis_ms,
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
