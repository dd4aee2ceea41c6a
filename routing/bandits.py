"""Multi-armed bandits that learn which target pays best, each able to state its own propensities.

The learners share one bookkeeping: per arm a (possibly discounted or windowed) count `n`, reward
sum `s` and sum of squares `ss`, kept globally and per context.

- `EpsilonGreedy` and `UCB1` try every arm once (uniformly among the untried), then exploit; their
  propensities are exact (ties are broken uniformly at random).
- `ThompsonSampling` draws each arm's mean from its Beta posterior (rewards in [0, 1], fractional
  rewards counted as fractional successes); `GaussianThompsonSampling` draws from a normal posterior of
  the mean, for unbounded rewards (e.g. dollars), after trying each arm once. A pick is a real draw (one
  per arm, then the argmax); its propensity P(its draw is the largest) is *computed*, not simulated, by
  one integral over the pick's own posterior (see `Posteriors`), to ~1e-4.

`pick` returns an arm with its propensity (what a router logs); `probabilities` gives every arm's (k
integrals for Thompson sampling), for callers that mix distributions. What is derived from the
statistics (pooled views, posteriors, propensities) is cached until the next `update`, so decisions in
an unchanged state cost one draw each.

Drift: `discount=γ` multiplies every statistic of the updated context (and the global one) by γ before
each update, so an observation weighs γ^age (memory ~1/(1-γ) calls); `window=N` keeps only the last N
observations of each context (and the last N overall). One or the other, not both.

Context (any hashable, e.g. `(task_type, category)`): an arm's estimate in a context pools the
context's own observations with the global ones (every context together), the latter counted as at
most `prior_strength` observations. An unseen context thus falls back to the global estimate, held
with the confidence of `prior_strength` calls, and its own data take over as they accumulate.
`context=None` reads and writes the global statistics only.

`penalty` (per considered arm, in reward units) is subtracted from each arm's value before the argmax:
it is how a known cost per call is priced in (maximise `quality - cost / willingness_to_pay`).
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.special import betainc, betaincinv, betaln, ndtr, ndtri

from routing.models import Candidate, Outcome, Target, Task
from routing.stats import StatsBook
from routing.strategy import Choice

Context = Hashable | None

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

CACHE_LIMIT = 256
"""Views (pooled statistics of a context and arm set) kept between updates before they are dropped."""

KEPT_LIMIT = 64
"""(context, arm set) pairs whose Beta posteriors and CDF tables Thompson sampling keeps across updates
(least recently used dropped first; ~80 kB each with 20 arms)."""


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
    an arm's CDF is tabulated the first time it is needed with its current (a, b): TABLE even steps
    between its tail quantiles, read by linear interpolation (off by ~5e-5, ~1e-4 for skewed posteriors,
    ~7e-4 next to an end where a or b is just above 1). The table is the running Simpson integral of the
    density, started from exact betainc values two steps in from each end (a or b below 2 makes the
    density's slope singular there). A density with a or b below 1 is itself singular: such arms are
    evaluated with betainc.
    """

    def __init__(self, k: int) -> None:
        self.density_terms = np.full((3, k), np.nan)  # a, b, log B(a, b): one gather reads all three
        self.a, self.b, self.log_norm = self.density_terms
        self.lo, self.hi, self.scale = np.full((3, k), np.nan)
        self.values = np.zeros((k, TABLE))
        self.steps = np.zeros((k, TABLE))  # values[i + 1] - values[i], 0 after the last
        self._offsets = np.arange(k) * TABLE
        self._known: list[tuple[float, float] | None] = [None] * k
        self._unsettled: set[int] = set()  # arms whose (a, b) changed since their quantiles were computed
        self._exact = [False] * k
        self._tabled = [False] * k

    def refresh(self, a: list[float], b: list[float]) -> BetaPosteriors:
        """Take the arms' current parameters (what depends on them is redone for changed arms only)."""
        for j, ab in enumerate(zip(a, b)):
            if ab != self._known[j]:
                self._known[j] = ab
                self.a[j], self.b[j] = ab
                self._unsettled.add(j)
        return self

    def sample(self, generator):
        return generator.beta(self.a, self.b)

    def cdf(self, x, shift, rows):
        tabled = [j for j in rows if not self._exact[j]]
        self._tabulate([j for j in tabled if not self._tabled[j]])
        if len(tabled) == len(rows):
            return self._interpolated(x, shift, rows)
        values = np.empty((len(rows), *x.shape))
        exact = np.array([self._exact[j] for j in rows])
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
        values = self.steps.ravel()[i]
        values *= t
        values += self.values.ravel()[i]
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
        self.values[r] = values
        self.steps[r, :-1] = np.diff(values, axis=1)
        for j in rows:
            self._tabled[j] = True


class NormalPosteriors(Posteriors):
    """Normal posteriors N(mu_j, sd_j²)."""

    def __init__(self, mu: list[float], sd: list[float]) -> None:
        self.mu, self.sd = np.array(mu), np.array(sd)
        z = float(ndtri(1.0 - TAIL))
        self.lo, self.hi = self.mu - z * self.sd, self.mu + z * self.sd

    def sample(self, generator):
        return generator.normal(self.mu, self.sd)

    def cdf(self, x, shift, rows):
        r = np.array(rows)[:, None, None]
        centre = self.mu[r] if shift is None else self.mu[r] - shift[r]
        return ndtr((x - centre) / self.sd[r])

    def pdf(self, x, rows):
        mu, sd = self.mu[rows, None], self.sd[rows, None]
        return np.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))


class BanditOptions(BaseModel):
    """Options common to every bandit."""

    model_config = ConfigDict(extra="forbid")

    discount: float | None = Field(default=None, gt=0, le=1, description="Weight kept per update (γ).")
    window: int | None = Field(default=None, ge=1, description="Observations kept per context.")
    prior_strength: float = Field(
        default=10.0, ge=0, description="Most observations the global estimate counts for in a context."
    )

    @model_validator(mode="after")
    def _one_forgetting_mode(self) -> BanditOptions:
        if self.discount is not None and self.window is not None:
            raise ValueError("give discount or window, not both")
        return self


class _Stats:
    """Per-arm count, reward sum and sum of squares of one context, with its forgetting rule."""

    __slots__ = ("n", "recent", "s", "ss")

    def __init__(self, k: int, window: int | None) -> None:
        self.n = [0.0] * k
        self.s = [0.0] * k
        self.ss = [0.0] * k
        self.recent: deque[tuple[int, float]] | None = deque() if window else None

    def grow(self) -> None:
        self.n.append(0.0)
        self.s.append(0.0)
        self.ss.append(0.0)

    def add(self, i: int, reward: float, discount: float | None, window: int | None) -> None:
        n, s, ss = self.n, self.s, self.ss
        if discount is not None:
            for j in range(len(n)):
                n[j] *= discount
                s[j] *= discount
                ss[j] *= discount
        elif self.recent is not None:
            if len(self.recent) == window:
                j, old = self.recent.popleft()
                n[j] = max(0.0, n[j] - 1.0)
                s[j] -= old
                ss[j] = max(0.0, ss[j] - old * old)
            self.recent.append((i, reward))
        n[i] += 1.0
        s[i] += reward
        ss[i] += reward * reward


class _View:
    """The considered arms' statistics in one context (pooled with the global ones), as of now.

    Views live until the bandit's next update, and `memo` keeps what learners derive from one
    meanwhile (posteriors, probabilities), so repeated decisions in one state compute them once.
    """

    __slots__ = ("key", "memo", "n", "names", "s", "ss")

    def __init__(self, key: Hashable, names: list[str], n: list[float], s: list[float], ss: list[float]):
        self.key, self.names, self.n, self.s, self.ss = key, names, n, s, ss
        self.memo: dict[Hashable, object] = {}

    def remember(self, key: Hashable, compute: Callable[[], object]):
        """memo[key], computed on first use."""
        value = self.memo.get(key)
        if value is None:
            value = self.memo[key] = compute()
        return value


def _penalty_key(penalty) -> tuple[float, ...] | None:
    return None if penalty is None else tuple(penalty)


class Bandit:
    """Bookkeeping, contexts and validation shared by the learners; subclasses decide and explain."""

    name: ClassVar[str]

    def __init__(self, arms: Sequence[str], seed: int | None = None, **options: object) -> None:
        self.options = BanditOptions(**options)
        if not arms:
            raise ValueError("a bandit needs at least one arm")
        duplicates = sorted({a for a in arms if list(arms).count(a) > 1})
        if duplicates:
            raise ValueError(f"duplicate arms: {', '.join(duplicates)}")
        self._arms = list(arms)
        self._index = {a: i for i, a in enumerate(self._arms)}
        self._rng = random.Random(seed)
        self._global = _Stats(len(self._arms), self.options.window)
        self._contexts: dict[Hashable, _Stats] = {}
        self._views: dict[tuple[Context, tuple[str, ...] | None], _View] = {}

    @property
    def arms(self) -> tuple[str, ...]:
        return tuple(self._arms)

    @property
    def contexts(self) -> tuple[Hashable, ...]:
        return tuple(self._contexts)

    def add_arm(self, arm: str) -> None:
        """Start learning about a new arm (no-op if known); it starts untried everywhere."""
        if arm in self._index:
            return
        self._index[arm] = len(self._arms)
        self._arms.append(arm)
        self._global.grow()
        for stats in self._contexts.values():
            stats.grow()
        self._views.clear()

    def update(self, arm: str, reward: float, context: Context = None) -> None:
        i = self._position(arm)
        reward = float(reward)
        self._check_reward(reward)
        discount, window = self.options.discount, self.options.window
        self._global.add(i, reward, discount, window)
        if context is not None:
            stats = self._contexts.get(context)
            if stats is None:
                stats = self._contexts[context] = _Stats(len(self._arms), window)
            stats.add(i, reward, discount, window)
        self._views.clear()

    def select(self, context: Context = None, arms: Sequence[str] | None = None, penalty=None) -> str:
        """Pick an arm (among `arms` if given), each arm's value lowered by `penalty[i]` if given."""
        view = self._view(context, arms)
        return view.names[self._select(view, penalty)]

    def pick(
        self, context: Context = None, arms: Sequence[str] | None = None, penalty=None
    ) -> tuple[str, float]:
        """Pick as `select` does, with the probability it had of picking that arm (its propensity)."""
        view = self._view(context, arms)
        j = self._select(view, penalty)
        return view.names[j], self._propensity(view, j, penalty)

    def probabilities(
        self, context: Context = None, arms: Sequence[str] | None = None, penalty=None
    ) -> dict[str, float]:
        """The probability `select` has of picking each arm, in the same state and arguments."""
        view = self._view(context, arms)
        return dict(zip(view.names, self._all_probabilities(view, penalty)))

    def probability(
        self, arm: str, context: Context = None, arms: Sequence[str] | None = None, penalty=None
    ) -> float:
        self._position(arm)
        return self.probabilities(context, arms, penalty).get(arm, 0.0)

    def means(self, context: Context = None, arms: Sequence[str] | None = None) -> dict[str, float | None]:
        """Estimated mean reward of each arm (None for an arm without data and without a prior)."""
        view = self._view(context, arms)
        return {a: self._mean(view.n[j], view.s[j]) for j, a in enumerate(view.names)}

    def counts(self, context: Context = None, arms: Sequence[str] | None = None) -> dict[str, float]:
        """Effective number of observations behind each arm's estimate in `context`."""
        view = self._view(context, arms)
        return dict(zip(view.names, view.n))

    def _mean(self, n: float, s: float) -> float | None:
        return s / n if n > 0 else None

    def _check_reward(self, reward: float) -> None:
        if not math.isfinite(reward):
            raise ValueError(f"reward must be finite, got {reward}")

    def _position(self, arm: str) -> int:
        try:
            return self._index[arm]
        except KeyError:
            raise ValueError(f"unknown arm {arm!r}; known arms: {', '.join(self._arms)}") from None

    def _view(self, context: Context, arms: Sequence[str] | None) -> _View:
        key = (context, None if arms is None else tuple(arms))
        view = self._views.get(key)
        if view is None:
            if len(self._views) >= CACHE_LIMIT:
                self._views.clear()
            view = self._views[key] = self._pool(key, context, arms)
        return view

    def _pool(self, key: Hashable, context: Context, arms: Sequence[str] | None) -> _View:
        """The considered arms' statistics, pooled with the global data in a context."""
        g = self._global
        if arms is None:
            names, idx = list(self._arms), range(len(self._arms))
        else:
            if not arms:
                raise ValueError("arms must not be empty")
            names, idx = list(arms), [self._position(a) for a in arms]
        if context is None:
            return _View(key, names, [g.n[i] for i in idx], [g.s[i] for i in idx], [g.ss[i] for i in idx])
        stats = self._contexts.get(context)
        cap = self.options.prior_strength
        n, s, ss = [], [], []
        for i in idx:
            gn = g.n[i]
            w = 1.0 if gn <= cap else cap / gn
            cn, cs, css = (stats.n[i], stats.s[i], stats.ss[i]) if stats is not None else (0.0, 0.0, 0.0)
            n.append(cn + w * gn)
            s.append(cs + w * g.s[i])
            ss.append(css + w * g.ss[i])
        return _View(key, names, n, s, ss)

    def _all_probabilities(self, view: _View, penalty) -> list[float]:
        key = ("probabilities", _penalty_key(penalty))
        return view.remember(key, lambda: self._probabilities(view, penalty))

    def _argmax(self, values: list[float]) -> int:
        ties = _greedy_set(values)
        return ties[0] if len(ties) == 1 else self._rng.choice(ties)

    def _select(self, view: _View, penalty) -> int:
        raise NotImplementedError

    def _probabilities(self, view: _View, penalty) -> list[float]:
        raise NotImplementedError

    def _propensity(self, view: _View, j: int, penalty) -> float:
        """The probability of picking arm j (by default read off the full distribution)."""
        return self._all_probabilities(view, penalty)[j]


def _untried(n: list[float]) -> list[int]:
    return [j for j, nj in enumerate(n) if nj <= 0.0]


def _greedy_set(values: list[float]) -> list[int]:
    best = max(values)
    return [j for j, v in enumerate(values) if v == best]


class _ValueBandit(Bandit):
    """Try each arm once, then follow a deterministic value per arm (with exploration on top)."""

    def _values(self, n: list[float], s: list[float], penalty) -> list[float]:
        raise NotImplementedError

    def _greedy_probabilities(self, n, s, penalty) -> list[float]:
        k = len(n)
        untried = _untried(n)
        chosen = untried or _greedy_set(self._values(n, s, penalty))
        share = 1.0 / len(chosen)
        probabilities = [0.0] * k
        for j in chosen:
            probabilities[j] = share
        return probabilities


class EpsilonGreedy(_ValueBandit):
    """With probability `epsilon` a uniformly random arm, otherwise the best mean (minus penalty)."""

    name = "epsilon_greedy"

    def __init__(self, arms: Sequence[str], seed: int | None = None, *, epsilon: float = 0.1, **options):
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.epsilon = epsilon
        super().__init__(arms, seed, **options)

    def _values(self, n, s, penalty):
        if penalty is None:
            return [s[j] / n[j] for j in range(len(n))]
        return [s[j] / n[j] - penalty[j] for j in range(len(n))]

    def _select(self, view, penalty):
        n = view.n
        untried = _untried(n)
        if untried:
            return self._rng.choice(untried)
        if self._rng.random() < self.epsilon:
            return self._rng.randrange(len(n))
        return self._argmax(self._values(n, view.s, penalty))

    def _probabilities(self, view, penalty):
        greedy = self._greedy_probabilities(view.n, view.s, penalty)
        if _untried(view.n):
            return greedy
        k, eps = len(view.n), self.epsilon
        return [eps / k + (1.0 - eps) * p for p in greedy]


class UCB1(_ValueBandit):
    """Mean plus `c * sqrt(ln N / n)` (Auer et al. 2002 with c = sqrt 2); rewards assumed in [0, 1]."""

    name = "ucb1"

    def __init__(self, arms: Sequence[str], seed: int | None = None, *, c: float = math.sqrt(2), **options):
        if not c >= 0:
            raise ValueError(f"c must be >= 0, got {c}")
        self.c = c
        super().__init__(arms, seed, **options)

    def _values(self, n, s, penalty):
        log_total = math.log(max(sum(n), 1.0))
        c = self.c
        values = [s[j] / n[j] + c * math.sqrt(log_total / n[j]) for j in range(len(n))]
        if penalty is not None:
            values = [v - p for v, p in zip(values, penalty)]
        return values

    def _select(self, view, penalty):
        untried = _untried(view.n)
        if untried:
            return self._rng.choice(untried)
        return self._argmax(self._values(view.n, view.s, penalty))

    def _probabilities(self, view, penalty):
        return self._greedy_probabilities(view.n, view.s, penalty)


class _ThompsonBandit(Bandit):
    """Thompson sampling over `Posteriors`: draw one value per arm, pick the largest after the penalty.

    The pick's propensity is `Posteriors.argmax_probability` of that arm alone; the full distribution
    integrates every arm.
    """

    def __init__(self, arms: Sequence[str], seed: int | None = None, **options) -> None:
        super().__init__(arms, seed, **options)
        self._generator = np.random.default_rng(seed)

    def _posteriors(self, view: _View) -> Posteriors:
        raise NotImplementedError

    def _draw_from(self, view: _View) -> Posteriors:
        return view.remember("posteriors", lambda: self._posteriors(view))

    def _select(self, view, penalty):
        values = self._draw_from(view).sample(self._generator)
        if penalty is not None:
            values -= penalty
        return int(values.argmax())

    def _probabilities(self, view, penalty):
        return self._draw_from(view).argmax_probabilities(_shift(penalty)).tolist()

    def _propensity(self, view, j, penalty):
        posteriors = self._draw_from(view)
        key = ("propensity", _penalty_key(penalty), j)
        return view.remember(key, lambda: posteriors.argmax_probability(j, _shift(penalty)))


def _shift(penalty) -> np.ndarray | None:
    return None if penalty is None else np.asarray(penalty, dtype=float)


class ThompsonSampling(_ThompsonBandit):
    """Beta-Bernoulli Thompson sampling with a Beta(`alpha`, `beta`) prior; rewards in [0, 1]."""

    name = "thompson"

    def __init__(
        self,
        arms: Sequence[str],
        seed: int | None = None,
        *,
        alpha: float = 1.0,
        beta: float = 1.0,
        **options,
    ):
        if not (alpha > 0 and beta > 0):
            raise ValueError(f"alpha and beta must be > 0, got alpha={alpha}, beta={beta}")
        self.alpha, self.beta = alpha, beta
        self._kept: dict[Hashable, BetaPosteriors] = {}  # by view key, least recently used first
        super().__init__(arms, seed, **options)

    def _mean(self, n, s):
        return (self.alpha + s) / (self.alpha + self.beta + n)

    def _check_reward(self, reward):
        if not 0.0 <= reward <= 1.0:
            raise ValueError(f"reward must be in [0, 1] for Beta-Bernoulli Thompson sampling, got {reward}")

    def _posteriors(self, view):
        """The view's Beta posteriors, refreshed from those kept for its context and arms."""
        a0, b0 = self.alpha, self.beta
        a = [a0 + s for s in view.s]
        b = [b0 + max(n - s, 0.0) for n, s in zip(view.n, view.s)]
        kept = self._kept.pop(view.key, None)
        if kept is None or len(kept.a) != len(a):
            kept = BetaPosteriors(len(a))
        self._kept[view.key] = kept
        if len(self._kept) > KEPT_LIMIT:
            del self._kept[next(iter(self._kept))]
        return kept.refresh(a, b)


class GaussianThompsonSampling(_ThompsonBandit):
    """Thompson sampling of each arm's mean from N(mean, var / n), for rewards on any scale.

    `noise_sd` fixes the reward noise; by default each arm's variance is its sample variance shrunk
    towards the variance pooled over the considered arms (weight of one observation), so the reward
    scale (quality in [0, 1] or dollars) needs no tuning. Each arm is tried once first.
    """

    name = "gaussian_thompson"

    def __init__(
        self, arms: Sequence[str], seed: int | None = None, *, noise_sd: float | None = None, **options
    ):
        if noise_sd is not None and not noise_sd > 0:
            raise ValueError(f"noise_sd must be > 0, got {noise_sd}")
        self.noise_sd = noise_sd
        super().__init__(arms, seed, **options)

    def _posteriors(self, view):
        n, s, ss = view.n, view.s, view.ss
        k = len(n)
        sse = [max(ss[j] - s[j] * s[j] / n[j], 0.0) for j in range(k)]
        if self.noise_sd is not None:
            variances = [self.noise_sd**2] * k
        else:
            pooled = sum(sse) / sum(n)
            variances = [(sse[j] + pooled) / (n[j] + 1.0) for j in range(k)]
        means = [s[j] / n[j] for j in range(k)]
        scale = max(abs(m) for m in means) or 1.0
        sds = [max(math.sqrt(variances[j] / n[j]), 1e-12 * scale) for j in range(k)]
        return NormalPosteriors(means, sds)

    def _select(self, view, penalty):
        untried = _untried(view.n)
        if untried:
            return self._rng.choice(untried)
        return super()._select(view, penalty)

    def _probabilities(self, view, penalty):
        untried = _untried(view.n)
        if untried:
            return [1.0 / len(untried) if j in untried else 0.0 for j in range(len(view.n))]
        return super()._probabilities(view, penalty)

    def _propensity(self, view, j, penalty):
        if _untried(view.n):
            return self._all_probabilities(view, penalty)[j]
        return super()._propensity(view, j, penalty)


BANDITS: dict[str, type[Bandit]] = {
    cls.name: cls for cls in (EpsilonGreedy, UCB1, ThompsonSampling, GaussianThompsonSampling)
}


def draw(rng: random.Random, probabilities: dict[str, float]) -> str:
    """One pick from a distribution over targets (the pick's propensity is its entry)."""
    return rng.choices(list(probabilities), weights=list(probabilities.values()))[0]


def success_reward(outcome: Outcome) -> float:
    return 1.0 if outcome.success else 0.0


def quality_reward(outcome: Outcome) -> float:
    """Quality on a 0-1 scale when it was judged, else success."""
    if outcome.quality_score is not None:
        return outcome.quality_score / 100.0
    return success_reward(outcome)


def task_context(task_type: str, category: str) -> tuple[str, str]:
    return (task_type, str(category))


class BanditStrategy:
    """A bandit as a routing Strategy: one arm per target, one context per (task type, category).

    The pick is the bandit's own pick among the eligible targets (a real draw for Thompson sampling),
    logged with the probability the bandit had of making it. With `willingness_to_pay` L (dollars per
    unit of reward), each target's value is lowered by its mean cost per call on the task type (from the
    shared StatsBook; 0 until it has one) divided by L: the router maximises `L * reward - cost`.
    Candidates are ranked by that estimated value (an untried target scores 0); their details carry the
    mean reward and the cost penalty. The reward defaults to success (0/1), or quality/100 for
    `GaussianThompsonSampling`.
    """

    def __init__(
        self,
        bandit_cls: type[Bandit],
        targets: Sequence[str],
        seed: int | None = None,
        *,
        willingness_to_pay: float | None = None,
        reward: Callable[[Outcome], float] | None = None,
        name: str | None = None,
        **options,
    ) -> None:
        if willingness_to_pay is not None and not willingness_to_pay > 0:
            raise ValueError(f"willingness_to_pay must be > 0, got {willingness_to_pay}")
        self.bandit = bandit_cls(list(targets), seed, **options)
        self.name = name or bandit_cls.name
        self.willingness_to_pay = willingness_to_pay
        self.reward = reward or (quality_reward if bandit_cls is GaussianThompsonSampling else success_reward)

    def distribution(self, task: Task, targets: Sequence[Target], book: StatsBook) -> dict[str, float]:
        """The probability of each eligible target being picked for `task` now."""
        names, context, penalty = self._frame(task, targets, book)
        return self.bandit.probabilities(context, names, penalty)

    def choose(self, task: Task, targets: Sequence[Target], book: StatsBook) -> Choice:
        names, context, penalty = self._frame(task, targets, book)
        pick, propensity = self.bandit.pick(context, names, penalty)
        means = self.bandit.means(context, names)
        counts = self.bandit.counts(context, names)
        candidates = []
        for j, name in enumerate(names):
            stats = book.get(name, task.task_type)
            mean = means[name]
            cost = penalty[j] if penalty is not None else 0.0
            details = {"cost_penalty": cost}
            if mean is not None:
                details["mean_reward"] = mean
            candidates.append(
                Candidate(
                    target=name,
                    score=0.0 if mean is None else mean - cost,
                    samples=round(counts[name]),
                    success_rate=stats.success_rate if stats else None,
                    p50_latency_ms=stats.p50_latency_ms if stats else None,
                    details=details,
                )
            )
        candidates.sort(key=lambda c: c.score, reverse=True)
        mean = means[pick]
        estimate = "untried" if mean is None else f"mean reward {mean:.3f} over {counts[pick]:.0f} calls"
        reason = (
            f"{self.name}: drew {pick} with probability {propensity:.3f} "
            f"for {task.task_type}/{task.category} ({estimate})"
        )
        return Choice(tuple(candidates), pick, propensity, reason)

    def observe(self, outcome: Outcome) -> None:
        self.bandit.add_arm(outcome.target)
        context = task_context(outcome.task_type, outcome.category)
        self.bandit.update(outcome.target, self.reward(outcome), context)

    def _frame(self, task: Task, targets: Sequence[Target], book: StatsBook):
        """(eligible names, bandit context, cost penalty per name or None) for one decision."""
        names = [t.name for t in targets]
        for name in names:
            self.bandit.add_arm(name)
        context = task_context(task.task_type, task.category)
        if self.willingness_to_pay is None:
            return names, context, None
        penalty = []
        for name in names:
            stats = book.get(name, task.task_type)
            penalty.append((stats.mean_cost or 0.0) / self.willingness_to_pay if stats else 0.0)
        return names, context, penalty
