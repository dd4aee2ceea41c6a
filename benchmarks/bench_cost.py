"""Cost per successful task: the cost-aware router against always-the-best-model and a random choice.

Aim (the issue): at least 60% cheaper per successful task than the best model, at 95% or more of its
success rate. `cps_vs_best` is cost per successful task over the best model's, `success_vs_best` the
success rate over its; a row meets the aim in a seed when cps_vs_best <= 0.4 and success_vs_best >= 0.95.

1. Local fleet (blocks/fleet/stable.toml over loopback HTTP): the demo's tasks that every model can serve
   (1,000 and 3,000 drawn: what learning costs over a short and a longer run), routed one after another
   without Prefect (choose, execute, grade, observe; the first pick only, no fallback). On the same
   tasks: every single model (the best one is the most successful in that seed), a uniform random
   choice, Thompson sampling with a willingness to pay L (dollars per success: it maximises
   L * success - cost; "-" is success alone), and the CostAwareStrategy with its balanced and critical
   objectives. The CostAwareStrategy keeps the default order until every target has `min_samples` calls
   of the task type, so it is given a forced exploration first: a uniform pick among the targets short
   of EXPLORE calls, whose cost counts. A seed's policies run concurrently, each its own sequence of
   calls (so the fleet's random draws interleave differently from run to run: figures vary by a few
   points between runs); medians over seeds.
2. RouterBench (../shared/data/routerbench): routing.evaluation.replay.replay of Thompson sampling at several L,
   cold (every row, no history) and warm (30% of the rows observed first with every model's outcome,
   as a benchmark run would give; the other 70% routed); the CostAwareStrategy warm only (cold it never
   leaves the default order). Random is the expected value of a uniform choice per row (the mean over
   models); the best model is the most accurate one. Medians over seeded row orders.

Each data set also gets the hindsight ceiling of a router whose only context is the task type (the eval
on RouterBench): the best per-task-type mixture of single models at AIM_COST * AIM_SUCCESS of the best
model's spend (bench_replay.per_eval_ceiling; on the fleet from the single models' answers to the same
tasks). If its success_vs_best reaches AIM_SUCCESS, the aim is reachable; what a learning router loses
against it is the price of learning online.

    python benchmarks/bench_cost.py [--quick]
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from bench_replay import per_eval_ceiling
from common import ROUTERBENCH, report

from blocks.fleet.config import STABLE_FLEET_PATH, FleetConfig, load_fleet_config
from blocks.fleet.launcher import FleetServer
from blocks.fleet.targets import fleet_targets
from blocks.targets.http import OpenAICompatibleTarget
from flows.demo import demo_tasks
from routing import Outcome, Router, Target, Task
from routing.calls.outcomes import build_record
from routing.evaluation.replay import ReplayData, load_routerbench, replay
from routing.models import Candidate
from routing.stats.book import StatsBook
from routing.strategies.base import Choice, Strategy
from routing.strategies.objectives import Objective, Priority
from routing.strategies.registry import build_strategy

os.environ.setdefault("COLUMNS", "220")  # wide tables stay readable when piped

AIM_COST, AIM_SUCCESS = 0.4, 0.95  # of the best model's cost per success and success rate
FLEET_L = (None, 0.003, 0.01, 0.015, 0.02, 0.03)
ROUTERBENCH_L = (None, 0.02, 0.03, 0.05, 0.055, 0.06, 0.07, 0.1)
EXPLORE = 10  # calls per target and task type before the CostAwareStrategy decides
WARM_FRACTION = 0.3
CEILING = ("per-task-type mixture, hindsight", "-")


@dataclass(frozen=True)
class Tally:
    """What one policy achieved on one seed's tasks."""

    tasks: int
    successes: float  # expected successes for the analytical random policy
    cost: float

    @property
    def success_rate(self) -> float:
        return self.successes / self.tasks

    @property
    def cost_per_success(self) -> float:
        return self.cost / self.successes if self.successes else float("inf")


class UniformRandom:
    """Every eligible target with the same probability, whatever happened before."""

    name = "random"

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def choose(self, task: Task, targets: Sequence[Target], book: StatsBook) -> Choice:
        pick = self._rng.choice(targets).name
        candidates = tuple(Candidate(target=t.name, score=0.0) for t in targets)
        return Choice(candidates, pick, 1 / len(targets), "uniform at random")

    def observe(self, outcome: Outcome) -> None:
        """Learns nothing."""


class ExploreFirst:
    """`strategy`, once every target has `calls` outcomes of the task type; before, a uniform pick among
    the targets that have fewer (for strategies that otherwise never leave their default order)."""

    def __init__(self, strategy: Strategy, calls: int, seed: int) -> None:
        self.strategy, self.calls, self.name = strategy, calls, strategy.name
        self._rng = random.Random(seed)

    def choose(self, task: Task, targets: Sequence[Target], book: StatsBook) -> Choice:
        short = [t for t in targets if (s := book.get(t.name, task.task_type)) is None or s.n < self.calls]
        if not short:
            return self.strategy.choose(task, targets, book)
        pick = self._rng.choice(short).name
        candidates = tuple(Candidate(target=t.name, score=float(t in short)) for t in targets)
        return Choice(candidates, pick, 1 / len(short), f"exploring: fewer than {self.calls} calls")

    def observe(self, outcome: Outcome) -> None:
        self.strategy.observe(outcome)


# -- the local fleet ------------------------------------------------------------------------------------


async def route(router: Router, clients: dict[str, OpenAICompatibleTarget], tasks: list[Task]) -> np.ndarray:
    """Each task to the router's pick, once, graded against its expectation: (success, cost) per task."""
    outcomes = np.zeros((len(tasks), 2))
    for i, task in enumerate(tasks):
        decision = router.choose(task)
        client = clients[decision.pick]
        result = await client.execute(task)
        record = build_record(
            task, decision, router.target(decision.pick), result, 1, cost_estimate=client.cost_estimate(task)
        )
        router.observe(Outcome.from_record(record))
        outcomes[i] = record.success, record.actual_cost or 0.0
    return outcomes


def fleet_policies(names: list[str], seed: int) -> dict[tuple[str, str], tuple[list[str], Strategy]]:
    """(policy, L) -> (the targets it routes across, its strategy)."""
    policies: dict[tuple[str, str], tuple[list[str], Strategy]] = {
        (f"always {name}", "-"): ([name], build_strategy("weighted", [name])) for name in names
    }
    policies[("random", "-")] = (names, UniformRandom(seed))
    for level in FLEET_L:
        priced = {} if level is None else {"willingness_to_pay": level}
        policies[("thompson", _level(level))] = (names, build_strategy("thompson", names, seed, **priced))
    for priority in (Priority.BALANCED, Priority.CRITICAL):
        strategy = build_strategy(
            "cost_aware", names, seed, default=Objective(priority=priority), min_samples=EXPLORE
        )
        policies[(f"cost_aware {priority.value}", "-")] = (names, ExploreFirst(strategy, EXPLORE, seed))
    return policies


async def fleet_seed(
    config: FleetConfig, base_url: str, n_tasks: int, seed: int
) -> dict[tuple[str, str], Tally]:
    clients = {c.target_name: c for c in fleet_targets(config, base_url)}
    descriptors = {name: c.descriptor() for name, c in clients.items()}
    tasks = [t for t in demo_tasks(n_tasks, seed) if not t.required_capabilities]
    names = list(clients)
    policies = fleet_policies(names, seed)
    routed = [
        route(Router([descriptors[n] for n in over], s), clients, tasks) for over, s in policies.values()
    ]
    try:
        outcomes = dict(zip(policies, await asyncio.gather(*routed)))
    finally:
        for client in clients.values():
            await client.aclose()
    run = {key: Tally(len(tasks), float(o[:, 0].sum()), float(o[:, 1].sum())) for key, o in outcomes.items()}
    singles = ReplayData(  # every model answered every task: the table a hindsight mixture chooses from
        models=tuple(names),
        sample_ids=tuple(t.id for t in tasks),
        prompts=tuple(t.payload for t in tasks),
        eval_names=tuple(t.task_type for t in tasks),
        correct=np.column_stack([outcomes[(f"always {n}", "-")][:, 0] for n in names]),
        cost=np.column_stack([outcomes[(f"always {n}", "-")][:, 1] for n in names]),
    )
    run[CEILING] = ceiling(singles, run[_best_single(run)])
    return run


def fleet_rows(n_tasks: int, seeds: int) -> list[dict]:
    config = load_fleet_config(STABLE_FLEET_PATH)
    with FleetServer(config) as fleet:
        runs = [asyncio.run(fleet_seed(config, fleet.base_url, n_tasks, seed)) for seed in range(seeds)]
    return summarise("local fleet", f"{n_tasks} tasks", runs)


def _best_single(run: dict[tuple[str, str], Tally]) -> tuple[str, str]:
    """The most successful "always <model>" policy (the cheaper one on a tie)."""
    singles = [key for key in run if key[0].startswith("always ")]
    return max(singles, key=lambda key: (run[key].success_rate, -run[key].cost))


def ceiling(data: ReplayData, best: Tally) -> Tally:
    """The most successes any per-task-type mixture of single models, chosen in hindsight, gets for
    AIM_COST * AIM_SUCCESS of the best model's spend: at or above AIM_SUCCESS of its success rate there,
    the aim is within reach of a router whose only context is the task type."""
    accuracy, cost = per_eval_ceiling(data, AIM_COST * AIM_SUCCESS * best.cost)
    return Tally(len(data), accuracy * len(data), cost)


# -- RouterBench ------------------------------------------------------------------------------------------


def routerbench_rows(seeds: int) -> list[dict]:
    paths = sorted(ROUTERBENCH.glob("*.csv"))
    if not paths:
        print(f"skipped RouterBench: no CSV in {ROUTERBENCH}")
        return []
    data = load_routerbench(paths)
    warm, rest = data.split(WARM_FRACTION, seed=0)
    rows = []
    for setting, (evaluated, history) in {"cold": (data, None), "warm": (rest, warm)}.items():
        runs = [replayed(evaluated, history, seed) for seed in range(seeds)]
        rows += summarise("routerbench", setting, runs)
    return rows


def replayed(data: ReplayData, history: ReplayData | None, seed: int) -> dict[tuple[str, str], Tally]:
    """One seeded row order: the best model, random, Thompson at every L, and warm the CostAwareStrategy."""
    n = len(data)
    thompson = replay(data, "thompson", list(ROUTERBENCH_L), warm_start=history, shuffle_seed=seed, seed=seed)
    best = thompson.models[thompson.best_model]
    uniform = Tally(n, float(data.correct.mean(axis=1).sum()), float(data.cost.mean(axis=1).sum()))
    out = {
        (f"always {thompson.best_model}", "-"): Tally(n, best.correct, best.total_cost),
        ("random (expected)", "-"): uniform,
    }
    out[CEILING] = ceiling(data, out[(f"always {thompson.best_model}", "-")])
    for run in thompson.runs:
        out[("thompson", _level(run.willingness_to_pay))] = Tally(n, run.correct, run.total_cost)
    if history is not None:
        for priority in (Priority.BALANCED, Priority.CRITICAL):
            (run,) = replay(
                data, "cost_aware", warm_start=history, shuffle_seed=seed, seed=seed,
                default=Objective(priority=priority),
            ).runs  # fmt: skip
            out[(f"cost_aware {priority.value}", "-")] = Tally(n, run.correct, run.total_cost)
    return out


# -- the table --------------------------------------------------------------------------------------------


def summarise(dataset: str, setting: str, runs: list[dict[tuple[str, str], Tally]]) -> list[dict]:
    """Per policy, medians over seeds of its figures and of its ratios to that seed's best model."""
    rows = []
    for key in runs[0]:
        ratios = []
        for run in runs:
            best = run[_best_single(run)]
            ratios.append(
                (run[key].cost_per_success / best.cost_per_success, run[key].success_rate / best.success_rate)
            )
        met = sum(cost <= AIM_COST and success >= AIM_SUCCESS for cost, success in ratios)
        rows.append({
            "data": dataset,
            "setting": setting,
            "policy": key[0],
            "L": key[1],
            "success_rate": statistics.median(run[key].success_rate for run in runs),
            "total_cost": statistics.median(run[key].cost for run in runs),
            "usd_per_1k_successes": 1000 * statistics.median(run[key].cost_per_success for run in runs),
            "cps_vs_best": statistics.median(cost for cost, _ in ratios),
            "success_vs_best": statistics.median(success for _, success in ratios),
            "aim_met": f"{met}/{len(runs)}",
        })  # fmt: skip
    return rows


def _level(level: float | None) -> str:
    return "-" if level is None else f"{level:g}"


def main(quick: bool) -> None:
    horizons, seeds = ((300,), 3) if quick else ((1000, 3000), 3)
    rows = [row for n in horizons for row in fleet_rows(n, seeds)] + routerbench_rows(seeds)
    notes = (
        f"local fleet: {' and '.join(map(str, horizons))} demo tasks drawn per seed (~89% of them served by "
        f"every model, the others left out), {seeds} seeds; RouterBench: {seeds} seeded row orders, warm = "
        f"{WARM_FRACTION:.0%} observed first. Medians over seeds; aim = cps_vs_best <= {AIM_COST} and "
        f"success_vs_best >= {AIM_SUCCESS} (seeds meeting it)"
    )
    report("cost", "Cost per successful task: cost-aware routing vs the best model vs random", rows, notes)


if __name__ == "__main__":
    main("--quick" in sys.argv)
