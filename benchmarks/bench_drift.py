"""Drift: the best target's success rate drops from 0.9 to 0.3 part-way; how soon does each mode move?

Five targets (0.9 -> 0.3 at round 2,000; then 0.7, 0.5, 0.4, 0.3 throughout). For every bandit in its
stationary, discounted and sliding-window modes:

  calls_to_move   calls after the drop until the degraded target gets under half of the last 50 picks
                  (median over seeds; the horizon of 3,000 calls if it never happens)
  wasted_calls    picks of the degraded target in the 3,000 calls after the drop (mean over seeds)
  regret_before   pseudo-regret over the 2,000 calls before the drop: what forgetting costs when
                  nothing changes

Stationary Thompson sampling is the baseline of the `ratio` column (calls_to_move / baseline's).

    python benchmarks/bench_drift.py [--quick]
"""

from __future__ import annotations

import os
import random
import statistics
import sys
from collections import deque

from common import report

from routing.strategies.bandits.learners import UCB1, EpsilonGreedy, ThompsonSampling

os.environ.setdefault("COLUMNS", "200")  # wide tables stay readable when piped

BEFORE, AFTER, TRAIL = 2_000, 3_000, 50
ARMS = ["degrading", "b", "c", "d", "e"]
MEANS_BEFORE = {"degrading": 0.9, "b": 0.7, "c": 0.5, "d": 0.4, "e": 0.3}
MEANS_AFTER = {**MEANS_BEFORE, "degrading": 0.3}
MODES = {
    "stationary": {},
    "discount 0.99": {"discount": 0.99},
    "discount 0.995": {"discount": 0.995},
    "window 200": {"window": 200},
    "window 500": {"window": 500},
}
LEARNERS = {"thompson": ThompsonSampling, "ucb1": UCB1, "epsilon_greedy": EpsilonGreedy}


def run(cls, options: dict, seed: int) -> tuple[int, int, float]:
    bandit = cls(ARMS, seed, **options)
    rng = random.Random(seed + 1000)
    regret_before = 0.0
    for _ in range(BEFORE):
        arm = bandit.select()
        bandit.update(arm, float(rng.random() < MEANS_BEFORE[arm]))
        regret_before += 0.9 - MEANS_BEFORE[arm]
    recent: deque[bool] = deque(maxlen=TRAIL)
    moved, wasted = AFTER, 0
    for t in range(1, AFTER + 1):
        arm = bandit.select()
        bandit.update(arm, float(rng.random() < MEANS_AFTER[arm]))
        recent.append(arm == "degrading")
        wasted += arm == "degrading"
        if moved == AFTER and len(recent) == TRAIL and sum(recent) < TRAIL / 2:
            moved = t
    return moved, wasted, regret_before


def main(quick: bool) -> None:
    seeds = 5 if quick else 20
    rows = []
    for learner, cls in LEARNERS.items():
        for mode, options in MODES.items():
            results = [run(cls, options, seed) for seed in range(seeds)]
            rows.append(
                {
                    "bandit": learner,
                    "mode": mode,
                    "calls_to_move": statistics.median(r[0] for r in results),
                    "wasted_calls": statistics.fmean(r[1] for r in results),
                    "regret_before": statistics.fmean(r[2] for r in results),
                }
            )
    baseline = rows[0]["calls_to_move"]
    for row in rows:
        row["ratio"] = row["calls_to_move"] / baseline
    report(
        "drift",
        f"Recovery after a target drops from 0.9 to 0.3 at call {BEFORE:,} ({seeds} seeds)",
        rows,
        f"calls_to_move: calls until the degraded target has < half of the last {TRAIL} picks "
        f"(median; {AFTER:,} = never); ratio vs stationary Thompson",
    )


if __name__ == "__main__":
    main("--quick" in sys.argv)
