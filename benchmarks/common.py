"""What every benchmark shares: timing in microseconds, a printed table, and a JSON file of results."""

from __future__ import annotations

import hashlib
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results"
sys.path.insert(0, str(Path(__file__).parents[1]))  # run as `python benchmarks/x.py` from a checkout

_HERE = Path(__file__).resolve()
ROUTERBENCH = next(
    (p / "shared" / "data" / "routerbench" for p in (_HERE.parents[2], _HERE.parents[3]) if (p / "shared").is_dir()),
    _HERE.parents[2] / "shared" / "data" / "routerbench",
)
"""RouterBench CSVs in ../shared beside the checkout (or beside a worktrees' folder); benchmarks skip without them."""


def time_us(fn: Callable[[], object], repeat: int) -> list[float]:
    """Wall time of each of `repeat` calls, in microseconds."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


def median(values: list[float]) -> float:
    return statistics.median(values)


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else values[0]


def report(name: str, title: str, rows: list[dict], notes: str = "") -> Path:
    """Print `rows` as a table and write them, with the machine, to benchmarks/results/<name>.json."""
    table = Table(title=title, caption=notes or None)
    for column in rows[0]:
        table.add_column(column, justify="left" if isinstance(rows[0][column], str) else "right")
    for row in rows:
        table.add_row(*(f"{v:,.3f}" if isinstance(v, float) else str(v) for v in row.values()))
    Console().print(table)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "title": title,
        "notes": notes,
        "run_at": datetime.now(UTC).isoformat(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "rows": rows,
    }
    path.write_text(json.dumps(payload, indent=2))
    return path


EMBEDDING_CACHE = Path(tempfile.gettempdir()) / "adaptive-router-embeddings"


class DiskCachedEmbedder:
    """Wraps an embedder: each batch of texts is embedded once per machine (cached in $TMPDIR by the
    texts' hash), so benchmarks re-run without re-embedding RouterBench (~90 s on a loaded machine)."""

    def __init__(self, embedder) -> None:
        self.embedder, self.name, self.dimensions = embedder, embedder.name, embedder.dimensions

    def embed(self, texts):
        import numpy as np

        texts = list(texts)
        key = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:24]
        path = EMBEDDING_CACHE / f"minilm-{key}.npy"
        if path.is_file():
            return np.load(path)
        vectors = np.asarray(self.embedder.embed(texts), dtype=np.float32)
        EMBEDDING_CACHE.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
        return vectors
