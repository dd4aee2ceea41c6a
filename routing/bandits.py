"""Multi-armed bandits that learn which target pays best, each able to state its own propensities.

The learners share one bookkeeping: per arm a (possibly discounted or windowed) count `n`, reward
sum `s` and sum of squares `ss`, kept globally and per context.

- `EpsilonGreedy` and `UCB1` try every arm once (uniformly among the untried), then exploit; their
  propensities are exact (ties are broken uniformly at random).
- `ThompsonSampling` draws each arm's mean from its Beta posterior (rewards in [0, 1], fractional
  rewards counted as fractional successes); `GaussianThompsonSampling` draws from a normal posterior of
  the mean, for unbounded rewards (e.g. dollars), after trying each arm once. Their propensity
  P(arm's draw is the largest) is *computed*, not simulated (see `argmax_probabilities`). The
  select() fast path draws with `random`; the probabilities agree with its frequencies to ~2e-3.

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
"""Mass left out in each tail when integrating propensities; an arm whose upper tail quantile lies
below every other arm's lower one is given probability 0 (its true value is below ~2 * TAIL)."""

GRID = 16
"""CDF and density evaluations per contending arm when integrating propensities; against a Monte Carlo
reference the error stays ~2e-3 or less with 5 to 20 arms."""

Curve = Callable[[np.ndarray, np.ndarray], np.ndarray]


def argmax_probabilities(lo: np.ndarray, hi: np.ndarray, cdf: Curve, pdf: Curve) -> np.ndarray:
    """P(draw i is the largest) for independent draws, given tail quantiles `lo`/`hi` of each draw and
    `cdf(x, rows)` / `pdf(x, rows)`: the CDF / density of draw `rows[m]` at `x[m]`, elementwise.

    Each contending draw's CDF and density are evaluated at GRID points spanning its [lo, hi] (above
    the highest `lo`), its CDF is interpolated between them by cubic Hermite splines onto the union of
    every draw's points, and `P(i) = ∫ Π_{j≠i} F_j dF_i` is summed by the trapezoid rule in F_i.
    """
    probabilities = np.zeros(len(lo))
    floor = lo.max()
    rows = np.flatnonzero(hi > floor)
    if len(rows) == 1:
        probabilities[rows[0]] = 1.0
        return probabilities
    k = len(rows)
    start = np.maximum(lo[rows], floor)
    step = (hi[rows] - start) / (GRID - 1)
    own = start[:, None] + step[:, None] * np.arange(GRID)
    flat = np.repeat(rows, GRID)
    values = cdf(own.ravel(), flat).reshape(k, GRID)
    slopes = pdf(own.ravel(), flat).reshape(k, GRID) * step[:, None]
    nodes = np.sort(own.ravel())
    u = (nodes[None, :] - start[:, None]) / step[:, None]
    i = np.clip(np.floor(u), 0, GRID - 2).astype(int)
    t = np.clip(u - i, 0.0, 1.0)
    arm = np.arange(k)[:, None]
    t2, t3 = t * t, t * t * t
    spline = (
        (2 * t3 - 3 * t2 + 1) * values[arm, i]
        + (t3 - 2 * t2 + t) * slopes[arm, i]
        + (3 * t2 - 2 * t3) * values[arm, i + 1]
        + (t3 - t2) * slopes[arm, i + 1]
    )
    F = np.zeros((k, len(nodes) + 2))
    F[:, -1] = 1.0
    F[:, 1:-1] = np.where(u < 0, 0.0, np.where(u > GRID - 1, 1.0, np.clip(spline, 0.0, 1.0)))
    # Product of every *other* draw's CDF, without dividing by F_i (which may be 0).
    before = np.ones_like(F)
    before[1:] = np.cumprod(F[:-1], axis=0)
    after = np.ones_like(F)
    after[:-1] = np.cumprod(F[:0:-1], axis=0)[::-1]
    others = before * after
    mass = (np.diff(F, axis=1) * (others[:, 1:] + others[:, :-1])).sum(axis=1) / 2
    probabilities[rows] = mass / mass.sum()
    return probabilities


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

    __slots__ = ("n", "s", "ss", "recent")

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

    def select(self, context: Context = None, arms: Sequence[str] | None = None, penalty=None) -> str:
        """Pick an arm (among `arms` if given), each arm's value lowered by `penalty[i]` if given."""
        names, n, s, ss = self._view(context, arms)
        return names[self._select(n, s, ss, penalty)]

    def probabilities(
        self, context: Context = None, arms: Sequence[str] | None = None, penalty=None
    ) -> dict[str, float]:
        """The probability `select` has of picking each arm, in the same state and arguments."""
        names, n, s, ss = self._view(context, arms)
        return dict(zip(names, self._probabilities(n, s, ss, penalty)))

    def probability(
        self, arm: str, context: Context = None, arms: Sequence[str] | None = None, penalty=None
    ) -> float:
        self._position(arm)
        return self.probabilities(context, arms, penalty).get(arm, 0.0)

    def means(self, context: Context = None, arms: Sequence[str] | None = None) -> dict[str, float | None]:
        """Estimated mean reward of each arm (None for an arm without data and without a prior)."""
        names, n, s, ss = self._view(context, arms)
        return {a: self._mean(n[j], s[j]) for j, a in enumerate(names)}

    def counts(self, context: Context = None, arms: Sequence[str] | None = None) -> dict[str, float]:
        """Effective number of observations behind each arm's estimate in `context`."""
        names, n, _, _ = self._view(context, arms)
        return dict(zip(names, n))

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

    def _view(self, context: Context, arms: Sequence[str] | None):
        """(arm names, n, s, ss) for the considered arms, pooled with the global data in a context."""
        g = self._global
        if arms is None:
            names, idx = self._arms, range(len(self._arms))
        else:
            if not arms:
                raise ValueError("arms must not be empty")
            names, idx = list(arms), [self._position(a) for a in arms]
        if context is None:
            if arms is None:
                return names, g.n, g.s, g.ss
            return names, [g.n[i] for i in idx], [g.s[i] for i in idx], [g.ss[i] for i in idx]
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
        return names, n, s, ss

    def _argmax(self, values: list[float]) -> int:
        ties = _greedy_set(values)
        return ties[0] if len(ties) == 1 else self._rng.choice(ties)

    def _select(self, n: list[float], s: list[float], ss: list[float], penalty) -> int:
        raise NotImplementedError

    def _probabilities(self, n: list[float], s: list[float], ss: list[float], penalty) -> list[float]:
        raise NotImplementedError


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

    def _select(self, n, s, ss, penalty):
        untried = _untried(n)
        if untried:
            return self._rng.choice(untried)
        if self._rng.random() < self.epsilon:
            return self._rng.randrange(len(n))
        return self._argmax(self._values(n, s, penalty))

    def _probabilities(self, n, s, ss, penalty):
        greedy = self._greedy_probabilities(n, s, penalty)
        if _untried(n):
            return greedy
        k, eps = len(n), self.epsilon
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

    def _select(self, n, s, ss, penalty):
        untried = _untried(n)
        if untried:
            return self._rng.choice(untried)
        return self._argmax(self._values(n, s, penalty))

    def _probabilities(self, n, s, ss, penalty):
        return self._greedy_probabilities(n, s, penalty)


class ThompsonSampling(Bandit):
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

    def _select(self, n, s, ss, penalty):
        draw, a0, b0 = self._rng.betavariate, self.alpha, self.beta
        if penalty is None:
            values = [draw(a0 + s[j], b0 + max(n[j] - s[j], 0.0)) for j in range(len(n))]
        else:
            values = [draw(a0 + s[j], b0 + max(n[j] - s[j], 0.0)) - penalty[j] for j in range(len(n))]
        return values.index(max(values))

    def _probabilities(self, n, s, ss, penalty):
        a = self.alpha + np.asarray(s, float)
        b = self.beta + np.maximum(np.asarray(n, float) - s, 0.0)
        shift = np.zeros(len(n)) if penalty is None else np.asarray(penalty, float)

        log_norm = betaln(a, b)

        def cdf(x, rows):
            return betainc(a[rows], b[rows], np.clip(x + shift[rows], 0.0, 1.0))

        def pdf(x, rows):
            x = np.clip(x + shift[rows], 1e-300, 1.0 - 1e-16)
            log_density = (a[rows] - 1) * np.log(x) + (b[rows] - 1) * np.log1p(-x) - log_norm[rows]
            return np.minimum(np.exp(log_density), 1e300)

        lo = betaincinv(a, b, TAIL) - shift
        hi = betaincinv(a, b, 1.0 - TAIL) - shift
        return argmax_probabilities(lo, hi, cdf, pdf).tolist()


class GaussianThompsonSampling(Bandit):
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

    def _posterior(self, n, s, ss, penalty) -> tuple[list[float], list[float]]:
        """Mean (minus penalty) and standard deviation of each arm's mean."""
        k = len(n)
        sse = [max(ss[j] - s[j] * s[j] / n[j], 0.0) for j in range(k)]
        if self.noise_sd is not None:
            variances = [self.noise_sd**2] * k
        else:
            pooled = sum(sse) / sum(n)
            variances = [(sse[j] + pooled) / (n[j] + 1.0) for j in range(k)]
        means = [s[j] / n[j] - (penalty[j] if penalty is not None else 0.0) for j in range(k)]
        scale = max(abs(m) for m in means) or 1.0
        sds = [max(math.sqrt(variances[j] / n[j]), 1e-12 * scale) for j in range(k)]
        return means, sds

    def _select(self, n, s, ss, penalty):
        untried = _untried(n)
        if untried:
            return self._rng.choice(untried)
        means, sds = self._posterior(n, s, ss, penalty)
        gauss = self._rng.gauss
        values = [gauss(m, sd) for m, sd in zip(means, sds)]
        return values.index(max(values))

    def _probabilities(self, n, s, ss, penalty):
        untried = _untried(n)
        if untried:
            return [1.0 / len(untried) if j in untried else 0.0 for j in range(len(n))]
        means, sds = self._posterior(n, s, ss, penalty)
        mu, sd = np.asarray(means), np.asarray(sds)
        z = float(ndtri(1.0 - TAIL))

        def cdf(x, rows):
            return ndtr((x - mu[rows]) / sd[rows])

        def pdf(x, rows):
            return np.exp(-0.5 * ((x - mu[rows]) / sd[rows]) ** 2) / (sd[rows] * math.sqrt(2 * math.pi))

        return argmax_probabilities(mu - z * sd, mu + z * sd, cdf, pdf).tolist()


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

    The pick is drawn from the bandit's own selection probabilities restricted to the eligible targets,
    so the logged propensity is exactly the probability the pick was drawn with. With
    `willingness_to_pay` L (dollars per unit of reward), each target's value is lowered by its mean cost
    per call on the task type (from the shared StatsBook; 0 until it has one) divided by L: the router
    maximises `L * reward - cost`. Candidates are ranked by that estimated value (an untried target
    scores 0). The reward defaults to success (0/1), or quality/100 for `GaussianThompsonSampling`.
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
        self._rng = random.Random(seed)

    def distribution(self, task: Task, targets: Sequence[Target], book: StatsBook) -> dict[str, float]:
        """The probability of each eligible target being picked for `task` now."""
        names, context, penalty = self._frame(task, targets, book)
        return self.bandit.probabilities(context, names, penalty)

    def choose(self, task: Task, targets: Sequence[Target], book: StatsBook) -> Choice:
        names, context, penalty = self._frame(task, targets, book)
        probabilities = self.bandit.probabilities(context, names, penalty)
        pick = draw(self._rng, probabilities)
        means = self.bandit.means(context, names)
        counts = self.bandit.counts(context, names)
        penalty = penalty or [0.0] * len(names)
        candidates = []
        for name, cost in zip(names, penalty):
            stats = book.get(name, task.task_type)
            mean = means[name]
            details = {"propensity": probabilities[name], "cost_penalty": cost}
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
            f"{self.name}: drew {pick} with probability {probabilities[pick]:.3f} "
            f"for {task.task_type}/{task.category} ({estimate})"
        )
        return Choice(tuple(candidates), pick, probabilities[pick], reason)

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
