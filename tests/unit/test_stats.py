"""Running statistics: sketched percentiles within their stated accuracy of numpy's, decayed figures equal
to the same weights applied by hand, bounded size, counts and costs that add up."""

from __future__ import annotations

import bisect
import itertools
import math
import pickle
import tracemalloc

import numpy as np
import pytest

from routing.errors import ConfigError
from routing.models import Outcome
from routing.published import PublishedState
from routing.stats import book, sketch
from routing.stats.book import StatsBook, TargetStats
from routing.stats.sketch import MAX_BUCKETS
from routing.stats.snapshot import StatsSnapshot

QS = (10, 25, 50, 75, 90, 95, 99, 99.9, 100)


def _samples(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "lognormal":
        return rng.lognormal(5, 1, n)
    if kind == "exponential":
        return rng.exponential(100, n)
    if kind == "bimodal":  # a fast path and a slow one, 20x apart
        return np.where(rng.random(n) < 0.7, rng.normal(100, 5, n), rng.normal(2000, 100, n))
    # timeouts: 2% of calls at 400x the median
    return np.where(rng.random(n) < 0.98, rng.lognormal(5, 0.5, n), 60_000.0)


def _filled(values, window: int = 1000) -> TargetStats:
    stats = TargetStats(window=window)
    for value in values:
        stats.add(True, float(value))
    return stats


@pytest.mark.parametrize(
    ("kind", "worst_alpha"), [("lognormal", 0.04), ("exponential", 0.08), ("bimodal", 0.04), ("timeouts", 0.04)]
)
@pytest.mark.parametrize("n", [5, 60, 2000])
def test_quantiles_within_stated_accuracy_of_numpy(kind: str, worst_alpha: float, n: int) -> None:
    for seed in range(5):
        values = _samples(kind, n, np.random.default_rng(seed))
        stats = _filled(values, window=n)  # equal weights: the distribution numpy sees
        alpha = stats.relative_accuracy
        assert alpha <= worst_alpha + 1e-12
        for q in QS:
            expected = float(np.percentile(values, q))
            assert abs(stats.percentile(q) - expected) <= (alpha + 1e-12) * expected, (seed, q)
        assert values.min() <= stats.percentile(0) <= stats.percentile(100) <= values.max()


def test_constant_latencies_read_exactly() -> None:
    stats = _filled([200.0] * 50)
    assert stats.p50_latency_ms == stats.p95_latency_ms == stats.percentile(99) == 200.0
    assert (stats.mean_latency_ms, stats.latency_sd_ms) == (200.0, 0.0)


def test_zeros_count_and_empty_reads_none() -> None:
    stats = _filled([0.0] * 6 + [10.0] * 4)
    assert stats.percentile(50) == 0.0 and stats.percentile(100) == 10.0
    assert stats.percentile(70) == pytest.approx(np.percentile([0.0] * 6 + [10.0] * 4, 70), rel=0.01)
    empty = TargetStats()
    assert (empty.p50_latency_ms, empty.mean_latency_ms, empty.latency_sd_ms, empty.latency_n) == (None, None, None, 0)


def test_moments_exact_while_the_window_fills() -> None:
    values = np.random.default_rng(4).gamma(2.0, 50.0, 500)
    stats = _filled(values)
    assert stats.mean_latency_ms == pytest.approx(values.mean(), rel=1e-12)
    assert stats.latency_sd_ms == pytest.approx(values.std(ddof=1), rel=1e-9)
    assert stats.latency_n == 500


def _weights(n: int, window: int) -> np.ndarray:
    """The decay written out: equal weights for the first `window`, then growing by (w + 1) / (w - 1)."""
    steps = np.maximum(np.arange(1, n + 1) - window, 0)
    log_w = steps * math.log((window + 1) / (window - 1))
    return np.exp(log_w - log_w.max())


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, q / 100 * cumulative[-1])])


@pytest.mark.parametrize("window", [10, 200])
def test_decayed_figures_equal_the_weights_applied_by_hand(window: int) -> None:
    """Window 10 passes 2^64 every ~220 calls, so the rescaling runs ~20 times here."""
    rng = np.random.default_rng(window)
    values = rng.lognormal(5, 0.5, 5000) * np.linspace(1, 3, 5000)  # drifting upwards
    stats = _filled(values, window)
    w = _weights(len(values), window)
    mean = np.average(values, weights=w)
    effective = w.sum() ** 2 / (w**2).sum()  # Kish
    variance = np.average((values - mean) ** 2, weights=w) / (1 - 1 / effective)
    assert stats.mean_latency_ms == pytest.approx(mean, rel=1e-9)
    assert stats.latency_sd_ms == pytest.approx(math.sqrt(variance), rel=1e-6)
    assert stats.latency_n == pytest.approx(effective, rel=1e-9) and effective == pytest.approx(window, rel=0.01)
    alpha = stats.relative_accuracy
    # ranks are counted, and interpolated, in units of the newest weight (of ~window / 2 units in all)
    slack = 200 * w[-1] / w.sum() + 1
    for q in (25, 50, 95):
        low, high = _weighted_quantile(values, w, q - slack), _weighted_quantile(values, w, min(100, q + slack))
        assert low * (1 - alpha) <= stats.percentile(q) <= high * (1 + alpha), q


def test_follows_a_shift_like_a_window() -> None:
    rng = np.random.default_rng(5)
    stats = _filled(rng.lognormal(math.log(100), 0.3, 3000), window=200)
    for value in rng.lognormal(math.log(400), 0.3, 1000):
        stats.add(True, float(value))
    assert stats.p50_latency_ms == pytest.approx(400, rel=0.1)
    last = TargetStats(window=1)
    for value in (5.0, 500.0, 50.0):
        last.add(True, value)
    assert last.p50_latency_ms == pytest.approx(50.0, rel=last.relative_accuracy) and last.latency_n == 1


def _from_scratch(stats: TargetStats, q: float) -> float:
    """A bucket-mode percentile by a full cumulative scan (what the walk from the last read's cell must
    find), with the sketch's ranks, bucket values and clamping."""
    cumulative = list(itertools.accumulate(stats._cells))
    unit = stats._w
    rank = max(0.0, q / 100 * (stats._total / unit - 1))
    low = int(rank)
    last = len(cumulative) - 1
    below = min(bisect.bisect_right(cumulative, low * unit), last)
    above = min(bisect.bisect_right(cumulative, (low + 1) * unit), last)
    value = stats._value(below) + (stats._value(above) - stats._value(below)) * (rank - low)
    return min(max(value, stats._low), stats._high)


def test_reads_between_observations_match_a_full_scan() -> None:
    rng = np.random.default_rng(8)
    stats = TargetStats(window=300)
    for i, value in enumerate(np.where(rng.random(20_000) < 0.1, 0.0, rng.lognormal(5, 1.2, 20_000))):
        stats.add(True, float(value))
        if stats._level >= 0 and i % 7 == 0:
            for q in rng.choice(QS, size=2):
                assert stats.percentile(q) == pytest.approx(_from_scratch(stats, q), rel=1e-9), (i, q)


@pytest.mark.parametrize("window", [100, 1000])
def test_size_bounded_after_100000_observations(window: int) -> None:
    rng = np.random.default_rng(6)
    values = np.exp(rng.uniform(math.log(1e-3), math.log(1e6), 100_000)).tolist()  # nine decades
    values[::10] = [0.0] * 10_000
    tracemalloc.start()
    stats = _filled(values, window)
    # what the book's and the sketch's own lines hold: other threads' allocations (a spool writer left
    # by an earlier test) are not this object's
    ours = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(True, book.__file__), tracemalloc.Filter(True, sketch.__file__)])
    held = sum(trace.size for trace in ours.traces)
    tracemalloc.stop()
    assert stats.n == 100_000 and len(stats._cells) <= MAX_BUCKETS + 1
    assert held <= 900 and stats.nbytes() <= 700 and len(pickle.dumps(stats)) <= 700
    assert 0 < stats.percentile(50) < stats.percentile(99) <= max(values)


def test_counts_rates_and_costs() -> None:
    book = StatsBook(window=10)
    for i, success in enumerate([True, False, True, True]):
        book.observe(Outcome(target="a", task_type="qa", success=success, duration_ms=10 * (i + 1), cost=0.5))
    stats = book.get("a", "qa")
    assert (stats.n, stats.successes, stats.success_rate, stats.mean_cost) == (4, 3, 0.75, 0.5)
    assert stats.p50_latency_ms == pytest.approx(25, rel=stats.relative_accuracy)
    assert stats.mean_latency_ms == 25
    assert book.get("a", "other") is None and TargetStats().p50_latency_ms is None


def test_book_pickles_and_its_snapshot_round_trips() -> None:
    book = StatsBook(window=50)
    rng = np.random.default_rng(7)
    for i in range(300):
        book.observe(Outcome(target=f"t{i % 3}", task_type="qa", success=i % 4 != 0,
                             duration_ms=float(rng.lognormal(5, 0.5)), cost=0.001))
    copy = pickle.loads(pickle.dumps(book))
    for key, stats in book.items():
        twin = copy.get(*key)
        assert [twin.percentile(q) for q in QS] == [stats.percentile(q) for q in QS]
        assert (twin.n, twin.latency_sd_ms, twin.latency_n) == (stats.n, stats.latency_sd_ms, stats.latency_n)
    twin.add(True, 150.0)  # a copy keeps learning on its own
    assert twin.n == book.get(*key).n + 1
    state = PublishedState(snapshot=StatsSnapshot.from_book(book))
    restored = PublishedState.model_validate_json(state.model_dump_json())
    assert restored == state
    entry = restored.snapshot.get("t0", "qa")
    assert entry.n == 100 and entry.latency_n == round(book.get("t0", "qa").latency_n) < 100
    assert entry.p50_latency_ms == pytest.approx(book.get("t0", "qa").p50_latency_ms)


@pytest.mark.parametrize("window", [0, -1, 2.5, True, 2**25])
def test_bad_window_named(window) -> None:
    with pytest.raises(ConfigError, match="window must be an integer"):
        StatsBook(window=window)
    with pytest.raises(ConfigError, match="window must be an integer"):
        TargetStats(window=window)
