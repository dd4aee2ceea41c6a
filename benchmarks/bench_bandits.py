"""Our bandits against MABWiser's on 5 Bernoulli arms: time per select+update and pseudo-regret.

Each (library, policy, arm set) plays 10,000 rounds per seed with the same rewards for both libraries
(common random numbers); pseudo-regret is Σ_t (μ* - μ_pick), averaged over seeds. Equivalent settings:
epsilon-greedy with ε = 0.1, UCB1 with MABWiser's alpha = 1 (our c = sqrt 2), Beta(1, 1) Thompson.
Both start from one failure per arm (MABWiser's `fit` requires data; ours gets the same). Both Thompson
samplers draw numpy Beta variates from `default_rng(seed)`, arm by arm, so their picks (and regret)
coincide: the comparison there is of time only. A last table
times `Router.choose` (the pick's propensity included) for each bandit strategy against the weighted
scorer, with 5 and 20 targets, in two states: fixed after 2,000 outcomes ("static": repeated decisions
reuse what was derived from the statistics) and "learning" (each pick's outcome is observed, untimed,
before the next decision, so every decision starts from changed statistics).

    python benchmarks/bench_bandits.py [--quick]
"""

from __future__ import annotations

import math
import os
import random
import sys
import time

import numpy as np
from common import median, p99, report
from mabwiser.mab import MAB, LearningPolicy

from routing import Outcome, Router, Target, Task
from routing.strategies.bandits.learners import UCB1, EpsilonGreedy, ThompsonSampling
from routing.strategies.registry import build_strategy

os.environ.setdefault("COLUMNS", "200")  # wide tables stay readable when piped

ARM_SETS = {"low (.1-.5)": (0.1, 0.2, 0.3, 0.4, 0.5), "high (.6-.8)": (0.6, 0.65, 0.7, 0.75, 0.8)}
ROUNDS = 10_000
ROUTER_STRATEGIES = ("weighted", "thompson", "gaussian_thompson", "ucb1", "epsilon_greedy")
WARM_UP = 2_000
POLICIES = {
    "thompson": (lambda arms, seed: ThompsonSampling(arms, seed), LearningPolicy.ThompsonSampling()),
    "ucb1": (lambda arms, seed: UCB1(arms, seed, c=math.sqrt(2)), LearningPolicy.UCB1(alpha=1)),
    "epsilon_greedy": (
        lambda arms, seed: EpsilonGreedy(arms, seed, epsilon=0.1),
        LearningPolicy.EpsilonGreedy(0.1),
    ),
}


class MabWiserPlayer:
    """MABWiser's predict / partial_fit, behind our select / update."""

    def __init__(self, arms: list[str], policy, seed: int) -> None:
        self.mab = MAB(arms, policy, seed=seed)
        self.mab.fit(arms, [0] * len(arms))

    def select(self) -> str:
        return self.mab.predict()

    def update(self, arm: str, reward: float) -> None:
        self.mab.partial_fit([arm], [reward])


def play(player, means: tuple[float, ...], rewards: np.ndarray) -> tuple[list[float], float]:
    """(µs per select+update, pseudo-regret) over the rounds of `rewards` (rounds x arms)."""
    names = [str(i) for i in range(len(means))]
    index = {n: i for i, n in enumerate(names)}
    best = max(means)
    times, regret = [], 0.0
    clock = time.perf_counter_ns
    for row in rewards:
        start = clock()
        arm = player.select()
        player.update(arm, row[index[arm]])
        times.append((clock() - start) / 1000)
        regret += best - means[index[arm]]
    return times, regret


def bandit_rows(seeds: int) -> list[dict]:
    rows = []
    for policy, (ours, theirs) in POLICIES.items():
        for label, means in ARM_SETS.items():
            if policy != "thompson" and label != "low (.1-.5)":
                continue
            results = {}
            for library in ("ours", "mabwiser"):
                times, regrets = [], []
                for seed in range(seeds):
                    rewards = (np.random.default_rng(seed).random((ROUNDS, len(means))) < means).astype(float)
                    names = [str(i) for i in range(len(means))]
                    if library == "ours":
                        player = ours(names, seed)
                        for name in names:
                            player.update(name, 0.0)
                    else:
                        player = MabWiserPlayer(names, theirs, seed)
                    seed_times, regret = play(player, means, rewards)
                    times += seed_times
                    regrets.append(regret)
                results[library] = (
                    median(times),
                    p99(times),
                    float(np.mean(regrets)),
                    float(np.std(regrets)),
                )
            ours_t, theirs_t = results["ours"], results["mabwiser"]
            rows.append(
                {
                    "policy": policy,
                    "arms": label,
                    "ours_median_us": ours_t[0],
                    "ours_p99_us": ours_t[1],
                    "mabwiser_median_us": theirs_t[0],
                    "mabwiser_p99_us": theirs_t[1],
                    "speedup": theirs_t[0] / ours_t[0],
                    "ours_regret": ours_t[2],
                    "ours_regret_sd": ours_t[3],
                    "mabwiser_regret": theirs_t[2],
                    "mabwiser_regret_sd": theirs_t[3],
                }
            )
    return rows


def outcome(target: str, rate: float, rng: random.Random) -> Outcome:
    """A call's outcome: success with probability `rate`, judged quality around 100 * rate."""
    quality = min(100.0, 100 * rate * rng.uniform(0.8, 1.2))
    success = rng.random() < rate
    return Outcome(
        target=target, task_type="qa", success=success, duration_ms=1 + rng.random(), quality_score=quality
    )


def router_rows(rounds: int, decisions: int, targets: int) -> list[dict]:
    """Router.choose per strategy, success rates 0.5 to 0.88 over the targets, after WARM_UP outcomes.

    The strategies take turns decision by decision, so load from other processes hits them alike; each
    of `rounds` runs starts from fresh routers, and a row reports the median of the runs' medians and p99s.
    """
    names = [f"t{i}" for i in range(targets)]
    rates = {n: 0.5 + 0.38 * i / (targets - 1) for i, n in enumerate(names)}
    task = Task(task_type="qa", payload="What is 2 + 2?")
    clock = time.perf_counter_ns
    rows = []
    for state in ("static", "learning"):
        medians: dict[str, list[float]] = {name: [] for name in ROUTER_STRATEGIES}
        p99s: dict[str, list[float]] = {name: [] for name in ROUTER_STRATEGIES}
        for run in range(rounds):
            rng = random.Random(run)
            routers = {}
            for name in ROUTER_STRATEGIES:
                router = Router([Target(name=n) for n in names], build_strategy(name, names, seed=run))
                for i in range(WARM_UP):
                    router.observe(outcome(names[i % targets], rates[names[i % targets]], rng))
                routers[name] = router
            samples: dict[str, list[float]] = {name: [] for name in ROUTER_STRATEGIES}
            for _ in range(decisions):
                for name, router in routers.items():
                    start = clock()
                    pick = router.choose(task).pick
                    samples[name].append((clock() - start) / 1000)
                    if state == "learning":
                        router.observe(outcome(pick, rates[pick], rng))
            for name in ROUTER_STRATEGIES:
                medians[name].append(median(samples[name]))
                p99s[name].append(p99(samples[name]))
        baseline = median(medians["weighted"])
        for name in ROUTER_STRATEGIES:
            rows.append(
                {
                    "strategy": name + (" (baseline)" if name == "weighted" else ""),
                    "targets": targets,
                    "state": state,
                    "median_us": median(medians[name]),
                    "p99_us": median(p99s[name]),
                    "ratio_to_weighted": median(medians[name]) / baseline,
                }
            )
    return rows


def main(quick: bool) -> None:
    seeds = 3 if quick else 20
    report(
        "bandits",
        f"Bandits vs MABWiser: 5 Bernoulli arms, {ROUNDS:,} rounds, {seeds} seeds (select + update)",
        bandit_rows(seeds),
        "pseudo-regret = Σ (best mean - picked mean), mean and sd over seeds; "
        "speedup = MABWiser / ours (median)",
    )
    rounds, decisions = (3, 2_000) if quick else (5, 5_000)
    report(
        "bandits_router",
        "Router.choose by strategy, 5 and 20 targets, fixed state and learning",
        router_rows(rounds, decisions, 5) + router_rows(rounds, decisions, 20),
        f"median over {rounds} runs of {decisions:,} decisions per strategy (interleaved) of the median and "
        "p99 µs; propensities included (Thompson: the pick's integral)",
    )


if __name__ == "__main__":
    main("--quick" in sys.argv)
