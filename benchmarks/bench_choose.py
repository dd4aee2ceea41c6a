"""Decision latency of `Router.choose` at 3 and 20 targets (weighted, the default, and Thompson sampling),
in a fixed state and while learning, against MABWiser's Thompson select+update in the same process; and
the memory a router holds per (target, task type), after 5 calls per pair and after 2,000 (the book's
latency sketch full).

Wall time includes whatever else the machine runs; CPU time (this thread's) leaves out time the process
was not scheduled, so on a loaded machine it is the closer measure of the code itself. Rows report the
median and p99 of each. Thompson's propensity is computed when first read (or before the next update):
`with_probability_*` is choose plus reading the decision's probability at once, as a recorder does.
    python benchmarks/bench_choose.py [--quick] [--json PATH]
"""

from __future__ import annotations

import gc
import json
import random
import sys
import time
import tracemalloc
from pathlib import Path

from common import median, p99, report

from routing import Outcome, Router, Target, Task, WeightedScore, WeightedScoreConfig
from routing.strategies.registry import build_strategy

STRATEGIES = ("weighted", "thompson")


def build(strategy: str, names: list[str], seed: int = 1) -> Router:
    chosen = (
        WeightedScore(WeightedScoreConfig(min_samples=50), seed=seed)
        if strategy == "weighted"
        else build_strategy(strategy, names, seed=seed)
    )
    return Router([Target(name=n) for n in names], chosen)


def outcome(target: str, rate: float, rng: random.Random, task_type: str = "qa") -> Outcome:
    return Outcome(target=target, task_type=task_type, success=rng.random() < rate,
                   duration_ms=rng.lognormvariate(5, 0.5))


def timed(router: Router, task: Task, decisions: int, learn: bool, rates: dict, rng) -> tuple[list, list, list, list]:
    """(wall µs, CPU µs, wall µs with the probability read, CPU µs of observing the outcome) per decision:
    while learning, each pick's outcome is observed, which is where a learning router now does the
    work the next decision would otherwise do (so the two are reported side by side)."""
    wall, cpu, full, observed = [], [], [], []
    clock, thread = time.perf_counter_ns, time.thread_time_ns
    for _ in range(decisions):
        c0, w0 = thread(), clock()
        decision = router.choose(task)
        w1, c1 = clock(), thread()
        decision.probability  # noqa: B018 - computed on first read
        w2 = clock()
        wall.append((w1 - w0) / 1000)
        cpu.append((c1 - c0) / 1000)
        full.append((w2 - w0) / 1000)
        if learn:
            result = outcome(decision.pick, rates[decision.pick], rng)
            c2 = thread()
            router.observe(result)
            observed.append((thread() - c2) / 1000)
    return wall, cpu, full, observed


def latency_rows(decisions: int) -> list[dict]:
    rows = []
    task = Task(task_type="qa", payload="What is 2 + 2?")
    for n_targets in (3, 20):
        names = [f"t{i}" for i in range(n_targets)]
        rates = {n: 0.5 + 0.38 * i / max(n_targets - 1, 1) for i, n in enumerate(names)}
        for strategy in STRATEGIES:
            for state in ("static", "learning"):
                rng = random.Random(1)
                router = build(strategy, names)
                for i in range(60 * n_targets):
                    router.observe(outcome(names[i % n_targets], rates[names[i % n_targets]], rng))
                wall, cpu, full, observed = timed(router, task, decisions, state == "learning", rates, rng)
                rows.append({
                    "strategy": strategy, "targets": n_targets, "state": state,
                    "median_us": median(wall), "p99_us": p99(wall),
                    "cpu_median_us": median(cpu), "cpu_p99_us": p99(cpu),
                    "with_probability_median_us": median(full), "with_probability_p99_us": p99(full),
                    "observe_cpu_median_us": median(observed) if observed else 0.0,
                })
    return rows


def noise_floor_row(decisions: int, median_us: float) -> dict:
    """A fixed pure-Python loop tuned to `median_us`, timed as `choose` is: the p99 this machine gives
    code that does the same work every call (its p99/median ratio is the machine's, not ours)."""
    def loop(n: int) -> int:
        total = 0
        for i in range(n):
            total += i * i
        return total

    thread = time.thread_time_ns

    def timed(n: int) -> float:
        c0 = thread()
        loop(n)
        return (thread() - c0) / 1000

    n = 100
    for _ in range(3):  # scale n until its median matches
        n = max(1, round(n * median_us / median([timed(n) for _ in range(300)])))
    cpu = []
    for _ in range(decisions):
        c0 = thread()
        loop(n)
        cpu.append((thread() - c0) / 1000)
    return {"workload": f"fixed loop of {n} steps", "cpu_median_us": median(cpu), "cpu_p99_us": p99(cpu),
            "p99_over_median": p99(cpu) / median(cpu)}


def rotation_rows(decisions: int) -> list[dict]:
    """Thompson, 20 targets, task types in rotation (one context each): the cost of many contexts."""
    names = [f"t{i}" for i in range(20)]
    rates = {n: 0.5 + 0.38 * i / 19 for i, n in enumerate(names)}
    rows = []
    for contexts in (1, 100, 500):
        tasks = [Task(task_type=f"type{c}", payload="What is 2 + 2?") for c in range(contexts)]
        for state in ("static", "learning"):
            rng = random.Random(4)
            router = build("thompson", names)
            for i in range(2_000):
                router.observe(outcome(names[i % 20], rates[names[i % 20]], rng, task_type=f"type{i % contexts}"))
            for task in tasks:  # every context seen once before timing
                router.choose(task)
            wall = []
            clock = time.perf_counter_ns
            for i in range(decisions):
                task = tasks[i % contexts]
                start = clock()
                pick = router.choose(task).pick
                wall.append((clock() - start) / 1000)
                if state == "learning":
                    router.observe(outcome(pick, rates[pick], rng, task_type=task.task_type))
            rows.append({"contexts_in_rotation": contexts, "state": state,
                         "median_us": median(wall), "p99_us": p99(wall)})
    return rows


def mabwiser_row(decisions: int) -> dict | None:
    """MABWiser Thompson select+update on 20 arms, and our Router.choose+observe alike, same process."""
    try:
        from mabwiser.mab import MAB, LearningPolicy
    except ImportError:
        return None
    names = [f"t{i}" for i in range(20)]
    rates = {n: 0.5 + 0.38 * i / 19 for i, n in enumerate(names)}
    rng = random.Random(2)
    mab = MAB(names, LearningPolicy.ThompsonSampling(), seed=1)
    mab.fit(names, [0] * len(names))
    router = build("thompson", names)
    for name in names:
        router.observe(Outcome(target=name, task_type="qa", success=False, duration_ms=1.0))
    task = Task(task_type="qa", payload="What is 2 + 2?")
    theirs, ours = [], []
    clock = time.perf_counter_ns
    for _ in range(decisions):
        start = clock()
        arm = mab.predict()
        mab.partial_fit([arm], [int(rng.random() < rates[arm])])
        theirs.append((clock() - start) / 1000)
        start = clock()
        pick = router.choose(task).pick
        router.observe(Outcome(target=pick, task_type="qa", success=rng.random() < rates[pick], duration_ms=1.0))
        ours.append((clock() - start) / 1000)
    return {"ours_choose_observe_median_us": median(ours), "ours_p99_us": p99(ours),
            "mabwiser_select_update_median_us": median(theirs), "mabwiser_p99_us": p99(theirs),
            "speedup_vs_mabwiser": median(theirs) / median(ours)}


def memory_rows(task_types: int, targets: int, calls_each: int, capped: bool = True) -> list[dict]:
    """Bytes a Thompson router (book + bandit) holds per (target, task type), traced by tracemalloc,
    while it routes: each outcome follows a decision whose propensity is read, as a recorder does. Then
    the same without the bandit's view cache (per (task type, eligible targets): pooled statistics,
    Beta draws made ahead and CDF tables, at most `view_limit` views, least recently used dropped),
    which is what grows with the number of task types; and (`capped`) with the book capped at half the
    pairs (least recently observed forgotten)."""
    rows = []
    names = [f"t{i}" for i in range(targets)]
    for cap in (None, task_types * targets // 2) if capped else (None,):
        router = build("thompson", names)  # built and ids made ahead untraced: the same for any number of pairs
        router.choose(Task(task_type="warm-up", payload="What is 2 + 2?")).probability  # noqa: B018
        router.strategy.bandit._views.clear()
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        if cap:
            router.book.max_entries = cap
        rng = random.Random(3)
        for t in range(task_types):
            task = Task(task_type=f"type{t}", payload="What is 2 + 2?")
            for _ in range(calls_each):
                for name in names:
                    router.choose(task).probability  # noqa: B018 - read as a recorder does
                    router.observe(outcome(name, 0.7, rng, task_type=task.task_type))
        gc.collect()  # what is only garbage (cycles not yet collected) is not held
        held = tracemalloc.get_traced_memory()[0] - before
        views = router.strategy.bandit._views
        kept_views = len(views)
        views.clear()
        gc.collect()
        persistent = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        pairs = task_types * targets
        rows.append({"task_types": task_types, "targets": targets, "calls_per_pair": calls_each,
                     "book_cap": cap or "none", "pairs_kept": len(router.book),
                     "bytes_per_pair": held / pairs, "bytes_per_pair_without_view_cache": persistent / pairs,
                     "view_cache_bytes_per_view": (held - persistent) / kept_views,
                     "view_limit": router.strategy.bandit.options.view_limit,
                     "book_bytes_per_kept_pair": router.book.nbytes() / len(router.book)})
    return rows


def main(quick: bool, json_path: str | None) -> dict:
    decisions = 3_000 if quick else 20_000
    latency = latency_rows(decisions)
    report("choose", "Router.choose: weighted (default) and Thompson, fixed state and learning", latency,
           f"{decisions:,} decisions each; µs wall and thread CPU")
    learning = next(r for r in latency if r["strategy"] == "thompson" and r["targets"] == 20 and r["state"] == "learning")
    floor = noise_floor_row(decisions, learning["cpu_median_us"])
    report("choose_noise_floor", "The machine's own tail: fixed work of Thompson-learning's median", [floor])
    rotation = rotation_rows(decisions)
    report("choose_contexts", "Thompson, 20 targets: task types in rotation", rotation)
    mab = mabwiser_row(decisions)
    if mab:
        report("choose_mabwiser", "Thompson, 20 arms: Router.choose+observe vs MABWiser select+update", [mab])
    memory = memory_rows(200 if quick else 1000, 20, 5)
    memory += memory_rows(5 if quick else 25, 20, 2_000, capped=False)  # latency windows full
    report("choose_memory", "Memory per (target, task type)", memory)
    result = {"latency": latency, "noise_floor": floor, "contexts": rotation, "mabwiser": mab, "memory": memory}
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    args = sys.argv[1:]
    main("--quick" in args, args[args.index("--json") + 1] if "--json" in args else None)
