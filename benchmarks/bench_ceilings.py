"""Full-information ceilings of per-prompt routing on RouterBench: what each prompt feature can predict.

For each eval, every model's correctness is predicted from one feature set by 5-fold cross-validation
with EVERY model's outcome on the other 80% of the rows known (far more than an online router, which
sees one model's outcome per routed prompt). The router then picks argmax L * predicted - mean cost over
a dense grid of L. Its curve is scored like `adaptive-router replay`: AIQ against the zero router's
(the hull of the single models, same cost range) and the best accuracy, relative to the most accurate
model, of a point costing <= 30% of that model. Issue 14's aims are AIQ >= zero router + 0.01 and
>= 95% at <= 30%: a feature set whose ceiling misses them cannot meet them online either.

  eval mean        no prompt feature: each model's accuracy on the eval (a per-eval router)
  length           ridge on log characters and log words of the item
  minilm ridge     ridge regression on the 384-d MiniLM embedding (as in bench_embeddings)
  minilm logistic  logistic regression on the embedding (scikit-learn)
  minilm knn k     mean correctness of the k most cosine-similar training rows (k = 1 finds Winogrande's twin)
  tfidf ridge      ridge on TF-IDF character 2-5-grams of the item (scikit-learn)
  oracle           every model's true correctness (the per-prompt oracle)

    python benchmarks/bench_ceilings.py [--quick]

Embeddings are cached in $TMPDIR/adaptive-router-embeddings (keyed by the texts' hash; common.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import numpy as np
from common import ROUTERBENCH, DiskCachedEmbedder, report

from routing.evaluation.replay import (
    COST_AIM,
    NEAR_BEST_ACCURACY,
    ReplayData,
    aiq,
    load_routerbench,
    routerbench_question,
)

os.environ.setdefault("COLUMNS", "200")
LEVELS = np.geomspace(1e-5, 10.0, 120)
FOLDS = 5
Predictor = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (train rows, test rows, y) -> p


def embeddings(texts: list[str]) -> np.ndarray:
    from blocks.embeddings import MiniLMEmbedder

    return DiskCachedEmbedder(MiniLMEmbedder()).embed(texts)


def ridge(x: np.ndarray, alpha: float) -> Predictor:
    x = np.hstack([x, np.ones((len(x), 1))])

    def predict(train, test, y):
        a = x[train].T @ x[train] + alpha * np.eye(x.shape[1])
        return x[test] @ np.linalg.solve(a, x[train].T @ y[train])

    return predict


def knn(e: np.ndarray, k: int, prior_weight: float = 1.0) -> Predictor:
    def predict(train, test, y):
        similarity = e[test] @ e[train].T
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        mean = y[train].mean(axis=0)
        return (y[train][nearest].sum(axis=1) + prior_weight * mean) / (k + prior_weight)

    return predict


def logistic(e: np.ndarray) -> Predictor:
    from sklearn.linear_model import LogisticRegression

    def predict(train, test, y):
        out = np.empty((len(test), y.shape[1]))
        for j in range(y.shape[1]):
            if y[train, j].min() == y[train, j].max():
                out[:, j] = y[train, j][0]
            else:
                out[:, j] = LogisticRegression(C=1.0, max_iter=500).fit(e[train], y[train, j]).predict_proba(e[test])[:, 1]
        return out

    return predict


def tfidf(texts: list[str]) -> Predictor:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import Ridge

    def predict(train, test, y):
        vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True)
        x = vectorizer.fit_transform([texts[i] for i in train])
        model = Ridge(alpha=3.0).fit(x, y[train])
        return model.predict(vectorizer.transform([texts[i] for i in test]))

    return predict


def cross_validated(predict: Predictor, y: np.ndarray) -> np.ndarray:
    fold = np.random.default_rng(0).permutation(len(y)) % FOLDS
    out = np.zeros_like(y)
    for k in range(FOLDS):
        out[fold == k] = predict(np.flatnonzero(fold != k), np.flatnonzero(fold == k), y)
    return out


def curve(data: ReplayData, predicted: np.ndarray) -> list[tuple[float, float]]:
    """(total cost, accuracy) of argmax L * predicted - mean cost, for each L of the grid."""
    rows, mean_cost = np.arange(len(data)), data.cost.mean(axis=0)
    points = []
    for level in LEVELS:
        pick = (level * predicted - mean_cost).argmax(axis=1)
        points.append((float(data.cost[rows, pick].sum()), float(data.correct[rows, pick].mean())))
    return points


def score(name: str, feature: str, data: ReplayData, points: list[tuple[float, float]]) -> dict:
    models = [(float(data.cost[:, j].sum()), float(data.correct[:, j].mean())) for j in range(len(data.models))]
    best = max(models, key=lambda m: (m[1], -m[0]))
    cost_range = (min(c for c, _ in points + models), max(c for c, _ in points + models))
    router, zero = aiq(points, cost_range), aiq(models, cost_range)
    cheap = [q for c, q in points if c <= COST_AIM * best[0]]
    at_aim = max(cheap) / best[1] if cheap else 0.0
    return {
        "eval": name, "features": feature, "aiq": router, "zero_router_aiq": zero, "aiq_gain": router - zero,
        "best_acc_within_30pct_cost": at_aim,
        "meets_aim": "yes" if router - zero >= 0.01 and at_aim >= NEAR_BEST_ACCURACY else "no",
    }


def rows_for(name: str, data: ReplayData, quick: bool) -> list[dict]:
    texts = [routerbench_question(p) for p in data.prompts]
    e = embeddings(texts)
    lengths = np.log1p(np.array([[len(t), len(t.split())] for t in texts], dtype=float))
    lengths = (lengths - lengths.mean(axis=0)) / lengths.std(axis=0)
    y = data.correct
    features: dict[str, Predictor] = {
        "eval mean": lambda train, test, y: np.tile(y[train].mean(axis=0), (len(test), 1)),
        "length": ridge(lengths, 1.0),
        "minilm ridge": ridge(e.astype(np.float64), 10.0),
        "minilm knn 1": knn(e, 1),
        "minilm knn 5": knn(e, 5),
        "minilm knn 20": knn(e, 20),
        "minilm knn 50": knn(e, 50),
    }
    if not quick:
        features["minilm logistic"] = logistic(e)
        features["tfidf ridge"] = tfidf(texts)
    out = [score(name, feature, data, curve(data, cross_validated(fn, y))) for feature, fn in features.items()]
    out.append(score(name, "oracle", data, curve(data, y)))
    return out


def main(quick: bool) -> None:
    paths = sorted(ROUTERBENCH.glob("*.csv"))
    if not paths:
        print(f"skipped: no RouterBench data in {ROUTERBENCH}")
        return
    rows = []
    for path in paths:
        rows += rows_for(path.stem, load_routerbench(path), quick)
    report(
        "ceilings",
        "RouterBench: full-information ceilings of per-prompt features (5-fold CV, every model's outcome known)",
        rows,
        f"L grid: {len(LEVELS)} values from 1e-5 to 10; aim: aiq_gain >= 0.01 and >= 95% of the best model's "
        f"accuracy at <= 30% of its cost{'; quick: no logistic, no tf-idf' if quick else ''}",
    )


if __name__ == "__main__":
    main("--quick" in sys.argv)
