"""Seed 002's similarity search: the past executions whose prompts are nearest a given embedding.

Exact search with DuckDB's built-in `array_cosine_similarity` over `executions.embedding` (FLOAT[384]):
a full scan, ~1M vectors a second per core, which suits stores up to a few million rows. The vss
extension's HNSW index would make it sub-linear, but its wheels target duckdb 1.5.5, not the 2.0 this
package runs on.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
from pydantic import BaseModel

from blocks.store.migrations import EMBEDDING_DIMENSIONS
from blocks.store.store import Store
from routing.errors import ConfigError


class SimilarExecution(BaseModel):
    """One past attempt near the query, with what it was and how it went."""

    similarity: float
    execution_id: str
    task_id: str
    timestamp: datetime
    task_type: str
    category: str | None
    target: str
    success: bool
    quality_score: float | None
    cost: float | None
    duration_ms: float
    description: str | None


def similar_executions(
    store: Store,
    embedding: Sequence[float] | np.ndarray,
    k: int = 5,
    task_type: str | None = None,
    min_similarity: float | None = None,
) -> list[SimilarExecution]:
    """The `k` executions most similar to `embedding` (cosine, best first), optionally of one task type."""
    vector = np.asarray(embedding, dtype=np.float64).ravel()
    if vector.size != EMBEDDING_DIMENSIONS or not np.all(np.isfinite(vector)):
        raise ConfigError(
            f"embedding must hold {EMBEDDING_DIMENSIONS} finite numbers, got {vector.size}"
            + ("" if np.all(np.isfinite(vector)) else " (some not finite)")
        )
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    filters, parameters = ["embedding IS NOT NULL"], [vector.tolist()]
    if task_type is not None:
        filters.append("task_type = ?")
        parameters.append(task_type)
    having = "" if min_similarity is None else "WHERE similarity >= ?"
    rows = store.query(
        f"""SELECT * FROM (
                SELECT array_cosine_similarity(embedding, ?::FLOAT[{EMBEDDING_DIMENSIONS}]) AS similarity,
                       execution_id, task_id, timestamp, task_type, category, target, success,
                       quality_score, actual_cost AS cost, duration_ms, description
                FROM executions WHERE {' AND '.join(filters)}
            ) {having}
            ORDER BY similarity DESC, timestamp DESC LIMIT ?""",
        parameters + ([] if min_similarity is None else [min_similarity]) + [k],
    )
    return [SimilarExecution(**row) for row in rows]
