"""Replay RouterBench outcomes through a strategy, with bandit feedback only.

RouterBench (Hu et al., 2024) records, per prompt, whether each model answered correctly and what the
call cost. Replaying it row by row through the Router shows what a strategy would have achieved: the
router sees only the picked model's correctness and cost, never the others'. Every model is a target
and every row a task whose type is its eval name and whose category comes from a small eval-name table
(else from the prompt's keywords).

With a willingness to pay L (dollars per correct answer) the strategy maximises `L * quality - cost`,
as RouterBench's routers do; several L values trace a cost-quality curve summarised by AIQ:

    AIQ = 1 / (c_max - c_min) * ∫_{c_min}^{c_max} R(c) dc

where R is the non-decreasing concave hull of the (total cost, accuracy) points (the best accuracy any
mixture of the points reaches at cost <= c; 0 below the cheapest point) and [c_min, c_max] spans every
point of the report, router runs and single models alike, so that the router's AIQ and the "zero
router" AIQ (the same hull over the single models, RouterBench's baseline of random mixtures) compare.

Warm start: rows of other files are observed as past executions of every model (full information), as
a benchmark run would give, before the replayed rows are routed.

Content: with an embedder, every task carries its prompt's embedding (and so does every outcome), and
the default strategy is the content-aware one (routing.strategies.contextual). RouterBench prompts are a
Python list literal of few-shot examples followed by the item; only the item (`routerbench_question`)
is embedded, since the shared examples would make every prompt of an eval look alike.
"""

from __future__ import annotations

import ast
import copy
import csv
import math
import random
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
from pydantic import BaseModel, computed_field

from routing.context.category import detect_category
from routing.context.embedding import EMBEDDING_KEY, Embedder
from routing.errors import DataFormatError
from routing.models import Category, Outcome, Target, Task
from routing.router import Router
from routing.strategies.base import Repriced
from routing.strategies.registry import build_strategy

REQUIRED = ("sample_id", "prompt", "eval_name")
COST_SUFFIX = "|total_cost"

EVAL_CATEGORIES: dict[str, Category] = {
    "arc": Category.RESEARCH,
    "winogrande": Category.LANGUAGE,
    "hellaswag": Category.LANGUAGE,
    "mmlu": Category.GENERAL,
    "mt-bench": Category.GENERAL,
    "gsm8k": Category.MATH,
    "grade-school-math": Category.MATH,
    "math": Category.MATH,
    "mbpp": Category.CODING,
    "humaneval": Category.CODING,
    "consensus_summary": Category.LANGUAGE,
}
"""Eval-name prefixes (lower case) and their category; unknown evals fall back to the prompt."""


def eval_category(eval_name: str, prompt: str) -> Category:
    name = eval_name.lower()
    for prefix, category in EVAL_CATEGORIES.items():
        if name.startswith(prefix):
            return category
    return detect_category(prompt)


@dataclass(frozen=True)
class SkippedRow:
    """A row left out because some model's correctness is blank (RouterBench has a few)."""

    source: str
    row: int
    sample_id: str
    missing: tuple[str, ...]


@dataclass(frozen=True)
class ReplayData:
    """RouterBench rows: `correct[i, j]` (0/1) and `cost[i, j]` (dollars) of model j on row i."""

    models: tuple[str, ...]
    sample_ids: tuple[str, ...]
    prompts: tuple[str, ...]
    eval_names: tuple[str, ...]
    correct: np.ndarray
    cost: np.ndarray
    skipped: tuple[SkippedRow, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.sample_ids)

    def take(self, rows: Sequence[int]) -> ReplayData:
        """These rows, in this order."""
        rows = list(rows)
        return replace(
            self,
            sample_ids=tuple(self.sample_ids[i] for i in rows),
            prompts=tuple(self.prompts[i] for i in rows),
            eval_names=tuple(self.eval_names[i] for i in rows),
            correct=self.correct[rows],
            cost=self.cost[rows],
        )

    def with_models(self, models: Sequence[str]) -> ReplayData:
        """The same rows with the model columns in the order of `models` (the same set)."""
        if set(models) != set(self.models):
            missing = ", ".join(sorted(set(models) - set(self.models))) or "none"
            extra = ", ".join(sorted(set(self.models) - set(models))) or "none"
            raise ValueError(f"models differ (missing: {missing}; extra: {extra})")
        columns = [self.models.index(m) for m in models]
        return replace(
            self, models=tuple(models), correct=self.correct[:, columns], cost=self.cost[:, columns]
        )

    def split(self, fraction: float, seed: int = 0) -> tuple[ReplayData, ReplayData]:
        """A random `fraction` of the rows and the rest (e.g. warm-start and evaluation parts)."""
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must be in (0, 1), got {fraction}")
        rows = list(range(len(self)))
        random.Random(seed).shuffle(rows)
        cut = round(len(rows) * fraction)
        return self.take(sorted(rows[:cut])), self.take(sorted(rows[cut:]))


def _number(raw: str) -> float | None:
    text = raw.strip()
    if not text or text.lower() == "nan":
        return None
    return float(text)


def _read(path: Path) -> ReplayData:
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))  # prompts carry few-shot examples
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise DataFormatError(f"{path}: empty file")
        position = {name: i for i, name in enumerate(header)}
        for name in REQUIRED:
            if name not in position:
                raise DataFormatError(f"{path}: missing column {name!r}")
        priced = [c[: -len(COST_SUFFIX)] for c in header if c.endswith(COST_SUFFIX)]
        if not priced:
            raise DataFormatError(f"{path}: no '<model>{COST_SUFFIX}' column")
        for model in priced:
            if model not in position:
                raise DataFormatError(
                    f"{path}: missing column {model!r} (correctness of the model in {model + COST_SUFFIX!r})"
                )
        models = tuple(c for c in header if c in priced)  # in the order of the correctness columns
        rows, skipped = [], []
        for row_number, values in enumerate(reader, start=1):
            if not values:
                continue
            if len(values) != len(header):
                raise DataFormatError(
                    f"{path}: row {row_number} (line {reader.line_num}) has {len(values)} fields, "
                    f"expected {len(header)}"
                )
            sample_id = values[position["sample_id"]]
            where = f"{path}: row {row_number} (line {reader.line_num}, sample_id {sample_id!r})"
            correct, cost, missing = [], [], []
            for model in models:
                raw = values[position[model]]
                try:
                    value = _number(raw)
                except ValueError:
                    value = math.nan
                if value is None:
                    missing.append(model)
                elif value not in (0.0, 1.0):
                    raise DataFormatError(f"{where}: column {model!r} must be 0 or 1, got {raw!r}")
                correct.append(value)
                raw = values[position[model + COST_SUFFIX]]
                try:
                    price = _number(raw)
                except ValueError:
                    price = None
                if price is None or not price >= 0:
                    raise DataFormatError(
                        f"{where}: column {model + COST_SUFFIX!r} must be a non-negative number, got {raw!r}"
                    )
                cost.append(price)
            if missing:
                skipped.append(SkippedRow(str(path), row_number, sample_id, tuple(missing)))
            else:
                rows.append(
                    (sample_id, values[position["prompt"]], values[position["eval_name"]], correct, cost)
                )
    return ReplayData(
        models=models,
        sample_ids=tuple(r[0] for r in rows),
        prompts=tuple(r[1] for r in rows),
        eval_names=tuple(r[2] for r in rows),
        correct=np.array([r[3] for r in rows], dtype=float).reshape(len(rows), len(models)),
        cost=np.array([r[4] for r in rows], dtype=float).reshape(len(rows), len(models)),
        skipped=tuple(skipped),
    )


def load_routerbench(paths: Path | str | Iterable[Path | str]) -> ReplayData:
    """Rows of one or more RouterBench CSVs, in file order; every file must have the same models.

    Extra columns (e.g. `oracle_model_to_route_to`) are ignored. A row with a blank correctness cell
    is left out and listed in `skipped`; any other value than 0 or 1 is an error naming the row.
    """
    paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    if not paths:
        raise ValueError("no RouterBench file given")
    parts = [_read(paths[0])]
    for path in paths[1:]:
        try:
            parts.append(_read(path).with_models(parts[0].models))
        except DataFormatError:
            raise
        except ValueError as error:
            raise DataFormatError(f"{path}: {error} compared with {paths[0]}") from None
    return ReplayData(
        models=parts[0].models,
        sample_ids=sum((p.sample_ids for p in parts), ()),
        prompts=sum((p.prompts for p in parts), ()),
        eval_names=sum((p.eval_names for p in parts), ()),
        correct=np.vstack([p.correct for p in parts]),
        cost=np.vstack([p.cost for p in parts]),
        skipped=sum((p.skipped for p in parts), ()),
    )


class Result(BaseModel):
    """Accuracy and spend of one way of answering every replayed row."""

    accuracy: float
    correct: int
    total_cost: float

    @computed_field
    @property
    def cost_per_correct(self) -> float | None:
        return self.total_cost / self.correct if self.correct else None


class ReplayDecision(BaseModel):
    sample_id: str
    target: str


class ReplayRun(Result):
    """The router's result at one willingness to pay (None: quality only)."""

    willingness_to_pay: float | None
    picks: dict[str, int]
    decisions: list[ReplayDecision]


class ReplayReport(BaseModel):
    """Router runs next to every single model and the oracle (cheapest correct model per row)."""

    strategy: str
    rows: int
    warm_start_rows: int
    skipped_rows: int
    shuffle_seed: int | None
    seed: int | None
    runs: list[ReplayRun]
    models: dict[str, Result]
    oracle: Result
    aiq: float | None = None
    zero_router_aiq: float | None = None
    aiq_cost_range: tuple[float, float] | None = None

    @computed_field
    @property
    def accuracy(self) -> float:
        """Of the first run (the first willingness to pay given)."""
        return self.runs[0].accuracy

    @computed_field
    @property
    def total_cost(self) -> float:
        return self.runs[0].total_cost

    @computed_field
    @property
    def cost_per_correct(self) -> float | None:
        return self.runs[0].cost_per_correct

    @computed_field
    @property
    def best_model(self) -> str:
        """The most accurate single model (the cheaper one on a tie)."""
        return max(self.models, key=lambda m: (self.models[m].accuracy, -self.models[m].total_cost))

    @property
    def decisions(self) -> list[ReplayDecision]:
        return self.runs[0].decisions

    @computed_field
    @property
    def near_best(self) -> NearBest | None:
        """The cheapest run with at least 95% of the best model's accuracy (None if no run gets there)."""
        best = self.models[self.best_model]
        if not best.accuracy or not best.total_cost:
            return None
        good = [r for r in self.runs if r.accuracy >= NEAR_BEST_ACCURACY * best.accuracy]
        if not good:
            return None
        run = min(good, key=lambda r: r.total_cost)
        return NearBest(
            willingness_to_pay=run.willingness_to_pay,
            accuracy_vs_best=run.accuracy / best.accuracy,
            cost_vs_best=run.total_cost / best.total_cost,
        )

    @computed_field
    @property
    def accuracy_at_cost_aim(self) -> float | None:
        """The best accuracy (relative to the best model's) of a run costing <= 30% of the best model."""
        best = self.models[self.best_model]
        if not best.accuracy:
            return None
        cheap = [r.accuracy for r in self.runs if r.total_cost <= COST_AIM * best.total_cost]
        return max(cheap) / best.accuracy if cheap else None


NEAR_BEST_ACCURACY, COST_AIM = 0.95, 0.30
"""The aim RouterBench-style routers are judged by: 95% of the best model's accuracy at <= 30% of its cost."""


class NearBest(BaseModel):
    willingness_to_pay: float | None
    accuracy_vs_best: float
    cost_vs_best: float


def nondecreasing_hull(points: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Vertices, by cost, of the non-decreasing concave hull of (cost, quality) points."""
    best: dict[float, float] = {}
    for cost, quality in points:
        best[cost] = max(quality, best.get(cost, -math.inf))
    hull: list[tuple[float, float]] = []
    for point in sorted(best.items()):
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            # Drop the middle vertex unless it lies strictly above the chord (upper hull, concave).
            if (x2 - x1) * (point[1] - y1) - (y2 - y1) * (point[0] - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append(point)
    top = max(range(len(hull)), key=lambda i: hull[i][1])
    return hull[: top + 1]


def aiq(points: Iterable[tuple[float, float]], cost_range: tuple[float, float]) -> float:
    """Mean of the hull's quality over `cost_range` (see the module docstring)."""
    hull = nondecreasing_hull(points)
    lo, hi = cost_range
    costs = np.array([c for c, _ in hull])
    qualities = np.array([q for _, q in hull])
    if hi <= lo:
        return float(np.interp(hi, costs, qualities, left=0.0))
    start = max(lo, costs[0])
    if start >= hi:
        return 0.0
    xs = np.unique(np.concatenate([[start, hi], costs[(costs > start) & (costs < hi)]]))
    return float(np.trapezoid(np.interp(xs, costs, qualities), xs) / (hi - lo))


def willingness_grid(data: ReplayData, points: int = 13) -> list[float]:
    """`points` willingness-to-pay values, evenly spaced in log, that span the whole cost-quality frontier.

    A model is preferred to a cheaper one when L > (extra cost per call) / (extra accuracy): below
    L = the cheapest model's mean cost per call only that model is worth its price (accuracy gaps are
    at most 1), and above 200 times the dearest one's every gap of 0.5 points or more is paid for. A
    sweep that stops short of the cheap end leaves the curve's hull at 0 below its cheapest point,
    which RouterBench's AIQ counts against the router.
    """
    if points < 2:
        raise ValueError(f"a curve needs at least 2 points, got {points}")
    mean_cost = data.cost.mean(axis=0)
    low = float(mean_cost[mean_cost > 0].min()) if (mean_cost > 0).any() else 1e-6
    high = max(200 * float(mean_cost.max()), 10 * low)
    return [float(v) for v in np.geomspace(low, high, points)]


def target_names(models: Sequence[str]) -> list[str]:
    """Model names made valid (and unique) as target names."""
    names: list[str] = []
    for model in models:
        name = re.sub(r"[^A-Za-z0-9_.:\-]", "_", model)
        while name in names:
            name += "_"
        names.append(name)
    return names


def _result(correct: np.ndarray, cost: np.ndarray) -> Result:
    return Result(accuracy=float(correct.mean()), correct=int(correct.sum()), total_cost=float(cost.sum()))


def oracle(data: ReplayData) -> Result:
    """The cheapest correct model on each row (the cheapest model where none is correct)."""
    masked = np.where(data.correct > 0, data.cost, np.inf)
    choice = np.where(np.isinf(masked.min(axis=1)), data.cost.argmin(axis=1), masked.argmin(axis=1))
    rows = np.arange(len(data))
    return _result(data.correct[rows, choice], data.cost[rows, choice])


def routerbench_question(prompt: str) -> str:
    """The item a RouterBench prompt asks about: the last blank-line-separated block of its text.

    The prompts are `repr` of a list of strings (few-shot examples, then the item); a prompt that is no
    such literal is taken as plain text.
    """
    text = prompt
    if prompt.startswith("[") and prompt.endswith("]"):
        try:
            parts = ast.literal_eval(prompt)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            parts = None
        if isinstance(parts, list) and parts and all(isinstance(p, str) for p in parts):
            text = "\n".join(parts)
    blocks = [b.strip() for b in text.split("\n\n") if b.strip()]
    return blocks[-1] if blocks else (prompt or "(empty prompt)")


def embed_prompts(data: ReplayData, embedder: Embedder) -> np.ndarray:
    """The embedding of each row's item (see `routerbench_question`), one row per data row."""
    return np.asarray(embedder.embed([routerbench_question(p) for p in data.prompts]), dtype=np.float32)


def _tasks(data: ReplayData, embeddings: np.ndarray | None = None) -> list[Task]:
    return [
        Task(
            id=sample_id,
            task_type=eval_name,
            category=eval_category(eval_name, prompt),
            payload=prompt or "(empty prompt)",
            metadata={} if embeddings is None else {EMBEDDING_KEY: tuple(embeddings[i].tolist())},
        )
        for i, (sample_id, prompt, eval_name) in enumerate(zip(data.sample_ids, data.prompts, data.eval_names))
    ]


def _outcome(target: str, task: Task, success: float, cost: float) -> Outcome:
    outcome = Outcome(
        target=target, task_type=task.task_type, category=task.category, success=bool(success),
        duration_ms=0.0, cost=float(cost),
    )
    # The task's embedding was validated with the task; validating it again per model dominated the replay.
    embedding = task.metadata.get(EMBEDDING_KEY)
    return outcome if embedding is None else outcome.model_copy(update={"embedding": embedding})


def _warm_router(
    names: list[str],
    warm_start: ReplayData | None,
    warm_tasks: list[Task] | None,
    strategy: str,
    willingness_to_pay: float | None,
    seed: int | None,
    options: dict,
) -> Router:
    """A fresh router with `strategy` at this price that has observed every warm-start outcome."""
    priced = {} if willingness_to_pay is None else {"willingness_to_pay": willingness_to_pay}
    router = Router(
        [Target(name=n) for n in names], build_strategy(strategy, names, seed, **priced, **options)
    )
    if warm_start is not None:
        for task, successes, costs in zip(warm_tasks, warm_start.correct, warm_start.cost):
            for name, success, cost in zip(names, successes, costs):
                router.observe(_outcome(name, task, success, cost))
    return router


def _routers(
    names: list[str], levels: list[float | None], warm: Callable[[float | None], Router]
) -> Iterator[Router]:
    """One warmed-up router per price: a `Repriced` strategy is warmed up once and copied (the same
    decisions, a fraction of the time), any other is warmed up at each price."""
    first = warm(levels[0])
    if not isinstance(first.strategy, Repriced):
        yield first
        yield from (warm(level) for level in levels[1:])
        return
    for level in levels:
        router = copy.deepcopy(first)
        router.strategy = first.strategy.repriced(level)
        yield router


def _run(data: ReplayData, order: list[int], tasks: list[Task], router: Router, level: float | None) -> ReplayRun:
    names = target_names(data.models)
    column = {name: j for j, name in enumerate(names)}
    picks = np.empty(len(order), dtype=int)
    for position, row in enumerate(order):
        task = tasks[row]
        j = column[router.choose(task).pick]
        picks[position] = j
        router.observe(_outcome(names[j], task, data.correct[row, j], data.cost[row, j]))
    result = _result(data.correct[order, picks], data.cost[order, picks])
    return ReplayRun(
        **result.model_dump(exclude={"cost_per_correct"}),
        willingness_to_pay=level,
        picks={data.models[j]: int((picks == j).sum()) for j in range(len(names))},
        decisions=[
            ReplayDecision(sample_id=data.sample_ids[row], target=data.models[j])
            for row, j in zip(order, picks)
        ],
    )


def replay(
    data: ReplayData,
    strategy: str | None = None,
    willingness_to_pay: float | Sequence[float | None] | None = None,
    warm_start: ReplayData | None = None,
    shuffle_seed: int | None = None,
    seed: int | None = 0,
    embedder: Embedder | None = None,
    **options,
) -> ReplayReport:
    """Route every row of `data` with a fresh `strategy` per willingness to pay (see module docstring).

    `strategy` defaults to "contextual" with an embedder (every row has a prompt) and to "thompson"
    without. `options` go to the strategy (see `routing.strategies.registry.build_strategy`); `seed`
    seeds it.
    """
    if strategy is None:
        strategy = "contextual" if embedder is not None else "thompson"
    if not len(data):
        raise ValueError("no rows to replay")
    if warm_start is not None:
        try:
            warm_start = warm_start.with_models(data.models)
        except ValueError as error:
            raise ValueError(f"warm_start: {error}") from None
    if willingness_to_pay is None:
        levels: list[float | None] = [None]
    elif isinstance(willingness_to_pay, (int, float)):
        levels = [float(willingness_to_pay)]
    else:
        levels = [None if v is None else float(v) for v in willingness_to_pay] or [None]
    for level in levels:
        if level is not None and not level > 0:
            raise ValueError(f"willingness_to_pay must be > 0, got {level}")
    order = list(range(len(data)))
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(order)
    tasks = _tasks(data, None if embedder is None else embed_prompts(data, embedder))
    warm_tasks = None
    if warm_start is not None:
        warm_tasks = _tasks(warm_start, None if embedder is None else embed_prompts(warm_start, embedder))
    names = target_names(data.models)
    warm = partial(_warm_router, names, warm_start, warm_tasks, strategy, seed=seed, options=options)
    runs = [
        _run(data, order, tasks, router, level)
        for router, level in zip(_routers(names, levels, warm), levels, strict=True)
    ]
    models = {m: _result(data.correct[:, j], data.cost[:, j]) for j, m in enumerate(data.models)}
    curve: dict = {}
    if len(runs) > 1:
        router_points = [(r.total_cost, r.accuracy) for r in runs]
        model_points = [(r.total_cost, r.accuracy) for r in models.values()]
        costs = [c for c, _ in router_points + model_points]
        cost_range = (min(costs), max(costs))
        curve = {
            "aiq": aiq(router_points, cost_range),
            "zero_router_aiq": aiq(model_points, cost_range),
            "aiq_cost_range": cost_range,
        }
    return ReplayReport(
        strategy=strategy,
        rows=len(data),
        warm_start_rows=len(warm_start) if warm_start is not None else 0,
        skipped_rows=len(data.skipped),
        shuffle_seed=shuffle_seed,
        seed=seed,
        runs=runs,
        models=models,
        oracle=oracle(data),
        **curve,
    )
