"""Our bandits against MABWiser's on 5 Bernoulli arms: time per select+update and pseudo-regret.

Each (library, policy, arm set) plays 10,000 rounds per seed with the same rewards for both libraries
(common random numbers); pseudo-regret is Σ_t (μ* - μ_pick), averaged over seeds. Equivalent settings:
epsilon-greedy with ε = 0.1, UCB1 with MABWiser's alpha = 1 (our c = sqrt 2), Beta(1, 1) Thompson.
Both start from one failure per arm (MABWiser's `fit` requires data; ours gets the same). A last table
times `Router.choose` + `observe` with 5 and 20 targets under Thompson sampling (propensity included)
against the weighted scorer in the same run.

    python benchmarks/bench_bandits.py [--quick]
"""

from __future__ import annotations

import math
import os
import random
import sys
import time

import numpy as np
from common import median, p99, report, time_us
from mabwiser.mab import MAB, LearningPolicy

from routing import Outcome, Router, Target, Task, WeightedScore
from routing.bandits import UCB1, BanditStrategy, EpsilonGreedy, ThompsonSampling

os.environ.setdefault("COLUMNS", "200")  # wide tables stay readable when piped

ARM_SETS = {"low (.1-.5)": (0.1, 0.2, 0.3, 0.4, 0.5), "high (.6-.8)": (0.6, 0.65, 0.7, 0.75, 0.8)}
ROUNDS = 10_000
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


def router_rows(repeat: int, targets: int) -> list[dict]:
    """Router.choose + observe: Thompson (with propensity) vs the weighted scorer."""
    names = [f"t{i}" for i in range(targets)]
    means = {n: 0.5 + 0.4 * i / targets for i, n in enumerate(names)}
    task = Task(task_type="qa", payload="What is 2 + 2?")
    rows = []
    for label, strategy in (
        ("weighted (baseline)", WeightedScore(seed=1)),
        ("thompson", BanditStrategy(ThompsonSampling, names, seed=1)),
    ):
        router = Router([Target(name=n) for n in names], strategy)
        rng = random.Random(2)

        def step(router: Router = router, rng: random.Random = rng) -> None:
            pick = router.choose(task).pick
            router.observe(
                Outcome(target=pick, task_type="qa", success=rng.random() < means[pick], duration_ms=1)
            )

        samples = time_us(step, repeat)
        rows.append(
            {"strategy": label, "targets": targets, "median_us": median(samples), "p99_us": p99(samples)}
        )
    for row in rows:
        row["ratio_to_weighted"] = row["median_us"] / rows[0]["median_us"]
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
    repeat = 2_000 if quick else 10_000
    report(
        "bandits_router",
        "Router.choose + observe, 5 and 20 targets",
        router_rows(repeat, 5) + router_rows(repeat, 20),
        f"{repeat:,} decisions each; Thompson includes computing the pick's exact propensity",
    )


if __name__ == "__main__":
    main("--quick" in sys.argv)
