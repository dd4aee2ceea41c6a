"""A latency distribution in bounded memory that follows drift: the book keeps one per (target, task type).

The first RAW_LIMIT (32) values are kept as they are, sorted: a new pair's quantiles are exact (numpy's),
and smaller than buckets would be. Then they go into DDSketch's relative-error buckets (Masson, Rim & Lee,
VLDB 2019): bucket k holds values in (gamma^(k-1), gamma^k] and answers 2 gamma^k / (gamma + 1), within
alpha = (gamma - 1) / (gamma + 1) of every value in it. At most MAX_BUCKETS (96, 4 bytes each) are kept. A
value that would widen the span past that first folds the lowest buckets into the one above them, as long
as that bucket then holds at most LOW_SHARE (5%) of the weight (DDSketch's collapsing store: the fast tail
matters least for routing); otherwise neighbouring buckets merge pairwise, squaring gamma (UDDSketch's
uniform collapse, Epicoco et al. 2020), so a timeout far above the median coarsens every quantile a little
instead of erasing the median. alpha starts at 1% and doubles with each collapse: 96 buckets span 6.8x at
1%, 46x at 2%, 2,170x at 4%, 4.7e6x at 7.9%. `relative_accuracy` says the current alpha; it never
improves again (merged buckets cannot be split). Measured on 2,000 calls (tests/unit/test_stats.py): bimodal 20x apart and lognormal sigma 0.5 at 2%,
lognormal sigma 1 and 2% timeouts at 400x the median at 4%, exponential at 4% (8% for one sample in ten: its
fastest calls span decades); worst errors seen 1.4%, 1.9%, 3.3%, 3.9%, 3.7%.

Quantiles interpolate between the two closest ranks as numpy.percentile does, each rank read from its bucket,
and stay within the smallest and largest values seen (constant latencies read exactly). While all weights are
equal, every quantile from the 10th percentile up is within `relative_accuracy` of numpy's on the same values;
lower ones may read high (folded values answer as the bucket they were folded into).

Drift: the first `window` observations weigh the same (exactly a window while it fills); after that each new
one weighs (window + 1) / (window - 1) times the previous: the exponential decay whose mean age, (window - 1)/2,
and effective sample size, `window`, equal those of a window of the last `window` calls. Weights grow instead
of counts shrinking, so an observation costs O(1); all weights are divided down when they pass 2^64, and the
buckets at either end whose weight became negligible are dropped then. Mean and variance are weighted
running moments (West 1979), exact rather than read from buckets; min and max (kept once buckets are) are
over all calls."""

from __future__ import annotations

import math
from array import array
from bisect import insort

from routing.errors import ConfigError

DEFAULT_WINDOW = 1000
MAX_BUCKETS = 96
"""Buckets kept at most (4 bytes each), besides the one for zeros."""
RAW_LIMIT = 32
"""Values kept as they are (sorted doubles) before the first bucket: a new pair's quantiles are exact."""
BASE_ACCURACY = 0.01
LOW_SHARE = 0.05
"""Weight the lowest bucket may absorb from below the range before the resolution is halved instead."""
ZERO_BELOW = 1e-6
"""Milliseconds under which a value counts as zero (a nanosecond): keeps junk from widening the span."""
_RESCALE = 2.0**64

_GAMMA0 = (1 + BASE_ACCURACY) / (1 - BASE_ACCURACY)
# Per collapse level: log(gamma), its inverse, the factor from gamma^k to the answer, and alpha. Twelve
# levels cover the whole double range in MAX_BUCKETS buckets, so collapsing always ends.
_LOG_GAMMA = tuple(math.log(_GAMMA0) * 2**level for level in range(12))
_INV_LOG_GAMMA = tuple(1 / lg for lg in _LOG_GAMMA)
_MID = tuple(2 / (math.exp(lg) + 1) for lg in _LOG_GAMMA)
_ALPHA = tuple(math.tanh(lg / 2) for lg in _LOG_GAMMA)  # (gamma - 1) / (gamma + 1)


def check_window(window: int) -> int:
    if not isinstance(window, int) or isinstance(window, bool) or not 1 <= window <= 2**24:
        raise ConfigError(f"window must be an integer from 1 to 2**24 (calls), got {window!r}")
    return window


def _ceil_half(k: int) -> int:
    return -(-k // 2)


class DecayedSketch:
    """Decayed latency quantiles, mean and spread over about the last `window` observations.

    `_cells` holds the values themselves, sorted, until RAW_LIMIT of them or the first decayed weight
    (`_level` -1); then bucket weights: `_cells[0]` for the zeros, `_cells[i]` for bucket `_offset + i - 1`.
    `_w` is the weight of the newest observation (1 while the window fills). `_below` is the weight of the
    cells under `_hint`, the cell the last percentile ended in, so that reading the same percentile again
    after an observation moves a step or none instead of walking every bucket.
    """

    __slots__ = (
        "_below", "_cells", "_high", "_hint", "_level", "_low", "_m2", "_mean", "_offset", "_total", "_w", "n",
        "window",
    )

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        self.window = check_window(window)
        self.n = 0
        self._clear()

    def _clear(self) -> None:
        self._cells = array("d")
        self._level, self._offset = -1, 0
        self._hint, self._below = 0, 0.0
        self._w, self._total, self._mean, self._m2 = 1.0, 0.0, 0.0, 0.0
        self._low, self._high = math.inf, 0.0

    def add_latency(self, value: float) -> None:
        n = self.n = self.n + 1
        w = self._w
        if n > self.window:
            if self.window == 1:
                self._clear()
            else:
                w = self._w = w * (self.window + 1) / (self.window - 1)
                if w > _RESCALE:
                    self._rescale(w)
                    w = self._w = 1.0
        total = self._total = self._total + w
        mean = self._mean
        delta = value - mean
        mean = self._mean = mean + delta * w / total
        self._m2 += w * delta * (value - mean)
        cells = self._cells
        if self._level < 0:
            if w == 1.0 and len(cells) < RAW_LIMIT:
                insort(cells, value)
                return
            cells = self._to_buckets()
        if value > self._high:
            self._high = value
        if value < self._low:
            self._low = value
        if value < ZERO_BELOW:
            i = 0
        else:
            i = math.ceil(math.log(value) * _INV_LOG_GAMMA[self._level]) - self._offset + 1
            if not 0 < i < len(cells):
                self._place(value, w)
                return
        before = cells[i]
        cells[i] = before + w
        if i < self._hint:
            self._below += cells[i] - before  # the weight as stored (single precision)

    def _to_buckets(self) -> array:
        """Put the values kept so far into buckets, largest first (the lowest are then the ones folded)."""
        values = self._cells
        if values:
            self._low, self._high = values[0], values[-1]
        self._cells, self._level = array("f", (0.0,)), 0
        self._hint, self._below = 0, 0.0
        for value in reversed(values):
            if value < ZERO_BELOW:
                self._cells[0] += 1.0
            else:
                self._place(value, 1.0)
        return self._cells

    def _place(self, value: float, w: float) -> None:
        """Add a positive value outside the buckets held: widen them; when that would pass MAX_BUCKETS, fold
        the lowest buckets into the one above them while they hold at most LOW_SHARE of the weight, else
        halve the resolution."""
        self._hint, self._below = 0, 0.0
        counts = self._cells
        if len(counts) == 1:
            self._offset = math.ceil(math.log(value) * _INV_LOG_GAMMA[self._level])
            counts.append(w)
            return
        while True:
            key = math.ceil(math.log(value) * _INV_LOG_GAMMA[self._level])
            low, high = self._offset, self._offset + len(self._cells) - 2
            if max(key, high) - min(key, low) < MAX_BUCKETS:
                break
            limit = LOW_SHARE * self._total  # the total already counts w
            if key < low and self._cells[1] + w <= limit:
                self._cells[1] += w  # below the range: counted in the lowest bucket
                return
            folded = key - low - MAX_BUCKETS + 1  # buckets to fold into the one above them
            if key > high and low + folded <= high and sum(self._cells[1:folded + 2]) <= limit:
                counts = self._cells
                counts[folded + 1] += sum(counts[1:folded + 1])
                del counts[1:folded + 1]
                self._offset += folded
                continue
            self._collapse()
        counts = self._cells
        if key < low:
            counts[1:1] = array("f", bytes(4 * (low - key)))
            self._offset = key
        elif key > high:
            counts.extend(array("f", bytes(4 * (key - high))))
        counts[key - self._offset + 1] += w

    def _collapse(self) -> None:
        """Merge buckets 2j - 1 and 2j into bucket j of the next level (gamma squared)."""
        counts, offset = self._cells, self._offset
        start = _ceil_half(offset)
        merged = array("f", bytes(4 * (_ceil_half(offset + len(counts) - 2) - start + 2)))
        merged[0] = counts[0]
        for i in range(1, len(counts)):
            merged[_ceil_half(offset + i - 1) - start + 1] += counts[i]
        self._cells, self._offset, self._level = merged, start, self._level + 1

    def _rescale(self, w: float) -> None:
        """Divide every weight by `w` (quantiles and moments do not change) and drop the buckets at either
        end whose weight has become negligible, so decayed outliers stop holding the span open."""
        counts = array("f", (c / w for c in self._cells))
        self._total /= w
        self._m2 /= w
        negligible = self._total * 2.0**-40
        low, high = 1, len(counts) - 1
        while low < high and counts[low] <= negligible:
            low += 1
        while high > low and counts[high] <= negligible:
            high -= 1
        self._cells = array("f", (counts[0],)) + counts[low:high + 1]
        self._offset += low - 1
        self._hint, self._below = 0, 0.0

    def _value(self, index: int) -> float:
        if index == 0:
            return 0.0
        level = self._level
        return math.exp((self._offset + index - 1) * _LOG_GAMMA[level]) * _MID[level]

    def percentile(self, q: float) -> float | None:
        """The q-th percentile (0-100), interpolated between the closest ranks as numpy's default does."""
        if not self.n:
            return None
        if self._level < 0:
            values = self._cells
            rank = (len(values) - 1) * q / 100
            low = int(rank)
            high = min(low + 1, len(values) - 1)
            return values[low] + (values[high] - values[low]) * (rank - low)
        unit = self._w
        rank = max(0.0, q / 100 * (self._total / unit - 1))
        low = int(rank)
        first, second = low * unit, (low + 1) * unit
        # The first cells whose cumulative weight exceeds `first`, then `second`, walking from the hint.
        cells = self._cells
        last = len(cells) - 1
        i, below = self._hint, self._below
        while i > 0 and below > first:
            i -= 1
            below -= cells[i]
        while i < last and below + cells[i] <= first:
            below += cells[i]
            i += 1
        self._hint, self._below = i, below
        value = self._value(i)
        if rank != low:
            j, cumulative = i, below + cells[i]
            while j < last and cumulative <= second:
                j += 1
                cumulative += cells[j]
            if j != i:
                value += (self._value(j) - value) * (rank - low)
        return min(max(value, self._low), self._high)

    @property
    def relative_accuracy(self) -> float:
        """How far (relatively) a quantile may be from the value at its rank, at the current resolution."""
        return _ALPHA[self._level] if self._level >= 0 else 0.0

    @property
    def mean_latency_ms(self) -> float | None:
        return self._mean if self.n else None

    @property
    def latency_n(self) -> float:
        """Effective number of observations the decayed figures rest on (Kish): n while the window fills,
        then tending to `window`."""
        window, n = self.window, self.n
        if n <= window:
            return float(n)
        if window == 1:
            return 1.0
        growth = (window + 1) / (window - 1)
        r = math.exp(-(n - window) * math.log(growth))  # the window's first weights relative to the newest
        weight = window * r + growth * (1 - r) / (growth - 1)
        squares = window * r * r + growth * growth * (1 - r * r) / (growth * growth - 1)
        return weight * weight / squares

    @property
    def latency_sd_ms(self) -> float | None:
        """Weighted standard deviation, unbiased for reliability weights (statistics.stdev when equal)."""
        if not self.n:
            return None
        effective = self.latency_n
        if effective <= 1:
            return 0.0
        return math.sqrt(max(0.0, self._m2 / self._total / (1 - 1 / effective)))
