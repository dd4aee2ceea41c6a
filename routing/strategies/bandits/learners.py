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
integrals for Thompson sampling), for callers that mix distributions. `pick_in_view` leaves Thompson's
integral `Deferred`: it is computed when first read, and at the latest before the next `update` or
`add_arm` changes the state it depends on, so it is exactly what `pick` would have returned. What is derived from the
statistics (pooled views, posteriors, propensities) is cached per (context, arm set), least recently
used evicted beyond `view_limit`; an update re-pools only the arms it changed (every arm's stamp says
when it last changed), so decisions in an unchanged state cost one draw each and a decision after an
update redoes one arm, in whichever context. Contexts beyond `max_contexts` are forgotten least
recently updated first (an unseen context falls back to the global estimate).

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

from routing.errors import UnknownNameError
from routing.models import FINITE, Deferred
from routing.strategies.bandits.posteriors import BetaPosteriors, NormalPosteriors, Posteriors
from routing.validation import require_unique

Context = Hashable | None

PENDING_LIMIT = 256
"""Unresolved propensities kept before they are computed anyway (a router that chooses without ever
learning, over more (context, arm set) views than it keeps, would otherwise hold them all)."""


class BanditOptions(BaseModel):
    """Options common to every bandit."""

    model_config = ConfigDict(extra="forbid", **FINITE)

    discount: float | None = Field(default=None, gt=0, le=1, description="Weight kept per update (γ).")
    window: int | None = Field(default=None, ge=1, description="Observations kept per context.")
    prior_strength: float = Field(
        default=10.0, ge=0, description="Most observations the global estimate counts for in a context."
    )
    max_contexts: int = Field(
        default=100_000, ge=1, description="Contexts kept; the least recently updated is forgotten first."
    )
    view_limit: int = Field(
        default=1024, ge=1, description="(context, arm set) views cached; least recently used dropped first."
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

    def add(self, i: int, reward: float, discount: float | None, window: int | None) -> int | None:
        """Add one observation of arm i; returns the arm a full window evicted, if any."""
        n, s, ss = self.n, self.s, self.ss
        evicted = None
        if discount is not None:
            for j in range(len(n)):
                n[j] *= discount
                s[j] *= discount
                ss[j] *= discount
        elif self.recent is not None:
            if len(self.recent) == window:
                j, old = self.recent.popleft()
                evicted = j
                n[j] = max(0.0, n[j] - 1.0)
                s[j] -= old
                ss[j] = max(0.0, ss[j] - old * old)
            self.recent.append((i, reward))
        n[i] += 1.0
        s[i] += reward
        ss[i] += reward * reward
        return evicted


class _View:
    """The considered arms' statistics in one context (pooled with the global ones), as of `stamp`.

    `memo` keeps what learners derive from the view (probabilities, propensities) until an arm of it
    changes; `kept` is what a learner keeps across changes (Thompson's posteriors, refreshed per arm),
    and `extra` what a caller keeps (the adapter's candidates). `version` counts the re-poolings,
    `row_version[r]` is the version that last changed row r and `last_rows` the rows the latest one
    changed, so a caller can redo only those rows.
    """

    __slots__ = (
        "context", "extra", "idx", "kept", "key", "last_rows", "memo", "n", "names", "row_version", "s",
        "ss", "stamp", "version",
    )

    def __init__(self, key: Hashable, context: Context, names: list[str], idx: list[int], stamp: int):
        self.key, self.context, self.names, self.idx, self.stamp = key, context, names, idx, stamp
        self.n = [0.0] * len(idx)
        self.s = [0.0] * len(idx)
        self.ss = [0.0] * len(idx)
        self.memo: dict[Hashable, object] = {}
        self.kept: object = None
        self.extra: dict[Hashable, object] = {}
        self.version = 0
        self.row_version = [0] * len(idx)
        self.last_rows: list[int] = []

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
        require_unique(arms, "arms")
        self._arms = list(arms)
        self._index = {a: i for i, a in enumerate(self._arms)}
        self._rng = random.Random(seed)
        self._global = _Stats(len(self._arms), self.options.window)
        self._contexts: dict[Hashable, _Stats] = {}  # least recently updated first
        self._views: dict[tuple[Context, tuple[str, ...] | None], _View] = {}  # least recently used first
        self._clock = 0  # bumped by every update
        self._changed = [0] * len(self._arms)  # per arm, the clock of its last change (in any context)
        self._pending: list[Deferred] = []  # propensities handed out unresolved since the last change

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
        self._settle_pending()
        self._index[arm] = len(self._arms)
        self._arms.append(arm)
        self._global.grow()
        self._changed.append(self._clock)
        for stats in self._contexts.values():
            stats.grow()
        self._views.clear()

    def update(self, arm: str, reward: float, context: Context = None) -> None:
        i = self._position(arm)
        reward = float(reward)
        self._check_reward(reward)
        self._settle_pending()
        discount, window = self.options.discount, self.options.window
        self._clock += 1
        clock, changed = self._clock, self._changed
        evicted = self._global.add(i, reward, discount, window)
        if evicted is not None:
            changed[evicted] = clock
        if context is not None:
            stats = self._contexts.pop(context, None)
            if stats is None:
                stats = _Stats(len(self._arms), window)
                if len(self._contexts) >= self.options.max_contexts:
                    self._forget(next(iter(self._contexts)))
            self._contexts[context] = stats
            evicted = stats.add(i, reward, discount, window)
            if evicted is not None:
                changed[evicted] = clock
        if discount is not None:
            changed[:] = [clock] * len(changed)
        changed[i] = clock

    def _settle_pending(self) -> None:
        """Compute every propensity handed out unresolved while the state it was drawn in still holds."""
        pending = self._pending
        if pending:
            for deferred in pending:
                deferred()
            pending.clear()

    def _forget(self, context: Hashable) -> None:
        """Drop a context's statistics and the views pooled from them."""
        del self._contexts[context]
        self._views = {key: view for key, view in self._views.items() if view.context != context}

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
        propensity = self._propensity(view, j, penalty)
        return view.names[j], propensity() if type(propensity) is Deferred else propensity

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

    def pick_in_view(
        self, context: Context, arms: Sequence[str], penalty=None
    ) -> tuple[int, float | Deferred, _View]:
        """`pick` for a caller that also reads the view: (the pick's row, its propensity, the view); the
        propensity may be `Deferred` (see the module docstring).

        The view's `n` are the counts behind each arm's estimate and `estimate(view, row)` its mean.
        """
        view = self._view(context, arms)
        j = self._select(view, penalty)
        return j, self._propensity(view, j, penalty), view

    def warm(self, context: Context, arms: Sequence[str]) -> _View:
        """Bring the view of `context` over `arms` up to date now, so that the next decision in it costs
        what one in an unchanged state does: a learning router calls this as an outcome arrives, which
        moves the work an update causes off the next decision's path."""
        view = self._view(context, arms)
        self._prepare(view)
        return view

    def _prepare(self, view: _View) -> None:
        """Derive ahead of time what the next decision in `view` needs (nothing by default)."""

    def estimate(self, view: _View, row: int) -> float | None:
        return self._mean(view.n[row], view.s[row])

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
            raise UnknownNameError("arm", arm, self._arms) from None

    def _view(self, context: Context, arms: Sequence[str] | None) -> _View:
        key = (context, None if arms is None else tuple(arms))
        views = self._views
        view = views.pop(key, None)
        if view is None:
            if len(views) >= self.options.view_limit:
                del views[next(iter(views))]
            view = self._new_view(key, context, arms)
            self._pool(view, range(len(view.idx)))
        elif view.stamp != self._clock:
            changed, stamp = self._changed, view.stamp
            rows = [r for r, i in enumerate(view.idx) if changed[i] > stamp]
            if rows:
                self._pool(view, rows)
                view.memo.clear()
                view.version += 1
                view.last_rows = rows
                row_version = view.row_version
                for r in rows:
                    row_version[r] = view.version
            view.stamp = self._clock
        views[key] = view
        return view

    def _new_view(self, key: Hashable, context: Context, arms: Sequence[str] | None) -> _View:
        if arms is None:
            return _View(key, context, list(self._arms), list(range(len(self._arms))), self._clock)
        if not arms:
            raise ValueError("arms must not be empty")
        return _View(key, context, list(arms), [self._position(a) for a in arms], self._clock)

    def _pool(self, view: _View, rows) -> None:
        """Re-pool the view's arms at `rows` from the global statistics and the context's own."""
        g = self._global
        stats = None if view.context is None else self._contexts.get(view.context)
        cap = self.options.prior_strength
        n, s, ss = view.n, view.s, view.ss
        for r in rows:
            i = view.idx[r]
            gn = g.n[i]
            if view.context is None:
                n[r], s[r], ss[r] = gn, g.s[i], g.ss[i]
                continue
            w = 1.0 if gn <= cap else cap / gn
            cn, cs, css = (stats.n[i], stats.s[i], stats.ss[i]) if stats is not None else (0.0, 0.0, 0.0)
            n[r] = cn + w * gn
            s[r] = cs + w * g.s[i]
            ss[r] = css + w * g.ss[i]

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
        """Deferred (one integral, the costliest part of a decision), shared by every pick of arm j in
        this state, and resolved before the state changes (`_settle_pending`)."""
        key = ("propensity", _penalty_key(penalty), j)
        deferred = view.memo.get(key)
        if deferred is None:
            if len(self._pending) >= PENDING_LIMIT:
                self._settle_pending()
            posteriors = self._draw_from(view)
            deferred = view.memo[key] = Deferred(lambda: posteriors.argmax_probability(j, _shift(penalty)))
            self._pending.append(deferred)
        return deferred


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
        super().__init__(arms, seed, **options)

    def _mean(self, n, s):
        return (self.alpha + s) / (self.alpha + self.beta + n)

    def _check_reward(self, reward):
        if not 0.0 <= reward <= 1.0:
            raise ValueError(f"reward must be in [0, 1] for Beta-Bernoulli Thompson sampling, got {reward}")

    def _prepare(self, view):
        self._draw_from(view).prepare(self._generator)

    def _posteriors(self, view):
        """The view's Beta posteriors, kept with the view and refreshed for the rows that changed."""
        a0, b0 = self.alpha, self.beta
        kept = view.kept
        if kept is None:
            kept = view.kept = BetaPosteriors(len(view.n))
            rows = range(len(view.n))
        else:
            since = kept.version
            if since == view.version - 1:
                rows = view.last_rows
            else:
                rows = [r for r, v in enumerate(view.row_version) if v > since]
        kept.version = view.version
        n, s = view.n, view.s
        a, b = {}, {}
        for r in rows:
            a[r] = a0 + s[r]
            b[r] = b0 + max(n[r] - s[r], 0.0)
        return kept.refresh(a, b, rows)


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

