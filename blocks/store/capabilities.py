"""Benchmark results and the capability scores computed from them (routing.evaluation.capability).

Every run appends its graded answers to benchmark_results; its scores replace capability_scores whole,
in the same transaction, so routers reading the store see one run's scores, never a mix.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

import pandas as pd

from blocks.store.stats import _insert
from blocks.store.store import Store, _transaction
from routing.evaluation.capability import BenchmarkResult, CapabilityTable
from routing.models import Category

GradedCase = tuple[BenchmarkResult, bool, str | None]  # (result, success, error type)


def save_benchmark_run(
    store: Store, run_id: str, cases: Sequence[GradedCase], table: CapabilityTable, now: datetime
) -> None:
    """Append the run's graded answers and make its per-(target, category) scores the current ones."""
    raw = pd.DataFrame(
        [
            {
                "result_id": uuid.uuid4().hex,
                "run_id": run_id,
                "target": result.target,
                "category": result.category.value,
                "case_id": result.case_id,
                "quality": result.quality,
                "duration_ms": result.duration_ms,
                "cost": result.cost,
                "success": success,
                "error_type": error_type,
                "timestamp": now,
            }
            for result, success, error_type in cases
        ]
    )
    groups: dict[tuple[str, Category], list[BenchmarkResult]] = defaultdict(list)
    for result, _, _ in cases:
        groups[(result.target, result.category)].append(result)
    scores = pd.DataFrame(
        [
            {
                "target": target,
                "category": category.value,
                "score": table.get(target, category),
                "mean_quality": sum(r.quality for r in rs) / len(rs),
                "mean_duration_ms": sum(r.duration_ms for r in rs) / len(rs),
                "mean_cost": sum(r.cost for r in rs) / len(rs),
                "cases": len(rs),
                "run_id": run_id,
                "computed_at": now,
            }
            for (target, category), rs in groups.items()
        ]
    )
    with store.connect() as con, _transaction(con):
        _insert(con, "benchmark_results", raw)
        con.execute("DELETE FROM capability_scores")
        _insert(con, "capability_scores", scores)


def latest_benchmarks(store: Store, category: Category | None = None) -> list[dict]:
    """The current capability scores (the last benchmark run's), per target and category."""
    where, params = ("WHERE category = ?", [category.value]) if category else ("", [])
    return store.query(
        f"""SELECT category, target, score, mean_quality, mean_duration_ms, mean_cost, cases, run_id, computed_at
            FROM capability_scores {where} ORDER BY category, score DESC, target""",
        params,
    )
