"""Posteriors of the arms' means and the exact propensity of a Thompson draw.

A Thompson pick is a real draw (one per arm, then the argmax); its propensity P(its draw is the largest)
is *computed*, not simulated, by one integral over the pick's own posterior: the product of the other
arms' CDFs under the pick's density, by Gauss-Legendre quadrature on nodes crowded towards the ends,
over tabulated Beta CDFs (to ~1e-4).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from scipy.special import betainc, betaincinv, betaln, ndtr, ndtri

TAIL = 1e-7
"""Mass left out in each tail of a posterior when integrating propensities: an arm whose upper tail
quantile lies below another arm's lower one is given probability 0 (its true value is below ~2 * TAIL),
and an arm no other arm's upper quantile reaches is given 1."""

NODES = 40
"""Quadrature nodes per propensity integral. Against a 600-node reference the error stays below ~1.5e-4
with 2 to 20 arms, 0 to 3e4 observations each (fractional or not) and penalties; ~1.3e-3 with a
Beta(0.5, 0.5) prior, whose untried arms have CDFs with a square-root kink at 1."""

TABLE = 256
"""Points per tabulated Beta CDF (see `BetaPosteriors`)."""

DRAWS = 32
"""Beta draws made ahead per arm (see `BetaPosteriors.sample`)."""

DRAWS_AFTER_CHANGE = 4
"""Draws made for an arm whose (a, b) just changed: it often changes again at the next update."""

DIRECT_USES = 3
"""Uses of an arm's CDF with unchanged (a, b) evaluated exactly before it is tabulated (a table costs
about as much as three or four exact evaluations at NODES points)."""



def _graded_rule(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [0, 1], pulled through u -> I_u(3, 3) (slope 30 u²(1-u)²).

    The map crowds the nodes towards both ends of an integral over [start, hi]: towards the start because
    every other arm's CDF rises between its own tail quantiles and the lower one is at most the start, so
    the sharpest rises (arms with much more data than the pick) all sit just above it; towards both ends
    because a Beta density with a or b below 1 is singular there, which the slope's zeros smooth out.
    """
    u, w = np.polynomial.legendre.leggauss(nodes)
    u, w = (u + 1) / 2, w / 2
    return betainc(3, 3, u), w * 30 * u**2 * (1 - u) ** 2


_AT, _WEIGHT = _graded_rule(NODES)
_TAILS = np.array([TAIL, 1.0 - TAIL])
_GRID = np.linspace(0.0, 1.0, 2 * TABLE - 1)  # a table's points and the midpoints between them
_ENDS = [0, 1, 2, TABLE - 3, TABLE - 2, TABLE - 1]  # table points evaluated exactly
_ENDS_ON_GRID = [2 * e for e in _ENDS]


class Posteriors:
    """Independent posteriors of the considered arms' means: what a Thompson draw and its propensity need.

    Subclasses hold `lo`/`hi` (each arm's TAIL and 1 - TAIL quantiles) and give `sample`, `cdf` and
    `pdf`. A `shift` (the penalty; None for none) moves arm j's draw down by shift[j].
    """

    lo: np.ndarray
    hi: np.ndarray

    def sample(self, generator: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def cdf(self, x: np.ndarray, shift: np.ndarray | None, rows: list[int]) -> np.ndarray:
        """F_j(x + shift[j]) for each arm j in `rows`, shape (len(rows), *x.shape)."""
        raise NotImplementedError

    def pdf(self, x: np.ndarray, rows: list[int]) -> np.ndarray:
        """Density of arm rows[r] at each point of x[r]."""
        raise NotImplementedError

    def argmax_probability(self, pick: int, shift: np.ndarray | None) -> float:
        """P(arm `pick`'s draw, shifted, is the largest), in O(arms · NODES): see `_integrals`.

        0 when the pick is no contender, 1 when it is the only one.
        """
        hi, start, contenders = self._contenders(shift)
        if hi[pick] <= start:
            return 0.0
        if len(contenders) == 1:
            return 1.0
        rivals = [j for j in contenders if j != pick]
        return float(self._integrals([pick], rivals, hi, start, shift)[0])

    def argmax_probabilities(self, shift: np.ndarray | None) -> np.ndarray:
        """Every arm's `argmax_probability`, renormalised (the integrals sum to 1 within ~1e-4)."""
        hi, start, contenders = self._contenders(shift)
        masses = np.zeros(len(hi))
        if len(contenders) == 1:
            masses[contenders] = 1.0
        else:
            masses[contenders] = self._integrals(contenders, contenders, hi, start, shift)
        return masses / masses.sum()

    def _contenders(self, shift: np.ndarray | None) -> tuple[list[float], float, list[int]]:
        """(each arm's shifted hi, start = the largest shifted lo, arms whose hi exceeds start).

        Below start some draw exceeds x but with probability TAIL, so a propensity integrates from
        there, and an arm whose hi does not exceed it has a CDF of 1 there (within TAIL).
        """
        lo, hi = (self.lo, self.hi) if shift is None else (self.lo - shift, self.hi - shift)
        hi = hi.tolist()
        start = float(lo.max())
        return hi, start, [j for j, h in enumerate(hi) if h > start]

    def _integrals(
        self, picks: list[int], rivals: list[int], hi: list[float], start: float, shift: np.ndarray | None
    ) -> np.ndarray:
        """∫ f_p(x) Π_{j in rivals, j≠p} F_j(x) dx over [start, hi_p] for each p in `picks`, by the graded
        Gauss-Legendre rule (NODES points per pick): O(len(picks) · len(rivals) · NODES)."""
        width = np.array([hi[p] for p in picks]) - start
        x = np.multiply.outer(width, _AT)
        x += start
        others = self.cdf(x, shift, rivals)
        if len(picks) > 1:
            others[np.equal.outer(rivals, picks)] = 1.0  # each pick left out of its own product
        density = self.pdf(x if shift is None else x + shift[picks, None], picks)
        return np.minimum(width * ((density * others.prod(axis=0)) @ _WEIGHT), 1.0)


class BetaPosteriors(Posteriors):
    """Beta(a_j, b_j) posteriors of one context's arms, kept across updates: `refresh` redoes only the
    arms whose (a, b) changed (one per update, without discounting).

    scipy's betainc costs ~0.2 µs a point, too much at NODES points of every other arm per decision, so
    an arm's CDF is tabulated once it has been needed DIRECT_USES times with the same (a, b) (until
    then each use costs NODES exact betainc points, less than a table while arms keep changing, as they
    do one per update while a router learns): TABLE even steps
    between its tail quantiles, read by linear interpolation (off by ~5e-5, ~1e-4 for skewed posteriors,
    ~7e-4 next to an end where a or b is just above 1). The table is the running Simpson integral of the
    density, started from exact betainc values two steps in from each end (a or b below 2 makes the
    density's slope singular there). A density with a or b below 1 is itself singular: such arms are
    evaluated with betainc.

    Draws are made DRAWS at a time per arm, with scalar parameters: numpy checks array parameters with
    a few array operations per call (~30 µs for 20 arms), a scalar call costs ~1.5 µs. Decisions read
    the columns of `draws` in turn; an arm's row, filled at some column, runs out when the reading comes
    back to that column, and an arm whose (a, b) changed throws its unread draws away and gets
    DRAWS_AFTER_CHANGE new ones at once (a learning router changes one arm an update, often the same;
    a view used in rotation with others finds most arms changed, and refills them in one call). Every draw is thus a fresh independent Beta(a_j, b_j) draw, as one array call would give.
    Rows run out at staggered columns, so in a fixed state about k / DRAWS arms are refilled a decision.
    """

    def __init__(self, k: int) -> None:
        self.density_terms = np.full((3, k), np.nan)  # a, b, log B(a, b): one gather reads all three
        self.a, self.b, self.log_norm = self.density_terms
        self.lo, self.hi, self.scale = np.full((3, k), np.nan)
        # Single precision (CDF values off by < 6e-8, far below the interpolation's ~5e-5) and one column
        # more, a copy of the last, so that the point after the last reads a step of 0: 1 KB an arm.
        self.values = np.zeros((k, TABLE + 1), dtype=np.float32)
        self._offsets = np.arange(k) * (TABLE + 1)
        self._known: list[tuple[float, float] | None] = [None] * k
        self._unsettled: set[int] = set()  # arms whose (a, b) changed since their quantiles were computed
        self._exact = [False] * k
        self._tabled = [False] * k
        self._used = [0] * k  # uses since its (a, b) last changed, while not tabulated
        self.version = 0  # the owner's note of the state last taken (see ThompsonSampling._posteriors)
        self.draws = np.empty((k, DRAWS))
        self._column = 0  # read by the next decision
        self._due: list[list[int]] = [[] for _ in range(DRAWS)]  # per column, the arms whose rows it ends
        self._due_at = [0] * k
        self._due[0].extend(range(k))  # all run out at once: the first decision fills them staggered
        self._stale: list[int] = []  # arms whose (a, b) changed since the last draw
        self._ready = False  # whether the column the next decision reads is prepared (`prepare`)
        self._filled: int | None = None  # the column whose run-out rows `prepare` refilled on this visit

    def refresh(
        self, a: Sequence[float] | Mapping[int, float], b: Sequence[float] | Mapping[int, float],
        rows: Iterable[int] | None = None,
    ) -> BetaPosteriors:
        """Take the arms' current parameters, a[r] and b[r] for each r in `rows` (default all): what
        depends on them is redone for changed arms only."""
        known = self._known
        for j in range(len(a)) if rows is None else rows:
            ab = (a[j], b[j])
            if ab != known[j]:
                known[j] = ab
                self.a[j], self.b[j] = ab
                self._unsettled.add(j)
                self._stale.append(j)
                self._ready = False
        return self

    def prepare(self, generator) -> None:
        """Make the draws the next `sample` reads: refill the rows that run out at its column and give
        the arms whose (a, b) changed new ones. A learner calls it when an outcome arrives, so that the
        next decision only reads a column; `sample` calls it when that was not done."""
        if self._ready:
            return
        column, draws, a, b = self._column, self.draws, self.a, self.b
        # The rows that run out at this column are refilled once per visit of it, however often arms change.
        ran_out = sorted(self._due[column]) if self._filled != column else []
        self._filled, stale = column, self._stale
        many = len(a) // 2
        end = column + DRAWS_AFTER_CHANGE
        if len(ran_out) > many:  # rows that ran out together: one array call, and their ends staggered
            draws[ran_out] = generator.beta(a[ran_out, None], b[ran_out, None], (len(ran_out), DRAWS))
            for place, j in enumerate(ran_out):
                self._move(j, (column + 1 + place) % DRAWS)
        else:
            for j in ran_out:
                draws[j] = generator.beta(a[j], b[j], DRAWS)
        if len(stale) > many and end < DRAWS:  # many arms changed (a view used in rotation): one call
            rows = sorted(set(stale).difference(ran_out))
            if rows:
                shape = (len(rows), DRAWS_AFTER_CHANGE)
                draws[rows, column:end] = generator.beta(a[rows, None], b[rows, None], shape)
            for j in rows:
                self._move(j, end)
        else:
            refilled = set(ran_out)
            for j in stale:  # arms that changed: a few new draws, which run out at `end`
                if j in refilled:
                    continue
                refilled.add(j)
                if end < DRAWS:
                    draws[j, column:end] = generator.beta(a[j], b[j], DRAWS_AFTER_CHANGE)
                    self._move(j, end)
                else:
                    draws[j] = generator.beta(a[j], b[j], DRAWS)
                    self._move(j, column)
        stale.clear()
        self._ready = True

    def sample(self, generator):
        if not self._ready:
            self.prepare(generator)
        column = self._column
        self._column = (column + 1) % DRAWS
        self._ready, self._filled = False, None
        return self.draws[:, column].copy()

    def _move(self, j: int, column: int) -> None:
        self._due[self._due_at[j]].remove(j)
        self._due[column].append(j)
        self._due_at[j] = column

    def cdf(self, x, shift, rows):
        exact_arm, tabled_arm, used = self._exact, self._tabled, self._used
        direct = [exact_arm[j] or not (tabled_arm[j] or used[j] >= DIRECT_USES) for j in rows]
        for j in rows:
            if not (exact_arm[j] or tabled_arm[j]):
                used[j] += 1
        tabled = [j for j, d in zip(rows, direct) if not d]
        self._tabulate([j for j in tabled if not tabled_arm[j]])
        if len(tabled) == len(rows):
            return self._interpolated(x, shift, rows)
        values = np.empty((len(rows), *x.shape))
        exact = np.array(direct)
        if tabled:
            values[~exact] = self._interpolated(x, shift, tabled)
        e = np.array(rows)[exact][:, None, None]
        z = x if shift is None else x + shift[e]
        values[exact] = betainc(self.a[e], self.b[e], np.maximum(np.minimum(z, 1.0), 0.0))
        return values

    def pdf(self, x, rows):
        a, b, log_norm = self.density_terms[:, rows, None]
        return np.exp((a - 1) * np.log(x) + (b - 1) * np.log1p(-x) - log_norm)

    def _contenders(self, shift):
        while self._unsettled:  # quantiles only when a propensity needs them (not for a bare draw)
            self._settle(self._unsettled.pop())
        return super()._contenders(shift)

    def _settle(self, j: int) -> None:
        a, b = self._known[j]
        lo, hi = betaincinv(a, b, _TAILS).tolist()
        lo, hi = max(lo, 1e-300), min(hi, 1.0 - 2**-53)  # keeps log x and log(1 - x) finite on [lo, hi]
        self.lo[j], self.hi[j] = lo, hi
        self.scale[j] = (TABLE - 1) / (hi - lo)
        self.log_norm[j] = betaln(a, b)
        self._exact[j] = min(a, b) < 1
        self._tabled[j] = False
        self._used[j] = 0

    def _interpolated(self, x: np.ndarray, shift: np.ndarray | None, rows: list[int]) -> np.ndarray:
        """F_j(x + shift[j]) of tabled arms, shape (len(rows), *x.shape)."""
        r = np.array(rows)
        scale = self.scale[r]
        origin = self.lo[r] if shift is None else self.lo[r] - shift[r]
        t = np.multiply.outer(scale, x)
        t -= (origin * scale)[:, None, None]
        np.maximum(np.minimum(t, TABLE - 1, out=t), 0.0, out=t)  # np.clip has a slower Python wrapper
        i = t.astype(np.intp)
        t -= i
        i += self._offsets[r, None, None]
        table = self.values.ravel()
        below = table[i]
        i += 1
        values = np.subtract(table[i], below, dtype=np.float64)
        values *= t
        values += below
        return values

    def _tabulate(self, rows: list[int]) -> None:
        if not rows:
            return
        r = np.array(rows)
        a, b, lo, hi = self.a[r, None], self.b[r, None], self.lo[r, None], self.hi[r, None]
        x = lo + (hi - lo) * _GRID
        # Simpson's weights (h / 6 per cell of width h) folded into the density's normaliser.
        log_cell = self.log_norm[r, None] - np.log((hi - lo) / (6 * (TABLE - 1)))
        density = np.exp((a - 1) * np.log(x) + (b - 1) * np.log1p(-x) - log_cell)
        cells = density[:, :-2:2] + density[:, 2::2]
        cells += 4 * density[:, 1::2]
        values = np.empty((len(rows), TABLE))
        values[:, _ENDS] = betainc(a, b, x[:, _ENDS_ON_GRID])
        np.cumsum(cells[:, 2:-3], axis=1, out=values[:, 3:-3])
        values[:, 3:-3] += values[:, 2:3]
        self.values[r, :TABLE] = values
        self.values[r, TABLE] = values[:, -1]
        for j in rows:
            self._tabled[j] = True


class NormalPosteriors(Posteriors):
    """Normal posteriors N(mu_j, sd_j²)."""

    def __init__(self, mu: list[float], sd: list[float]) -> None:
        self.mu, self.sd = np.array(mu), np.array(sd)
        z = float(ndtri(1.0 - TAIL))
        self.lo, self.hi = self.mu - z * self.sd, self.mu + z * self.sd

    def sample(self, generator):
        return self.mu + self.sd * generator.standard_normal(len(self.mu))  # no array-parameter checks

    def cdf(self, x, shift, rows):
        r = np.array(rows)[:, None, None]
        centre = self.mu[r] if shift is None else self.mu[r] - shift[r]
        return ndtr((x - centre) / self.sd[r])

    def pdf(self, x, rows):
        mu, sd = self.mu[rows, None], self.sd[rows, None]
        return np.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
