"""Content-aware routing: linear Thompson sampling over the prompt's embedding, task type and category.

Each target keeps a Bayesian ridge regression of success on features x = [w * P embedding (a fixed random
projection to `projection` dimensions: on RouterBench 64 predicted as well as all 384), one-hot of the
task type (hashed into `type_buckets` slots), one-hot of the category, 1]: precision A = diag(λ) + Σ x xᵀ
(kept as its inverse, updated by Sherman-Morrison) and mean μ = A⁻¹ Σ y x. For a task the target's
success is believed N(xᵀμ + r, (v/2 · e)² xᵀA⁻¹x), where r is a discounted mean of its recent residuals
(drift: a target that degrades or improves is tracked within ~1/(1 - residual_discount) of its calls,
while the regression itself is stationary). With willingness to pay L the router maximises
`L * success - cost`, i.e. draws each target's success and subtracts `cost / L`, the target's discounted
mean cost per call on the task type (else overall; 0 until it has one). The pick is that Thompson draw's
argmax and its propensity is computed exactly (routing.strategies.bandits.posteriors), so the decisions
can be evaluated off-policy.

Cold start. A category or topic never seen starts wide (unseen slots and new directions of the embedding
carry prior variance) and is explored. An unseen task type or category does not start at 0 for a target
either: the prior mean of its slot is what the other targets learnt on that slot (their coefficients,
weighted by their observations and shrunk by `pool_weight`), since a new eval moves every model alike in
part (RouterBench's Winogrande is 9-35 points harder than ARC for every model). Slots have their own
prior precision (`slot_ridge`): a target's deviation from its overall rate on one eval is modest.

Exploration. e = max(floor, sqrt(n0 / (n0 + n))) narrows a target's draws as its record n grows:
replaying RouterBench (warm start on one eval, route the other), the exploration of eleven well-known
models on every new prompt direction cost ~1.5 points of AIQ, while a fresh target on a real topic
split needs the full width (tests/unit/test_contextual.py). Dearer targets are narrowed further by
(cheapest / own mean cost)^α, so uncertainty about a dear target buys fewer exploratory calls than the
same uncertainty about a cheap one (α = 0: plain Thompson sampling on L * success - cost, which on the
same replay lost 2-3 AIQ points to exploring GPT-4 at low L). A task without an embedding is routed on
its type and category alone.

Why a linear model and not a nearest-neighbour estimate: benchmarks/bench_ceilings.py gives every feature
set every model's outcome on 80% of an eval (far more than any online router sees) and scores the
resulting router: ridge on MiniLM beats kNN at every k (k = 1 finds Winogrande's twin sentences, which do
not share difficulty), and no feature set gains 0.01 AIQ over the zero router on ARC or Winogrande.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from routing.context.embedding import task_embedding
from routing.models import Candidate, Category, Outcome, Target, Task
from routing.stats.book import StatsBook
from routing.strategies.bandits.posteriors import NormalPosteriors
from routing.strategies.base import Choice

CATEGORIES = tuple(Category)
PROJECTION_SEED = 20240614
BIAS_RIDGE = 0.01
"""Prior precision of the intercept: nearly flat, so a target's overall success rate lands there and the
type and category slots (prior precision `ridge`) only hold deviations from it; an unseen category then
starts from the target's overall rate, not from a third of it."""


class ContextualConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    willingness_to_pay: float | None = Field(default=None, gt=0, description="Dollars per success (L).")
    dimensions: int = Field(default=384, ge=1, description="Embedding size; other sizes are ignored.")
    content_weight: float = Field(default=1.0, ge=0, description="Scale of the embedding in the features.")
    ridge: float = Field(default=5.0, gt=0, description="Prior precision λ of each embedding coefficient.")
    slot_ridge: float = Field(
        default=25.0, gt=0, description="Prior precision of each target's task-type and category deviations."
    )
    pool_weight: float = Field(
        default=5.0, ge=0, description="Pseudo-observations of 0 behind the shift every target shares per slot."
    )
    exploration: float = Field(default=0.6, ge=0, description="Width of the Thompson draw (v).")
    experience: float | None = Field(
        default=100.0, gt=0, description="n0: a target with n outcomes draws sqrt(n0 / (n0 + n)) as wide."
    )
    exploration_floor: float = Field(default=0.25, ge=0, le=1, description="The narrowing never goes below this.")
    cost_exploration: float = Field(
        default=0.5, ge=0, description="α: a dearer target's draw is narrowed by (cheapest / its cost)^α."
    )
    residual_discount: float = Field(default=0.99, gt=0, lt=1, description="Drift memory per target.")
    cost_discount: float = Field(default=0.99, gt=0, le=1, description="Memory of each mean cost.")
    type_buckets: int = Field(default=16, ge=1, description="Hashed one-hot slots for task types.")
    projection: int = Field(
        default=64, ge=1, description="Embedding dimensions kept by a fixed random projection (cost ~ size²)."
    )


@lru_cache(maxsize=4096)
def _bucket(task_type: str) -> int:
    """A stable hash of the task type (the same in every process), computed once per type."""
    return int.from_bytes(hashlib.blake2b(task_type.encode(), digest_size=4).digest(), "little")


class _Costs:
    """A target's discounted mean cost per call, per task type and overall (key None)."""

    __slots__ = ("means",)

    def __init__(self) -> None:
        self.means: dict[str | None, tuple[float, float]] = {}  # key -> (weight, mean)

    def observe(self, task_type: str, cost: float, discount: float) -> None:
        for key in (task_type, None):
            weight, mean = self.means.get(key, (0.0, 0.0))
            weight = discount * weight + 1.0
            self.means[key] = (weight, mean + (cost - mean) / weight)

    def mean(self, task_type: str) -> float | None:
        found = self.means.get(task_type) or self.means.get(None)
        return found[1] if found else None


class ContextualThompson:
    """Linear Thompson sampling over prompt embeddings, task type and category (module docstring)."""

    name = "contextual"

    def __init__(
        self, targets: Sequence[str] = (), seed: int | None = None, config: ContextualConfig | None = None
    ) -> None:
        self.config = config or ContextualConfig()
        c = self.config
        self.content = min(c.projection, c.dimensions)
        # A fixed seed: every process projects alike, so a strategy's state means the same everywhere.
        self.projector = (
            np.random.default_rng(PROJECTION_SEED).standard_normal((c.dimensions, self.content))
            / math.sqrt(self.content)
            if self.content < c.dimensions
            else None
        )
        self.size = self.content + c.type_buckets + len(CATEGORIES) + 1
        # One row per target, in arrival order: A⁻¹, Σ y x, μ (refreshed lazily), calls, residual drift.
        self.index: dict[str, int] = {}
        self.inverse = np.empty((0, self.size, self.size))
        self.b = np.empty((0, self.size))
        self.mu = np.empty((0, self.size))
        self.stale: set[int] = set()
        self.n = np.empty(0)
        self.slot_n = np.empty((0, self.size - self.content - 1))  # observations per type/category slot
        self.residual = np.empty(0)
        self.costs: list[_Costs] = []
        self.generator = np.random.default_rng(seed)
        for name in targets:
            self._arm(name)

    @property
    def willingness_to_pay(self) -> float | None:
        return self.config.willingness_to_pay

    def repriced(self, willingness_to_pay: float | None) -> ContextualThompson:
        """A deep copy maximising `L * success - cost` at another L (what it learnt is the same for any L)."""
        twin = copy.deepcopy(self)
        twin.config = self.config.model_copy(update={"willingness_to_pay": willingness_to_pay})
        return twin

    def _arm(self, name: str) -> int:
        k = self.index.get(name)
        if k is None:
            k = self.index[name] = len(self.index)
            prior = np.diag(1.0 / self._precision())
            self.inverse = np.concatenate([self.inverse, prior[None]])
            self.b = np.vstack([self.b, np.zeros(self.size)])
            self.mu = np.vstack([self.mu, np.zeros(self.size)])
            self.n = np.append(self.n, 0.0)
            self.slot_n = np.vstack([self.slot_n, np.zeros(self.slot_n.shape[1])])
            self.residual = np.append(self.residual, 0.0)
            self.costs.append(_Costs())
        return k

    def _precision(self) -> np.ndarray:
        """Prior precision of each coefficient: embedding, type and category slots, intercept."""
        c = self.config
        precision = np.full(self.size, c.ridge)
        precision[self.content : -1] = c.slot_ridge
        precision[-1] = BIAS_RIDGE
        return precision

    def _shared_shift(self, rows: list[int], slots: np.ndarray) -> np.ndarray:
        """Per target, the prior mean of its coefficient on each active slot: what the OTHER targets
        learnt there (their data-only coefficients weighted by their observations, shrunk to 0 by
        `pool_weight`). A new eval moves every target's success alike in part (one eval is harder), so
        the first targets tried on it tell the rest where to start."""
        n = self.slot_n[np.ix_(rows, slots)]
        theta = self.mu[np.ix_(rows, self.content + slots)]
        total_n, total = n.sum(axis=0), (n * theta).sum(axis=0)
        return (total - n * theta) / (total_n - n + self.config.pool_weight + 1e-12)

    def _narrowing(self, rows: list[int]) -> np.ndarray | float:
        """The share of the full draw width each target keeps: a fresh target explores widely, one with a
        long record (a warm start, or months of traffic) much less, even on prompts unlike its past ones;
        the floor keeps some exploration for drift and for the genuinely new."""
        c = self.config
        if c.experience is None:
            return 1.0
        return np.maximum(c.exploration_floor, np.sqrt(c.experience / (c.experience + self.n[rows])))

    def _means(self, rows: list[int]) -> np.ndarray:
        for k in self.stale.intersection(rows):
            self.mu[k] = self.inverse[k] @ self.b[k]
        self.stale.difference_update(rows)
        return self.mu[rows]

    def features(self, embedding: np.ndarray | None, task_type: str, category: str) -> np.ndarray:
        c = self.config
        x = np.zeros(self.size)
        if embedding is not None:
            x[: self.content] = c.content_weight * (embedding if self.projector is None else embedding @ self.projector)
        x[self.content + _bucket(task_type) % c.type_buckets] = 1.0
        x[self.content + c.type_buckets + CATEGORIES.index(Category(category))] = 1.0
        x[-1] = 1.0
        return x

    def _task_features(self, task: Task) -> np.ndarray:
        embedding = task_embedding(task.metadata, self.config.dimensions)
        return self.features(embedding, task.task_type, task.category)

    def posteriors(self, task: Task, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean success, draw width, cost penalty in success units) of each target for `task`."""
        x = self._task_features(task)
        rows = [self._arm(n) for n in names]
        mean = self._means(rows) @ x + self.residual[rows]
        inverse = self.inverse if len(rows) == len(self.index) and rows == sorted(rows) else self.inverse[rows]
        ax = inverse @ x
        variance = np.maximum(ax @ x, 1e-12)
        # A prior mean m on slot s moves the posterior mean by λ_s m (A⁻¹x)_s (A⁻¹ kept, so this is exact).
        slots = np.flatnonzero(x[self.content : -1])
        if len(slots):
            shift = self._shared_shift(rows, slots)
            mean = mean + self.config.slot_ridge * (shift * ax[:, self.content + slots]).sum(axis=1)
        width = 0.5 * self.config.exploration * self._narrowing(rows) * np.sqrt(variance)
        costs = [self.costs[k].mean(task.task_type) for k in rows]
        known = [c for c in costs if c is not None and c > 0]
        if known and self.config.cost_exploration > 0:
            cheapest = min(known)
            scale = [1.0 if c is None or c <= 0 else (cheapest / c) ** self.config.cost_exploration for c in costs]
            width = width * np.array(scale)
        L = self.config.willingness_to_pay
        penalty = np.array([0.0 if L is None or c is None else c / L for c in costs])
        return mean, np.maximum(width, 1e-9), penalty

    def choose(self, task: Task, targets: Sequence[Target], book: StatsBook) -> Choice:
        names = [t.name for t in targets]
        mean, width, penalty = self.posteriors(task, names)
        posterior = NormalPosteriors(mean.tolist(), width.tolist())
        draw = posterior.sample(self.generator) - penalty
        pick = int(np.argmax(draw))
        propensity = posterior.argmax_probability(pick, penalty) if len(names) > 1 else 1.0
        candidates = []
        for j, name in enumerate(names):
            stats = book.get(name, task.task_type)
            candidates.append(
                Candidate(
                    target=name,
                    score=float(mean[j] - penalty[j]),
                    samples=round(self.n[self.index[name]]),
                    success_rate=stats.success_rate if stats else None,
                    p50_latency_ms=stats.p50_latency_ms if stats else None,
                    details={
                        "predicted_success": float(mean[j]),
                        "uncertainty": float(width[j]),
                        "cost_penalty": float(penalty[j]),
                    },
                )
            )
        candidates.sort(key=lambda c: c.score, reverse=True)
        has_text = task_embedding(task.metadata, self.config.dimensions) is not None
        reason = (
            f"{self.name}: drew {names[pick]} with probability {propensity:.3f} for {task.task_type}/"
            f"{task.category} ({'prompt embedding' if has_text else 'no embedding: type and category only'}; "
            f"predicted success {mean[pick]:.3f} ± {width[pick]:.3f})"
        )
        return Choice(tuple(candidates), names[pick], float(min(max(propensity, 0.0), 1.0)), reason)

    def observe(self, outcome: Outcome) -> None:
        k = self._arm(outcome.target)
        embedding = None
        if outcome.embedding is not None:
            embedding = task_embedding({"embedding": outcome.embedding}, self.config.dimensions)
        x = self.features(embedding, outcome.task_type, outcome.category)
        y = outcome.quality_score / 100.0 if outcome.quality_score is not None else float(outcome.success)
        if not math.isfinite(y):
            return
        c = self.config
        mu = self._means([k])[0]
        self.residual[k] = c.residual_discount * self.residual[k] + (1 - c.residual_discount) * (y - x @ mu)
        inverse = self.inverse[k]
        ax = inverse @ x
        inverse -= np.outer(ax, ax / (1.0 + x @ ax))
        self.b[k] += y * x
        self.stale.add(k)
        self.n[k] += 1
        self.slot_n[k] += x[self.content : -1] != 0
        self.costs[k].observe(outcome.task_type, outcome.cost, c.cost_discount)
