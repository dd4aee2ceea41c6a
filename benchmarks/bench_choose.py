"""Decision latency of `Router.choose` with the first scorer, 3 and 20 targets, median and p99 µs.

Baseline in the same run: a bare `random.choice` over the same names, the floor any router pays.
    python benchmarks/bench_choose.py [--quick]
"""

from __future__ import annotations

import random
import sys

from common import median, p99, report, time_us

from routing import Outcome, Router, Target, Task, WeightedScore, WeightedScoreConfig


def router_with(n_targets: int, trusted: bool) -> Router:
    names = [f"t{i}" for i in range(n_targets)]
    router = Router([Target(name=n) for n in names], WeightedScore(WeightedScoreConfig(min_samples=50)))
    rng = random.Random(1)
    for name in names:
        for _ in range(60 if trusted else 10):
            router.observe(Outcome(target=name, task_type="qa", success=rng.random() < 0.8,
                                   duration_ms=rng.lognormvariate(5, 0.5)))
    return router


def main(quick: bool) -> None:
    repeat = 5_000 if quick else 50_000
    task = Task(task_type="qa", payload="What is 2 + 2?")
    rows = []
    for n_targets in (3, 20):
        names = [f"t{i}" for i in range(n_targets)]
        baseline = time_us(lambda names=names: random.choice(names), repeat)
        for trusted in (False, True):
            router = router_with(n_targets, trusted)
            samples = time_us(lambda router=router: router.choose(task), repeat)
            rows.append({
                "targets": n_targets,
                "phase": "scored" if trusted else "default order",
                "median_us": median(samples),
                "p99_us": p99(samples),
                "baseline_random_choice_us": median(baseline),
                "ratio_to_baseline": median(samples) / median(baseline),
            })
    report("choose", "Router.choose decision latency (weighted scorer)", rows, f"{repeat} decisions each")


if __name__ == "__main__":
    main("--quick" in sys.argv)
