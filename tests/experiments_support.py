"""Routing simulated tasks through running experiments, as the runtime does, without targets or Prefect."""

from __future__ import annotations

import random

from blocks.store import DuckDBStore
from routing.calls.outcomes import build_record
from routing.experiments.live import PolicyRouting
from routing.experiments.policy import parse_policy
from routing.models import AttemptResult, Outcome, Target, Task
from routing.router import Router

TARGETS = [Target(name=n) for n in ("small", "mid")]
QUALITY = {"small": 0.5, "mid": 0.9}


def route_synthetic(store: DuckDBStore, experiments, n: int, seed: int = 0) -> None:
    """Route `n` tasks through the running experiments, as the runtime does, with simulated outcomes."""
    rng = random.Random(seed)
    routing = PolicyRouting(Router(TARGETS, parse_policy("thompson").build(["small", "mid"], seed)), experiments)
    for _ in range(n):
        task = Task(task_type="qa", payload="p")
        decision = routing.choose(task)
        store.record_decision(decision)
        ok = rng.random() < QUALITY[decision.pick]
        result = AttemptResult(target=decision.pick, ok=True, output="a", duration_ms=rng.uniform(10, 30),
                               cost=0.001 if decision.pick == "mid" else 0.0002)  # fmt: skip
        record = build_record(task, decision, TARGETS[0] if decision.pick == "small" else TARGETS[1], result, 1, 0.001)
        record = record.model_copy(update={"success": ok})
        store.record_execution(record)
        routing.observe(Outcome.from_record(record), record.decision_id)
    store.ingest()
