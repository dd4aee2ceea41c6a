"""Running statistics: windowed percentiles agree with numpy's, counts and costs add up."""

from __future__ import annotations

import random

import numpy as np
import pytest

from routing.models import Outcome
from routing.stats.book import StatsBook, TargetStats


@pytest.mark.parametrize("window", [1, 7, 100])
def test_windowed_percentiles_match_numpy(window: int) -> None:
    rng = random.Random(window)
    stats = TargetStats(window=window)
    seen = []
    for _ in range(250):
        value = rng.lognormvariate(4, 1) if rng.random() < 0.9 else 100.0  # ties too
        stats.add(True, value)
        seen.append(value)
        recent = seen[-window:]
        for q in (0, 50, 95, 100):
            assert stats.percentile(q) == pytest.approx(float(np.percentile(recent, q)))


def test_counts_rates_and_costs() -> None:
    book = StatsBook(window=3)
    for i, success in enumerate([True, False, True, True]):
        book.observe(Outcome(target="a", task_type="qa", success=success, duration_ms=10 * (i + 1), cost=0.5))
    stats = book.get("a", "qa")
    assert (stats.n, stats.successes, stats.success_rate, stats.mean_cost) == (4, 3, 0.75, 0.5)
    assert list(stats.latencies) == [20, 30, 40] and stats.p50_latency_ms == 30
    assert book.get("a", "other") is None and TargetStats().p50_latency_ms is None
