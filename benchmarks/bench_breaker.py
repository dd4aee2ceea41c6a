"""What the circuit breaker costs per decision, and what it saves when one of three targets is down.

1. `Router.choose` (3 and 20 targets), median and p99 µs, all in the same run: the strategy alone (no
   filtering, no Decision), the Router with its capability filter only, then with `BreakerBoard.available`
   as its availability filter (all closed; one open), and with a capability requirement on top.
   Also the board's own calls: `available` (peek) and `allow` + `record`.
2. Three fleet models over loopback HTTP, the first in the default order permanently down (503): N tasks
   routed one after another through routing.calls.plan.AttemptPlan, without a breaker (with and without
   retries) and with one. Share of tasks that succeed, attempts per task, calls wasted on the down
   target, and task latency. Retry delays are scaled down (base 10 ms, cap 100 ms) to keep the run short.

    python benchmarks/bench_breaker.py [--quick]
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable

from common import median, p99, report, time_us

from blocks.fleet.config import STABLE_FLEET_PATH, FleetConfig, Outage, load_fleet_config
from blocks.fleet.launcher import FleetServer
from blocks.targets.http import OpenAICompatibleTarget
from routing import Capability, Outcome, Router, Target, Task, WeightedScore, WeightedScoreConfig
from routing.calls.breaker import BreakerBoard, BreakerConfig
from routing.calls.plan import NO_RETRIES, AttemptPlan
from routing.calls.retry import RetryPolicy
from routing.models import AttemptResult

os.environ.setdefault("COLUMNS", "200")  # wide tables stay readable when piped

FAST_RETRIES = RetryPolicy(max_retries=2, base_delay_seconds=0.01, max_delay_seconds=0.1, seed=1)


def targets_for(n: int) -> list[Target]:
    """Every other target can run batches, so a batch requirement filters half of them out."""
    return [
        Target(
            name=f"t{i}",
            capabilities=frozenset({Capability.CHAT, Capability.BATCH_EXECUTION})
            if i % 2 == 0
            else frozenset({Capability.CHAT}),
        )
        for i in range(n)
    ]


def choose_variants(n: int) -> list[tuple[str, Callable[[], object]]]:
    targets = targets_for(n)
    plain = Task(task_type="qa", payload="What is 2 + 2?")
    batch = plain.model_copy(update={"required_capabilities": frozenset({Capability.BATCH_EXECUTION})})
    strategy = WeightedScore(WeightedScoreConfig(min_samples=100))
    one_open = BreakerBoard(BreakerConfig(failure_threshold=1))
    one_open.breaker("t1").record_failure("down")
    router = Router(targets, strategy)
    closed_router = Router(targets, strategy, available=BreakerBoard().available)
    open_router = Router(targets, strategy, available=one_open.available)
    return [
        ("strategy only (no filter, no Decision)", lambda: strategy.choose(plain, targets, router.book)),
        ("Router: capability filter only (baseline)", lambda: router.choose(plain)),
        ("Router + breaker, all closed", lambda: closed_router.choose(plain)),
        ("Router + breaker, one open", lambda: open_router.choose(plain)),
        ("Router + breaker + capability requirement", lambda: closed_router.choose(batch)),
    ]


def choose_rows(repeat: int) -> list[dict]:
    rows = []
    for n in (3, 20):
        timed = []
        for label, fn in choose_variants(n):
            samples = time_us(fn, repeat)
            timed.append(
                {"targets": n, "variant": label, "median_us": median(samples), "p99_us": p99(samples)}
            )
        baseline = timed[1]["median_us"]
        rows += [row | {"ratio_to_baseline": row["median_us"] / baseline} for row in timed]
    board = BreakerBoard()
    ok = AttemptResult(target="t0", ok=True, duration_ms=1.0)
    timed = []
    for label, fn in (
        ("Router's default availability (lambda: True)", lambda: True),
        ("board.available (peek)", lambda: board.available("t0")),
        ("board.allow + board.record", lambda: (board.allow("t0"), board.record(ok))),
    ):
        samples = time_us(fn, repeat)
        timed.append({"targets": 1, "variant": label, "median_us": median(samples), "p99_us": p99(samples)})
    return rows + [row | {"ratio_to_baseline": row["median_us"] / timed[0]["median_us"]} for row in timed]


def fleet_config() -> FleetConfig:
    stable = load_fleet_config(STABLE_FLEET_PATH)
    down = stable.model("premium").model_copy(update={"name": "down", "outages": (Outage(start_request=0),)})
    return stable.model_copy(update={"models": (down, stable.model("small"), stable.model("mid"))})


async def route_all(
    fleet: FleetServer, n_tasks: int, retry: RetryPolicy, breakers: BreakerBoard | None
) -> dict:
    clients = [
        OpenAICompatibleTarget(target_name=m, base_url=fleet.base_url, model=m)
        for m in ("down", "small", "mid")
    ]
    targets = {t.target_name: t for t in clients}
    router = Router(
        [t.descriptor() for t in clients],
        WeightedScore(WeightedScoreConfig(min_samples=1_000_000)),  # keep the default order: "down" first
        available=breakers.available if breakers else None,
    )
    succeeded, attempts, wasted, latencies = 0, 0, 0, []
    try:
        for i in range(n_tasks):
            task = Task(task_type="qa", payload=f"Question {i}: what is a circuit breaker?")
            started = time.perf_counter()
            plan = AttemptPlan(router.choose(task), retry, breakers)
            while (step := plan.next_call()) is not None:
                name, delay = step
                await asyncio.sleep(delay)
                result = await targets[name].execute(task)
                attempts += 1
                wasted += name == "down"
                plan.record(result, result.ok)
                router.observe(
                    Outcome(target=name, task_type="qa", success=result.ok, duration_ms=result.duration_ms)
                )
            succeeded += plan.succeeded
            latencies.append((time.perf_counter() - started) * 1000)
    finally:
        for target in clients:
            await target.aclose()
    return {
        "tasks": n_tasks,
        "success_share": succeeded / n_tasks,
        "attempts_per_task": attempts / n_tasks,
        "calls_to_down_target": wasted,
        "median_task_ms": median(latencies),
        "p99_task_ms": p99(latencies),
        "total_s": sum(latencies) / 1000,
    }


def outage_rows(n_tasks: int) -> list[dict]:
    rows = []
    with FleetServer(fleet_config()) as fleet:
        for label, retry, breakers in (
            ("no breaker, no retries", NO_RETRIES, None),
            ("no breaker, 2 retries", FAST_RETRIES, None),
            ("breaker (5 failures), 2 retries", FAST_RETRIES, BreakerBoard()),
        ):
            rows.append({"variant": label, **asyncio.run(route_all(fleet, n_tasks, retry, breakers))})
    return rows


def main(quick: bool) -> None:
    repeat = 2_000 if quick else 20_000
    n_tasks = 60 if quick else 300
    report(
        "breaker_choose",
        f"Router.choose with and without the breaker filter ({repeat:,} calls each)",
        choose_rows(repeat),
        "ratio = median / median of the Router with its capability filter only (same target count), "
        "or of the default availability callback for the board's own calls",
    )
    report(
        "breaker_outage",
        f"One of three fleet targets down (503), first in the default order: {n_tasks} tasks in sequence",
        outage_rows(n_tasks),
        "retry delays scaled down to base 10 ms / cap 100 ms; breaker: 5 consecutive failures, 60 s open",
    )


if __name__ == "__main__":
    main("--quick" in sys.argv)
