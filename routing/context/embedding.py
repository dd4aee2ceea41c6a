"""What the router knows of a prompt's meaning: a unit vector from an embedder.

The protocol lives here, beside the task's other context, so pure code (the contextual strategy,
replay) can take any embedder; the embedders themselves (an ONNX model, an HTTP endpoint) are in
blocks/embeddings.py because they load files or call the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from routing.models import Task

EMBEDDING_KEY = "embedding"
"""Key of `Task.metadata` that carries the task's embedding (a sequence of floats), when it has one."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of `dimensions` entries, one row per text."""

    name: str
    dimensions: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """A (len(texts), dimensions) float32 array; row i embeds texts[i]."""
        ...


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (an all-zero row stays zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def task_embedding(metadata: dict, dimensions: int | None = None) -> np.ndarray | None:
    """The unit vector a task carries in its metadata, or None when it has none (or a malformed one)."""
    raw = metadata.get(EMBEDDING_KEY)
    if raw is None:
        return None
    try:
        vector = np.asarray(raw, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return None
    if not vector.size or (dimensions is not None and vector.size != dimensions):
        return None
    if not np.all(np.isfinite(vector)):
        return None
    norm = np.linalg.norm(vector)
    return vector / norm if norm > 0 else None


def with_embeddings(tasks: Sequence[Task], embedder: Embedder) -> list[Task]:
    """`tasks` with each payload's embedding in its metadata (one batched call to the embedder)."""
    vectors = embedder.embed([t.payload for t in tasks])
    return [
        t.model_copy(update={"metadata": {**t.metadata, EMBEDDING_KEY: tuple(v.tolist())}})
        for t, v in zip(tasks, vectors)
    ]
