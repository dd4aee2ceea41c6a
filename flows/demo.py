"""The main job on the embedded default: the local fleet, a local DuckDB file, ephemeral Prefect.

Routes a seeded mix of tasks across the fleet's models with `route-batch`, then reads what happened
back from the store (blocks/store/reports.py): a table per target, and how the router's picks shifted
as it learned.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from blocks.embeddings import default_embedder
from blocks.fleet.knowledge import generate_tasks
from blocks.store import DuckDBStore
from blocks.store.reports import calls_by_target, pick_shares_by_phase
from flows.local import local_runtime
from flows.route import route_batch
from routing.calls.breaker import BreakerBoard, BreakerConfig, BreakerState
from routing.models import Capability, ErrorType, RoutedResult, Task
from routing.spend.budgets import Budget, Period

DEMO_RUNTIME = "demo"


class TargetRow(BaseModel):
    target: str
    calls: int
    success_rate: float
    p50_latency_ms: float
    cost_usd: float
    rescues: int = 0  # tasks this target answered after the pick failed
    breaker: str = "closed"  # final state, and how often it opened


class DemoReport(BaseModel):
    database: str
    tasks: int
    succeeded: int
    attempts: int
    spent_usd: float
    daily_budget_usd: float | None = None
    rejected: int = 0  # tasks no target could afford under a 'reject' budget
    queued: int = 0  # tasks kept for when a 'queue' budget resets
    targets: list[TargetRow]
    picks_by_phase: dict[str, dict[str, float]]


# Task types that only a framework target can serve.
_REQUIRES = {"docs_qa": Capability.RETRIEVAL, "team_plan": Capability.MULTI_AGENT}


def demo_tasks(n: int, seed: int) -> list[Task]:
    return [
        Task(
            task_type=e.task_type,
            category=e.category,
            payload=e.prompt,
            expected=e.expectation,
            required_capabilities={_REQUIRES[e.task_type]} if e.task_type in _REQUIRES else set(),
        )
        for e in generate_tasks(n, seed)
    ]


def run_demo(
    tasks: int = 300,
    seed: int = 7,
    database: str | None = None,
    fleet_config: Path | None = None,
    strategy: str | None = None,
    concurrency: int = 8,
    on_result: Callable[[RoutedResult], None] | None = None,
    daily_budget: float | None = None,
    budget_policy: Literal["reject", "queue"] = "reject",
    willingness_to_pay: float | None = 0.01,
) -> DemoReport:
    """Route `tasks` tasks; with `willingness_to_pay` L the router maximises L * success - cost.

    Breakers reopen for trials after 5 s (not the production 60 s) so that a run of a minute shows a
    target failing, being cut off, and coming back. `strategy` defaults to the content-aware one when
    the embedding model is installed (the runtime then embeds each prompt inside the flow: embeddings in
the flow's parameters would exceed Prefect's 512 kB limit), else Thompson sampling.
    """
    embedder = default_embedder()  # every strategy's executions keep their embedding for `similar`
    strategy = strategy or ("contextual" if embedder is not None else "thompson")
    if tasks < 1:
        raise ValueError(f"tasks must be at least 1, got {tasks}")
    budgets = [Budget(period=Period.DAILY, limit=daily_budget, policy=budget_policy)] if daily_budget is not None else []
    store = DuckDBStore(database=database)
    with local_runtime(
        store, strategy=strategy, seed=seed, willingness_to_pay=willingness_to_pay, budgets=budgets,
        fleet_config=fleet_config, frameworks=True, breaker=BreakerConfig(open_timeout_seconds=5),
        name=DEMO_RUNTIME, embedder=embedder,
    ) as runtime:
        if on_result:
            runtime.hooks.append(on_result)
        results = route_batch(demo_tasks(tasks, seed), runtime=DEMO_RUNTIME, concurrency=concurrency)
    task_ids = [r.task_id for r in results]
    return DemoReport(
        database=str(store.path),
        tasks=len(results),
        succeeded=sum(r.success for r in results),
        attempts=sum(len(r.attempts) for r in results),
        spent_usd=sum(r.cost for r in results),
        daily_budget_usd=daily_budget,
        rejected=sum(not r.success and r.queued_until is None and _over_budget(r) for r in results),
        queued=sum(r.queued_until is not None for r in results),
        targets=_target_rows(store, task_ids, results, runtime.breakers),
        picks_by_phase=pick_shares_by_phase(store, task_ids),
    )


def _over_budget(result: RoutedResult) -> bool:
    return any(why.startswith(ErrorType.BUDGET_EXCEEDED) for why in result.failures.values())


def _breaker_summary(breakers: BreakerBoard) -> dict[str, str]:
    opened = Counter(t.target for t in breakers.transitions if t.to_state == BreakerState.OPEN)
    return {
        name: f"{snap.state}" + (f", opened {opened[name]}x" if opened[name] else "")
        for name, snap in breakers.snapshot().items()
    }


def _target_rows(
    store: DuckDBStore, task_ids: list[str], results: list[RoutedResult], breakers: BreakerBoard
) -> list[TargetRow]:
    rescues = Counter(r.target for r in results if r.success and r.target != r.decision.pick)
    states = _breaker_summary(breakers)
    rows = calls_by_target(store, task_ids)
    return [
        TargetRow(**row, rescues=rescues[row["target"]], breaker=states.get(row["target"], "closed"))
        for row in rows
    ]

