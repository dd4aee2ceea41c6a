"""The content-aware strategy on synthetic topics: it learns who is good at what, explores the unknown."""

from __future__ import annotations

import random

import numpy as np
import pytest

from routing import Category, Outcome, Router, Target, Task
from routing.context.embedding import EMBEDDING_KEY
from routing.strategies.contextual import ContextualConfig, ContextualThompson
from routing.strategies.registry import build_strategy

TARGETS = ("expert", "generalist")
SUCCESS = {"expert": {"a": 0.9, "b": 0.15}, "generalist": {"a": 0.55, "b": 0.55}}


def topic_vectors(seed: int = 0, dimensions: int = 384) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = {t: rng.standard_normal(dimensions) for t in ("a", "b", "c")}
    return {t: c / np.linalg.norm(c) for t, c in centres.items()}


def task(topic: str, centres, rng: np.random.Generator, category: Category = Category.GENERAL) -> Task:
    vector = centres[topic] + 0.3 * rng.standard_normal(len(centres[topic])) / np.sqrt(len(centres[topic]))
    return Task(task_type="qa", category=category, payload=f"about {topic}", metadata={EMBEDDING_KEY: vector.tolist()})


def outcome(target: str, t: Task, success: bool, cost: float = 0.001) -> Outcome:
    return Outcome(target=target, task_type=t.task_type, category=t.category, success=success,
                   duration_ms=1.0, cost=cost, embedding=tuple(t.metadata[EMBEDDING_KEY]))


def run(router: Router, topics: list[str], centres, seed: int) -> list[tuple[str, str]]:
    rng, coin = np.random.default_rng(seed), random.Random(seed)
    picks = []
    for topic in topics:
        t = task(topic, centres, rng)
        pick = router.choose(t).pick
        router.observe(outcome(pick, t, coin.random() < SUCCESS[pick][topic]))
        picks.append((topic, pick))
    return picks


@pytest.mark.parametrize("seed", [1, 2])
def test_a_target_good_on_one_topic_only_is_learned_for_that_topic(seed: int) -> None:
    centres = topic_vectors(seed)
    router = Router([Target(name=n) for n in TARGETS], build_strategy("contextual", TARGETS, seed=seed))
    topics = ["a", "b"] * 200
    picks = run(router, topics, centres, seed)
    late = picks[-100:]
    on_a = [p for t, p in late if t == "a"]
    on_b = [p for t, p in late if t == "b"]
    assert on_a.count("expert") / len(on_a) >= 0.8
    assert on_b.count("generalist") / len(on_b) >= 0.8


def test_a_new_topic_and_category_start_exploring() -> None:
    centres = topic_vectors(3)
    strategy = ContextualThompson(TARGETS, seed=3)
    router = Router([Target(name=n) for n in TARGETS], strategy)
    run(router, ["a", "b"] * 200, centres, 3)  # overall the two targets are about as good
    rng = np.random.default_rng(4)
    familiar = router.choose(task("a", centres, rng))
    fresh = router.choose(task("c", centres, rng, category=Category.MATH))
    old, new = ({c.target: c.details["uncertainty"] for c in d.candidates} for d in (familiar, fresh))
    assert familiar.pick == "expert" and familiar.probability > 0.9
    assert new["expert"] > 2 * old["expert"]
    # The unknown topic is explored: over many draws, both targets get picked.
    picks = {router.choose(task("c", centres, rng, category=Category.MATH)).pick for _ in range(40)}
    assert picks == set(TARGETS)


def test_willingness_to_pay_trades_success_for_cost() -> None:
    centres = topic_vectors(5)
    rng, coin = np.random.default_rng(5), random.Random(5)
    price = {"dear": 0.05, "cheap": 0.001}
    rate = {"dear": 0.9, "cheap": 0.8}

    def share_of_dear(L: float) -> float:
        strategy = ContextualThompson(price, seed=5, config=ContextualConfig(willingness_to_pay=L))
        router = Router([Target(name=n) for n in price], strategy)
        picks = []
        for _ in range(300):
            t = task("a", centres, rng)
            pick = router.choose(t).pick
            router.observe(outcome(pick, t, coin.random() < rate[pick], cost=price[pick]))
            picks.append(pick)
        return picks[-100:].count("dear") / 100

    # L * 0.1 against 0.049 more per call: the dear target pays only above L = 0.49.
    assert share_of_dear(0.05) <= 0.1
    assert share_of_dear(20.0) >= 0.8


def test_tasks_without_embeddings_route_on_type_and_category() -> None:
    strategy = ContextualThompson(TARGETS, seed=0)
    t = Task(task_type="qa", payload="no vector")
    choice = strategy.choose(t, [Target(name=n) for n in TARGETS], Router([Target(name="x")]).book)
    assert choice.pick in TARGETS and "no embedding" in choice.reason
    strategy.observe(Outcome(target="expert", task_type="qa", success=True, duration_ms=1.0))
    assert strategy.n[strategy.index["expert"]] == 1


def test_a_target_that_degrades_is_left_within_a_few_hundred_calls() -> None:
    centres = topic_vectors(7)
    rng, coin = np.random.default_rng(7), random.Random(7)
    rate = {"a": 0.9, "b": 0.7}
    router = Router([Target(name=n) for n in rate], ContextualThompson(rate, seed=7))
    picks = []
    for i in range(700):
        if i == 400:
            rate["a"] = 0.1  # the provider degrades
        t = task("a", centres, rng)
        pick = router.choose(t).pick
        router.observe(outcome(pick, t, coin.random() < rate[pick]))
        picks.append(pick)
    assert picks[300:400].count("a") >= 80
    assert picks[-100:].count("b") >= 80


def strategy_bucket(task_type: str) -> int:
    strategy = ContextualThompson(seed=0)
    return int(np.flatnonzero(strategy.features(None, task_type, "general")[strategy.content : -1])[0])


def _observe_rate(strategy: ContextualThompson, target: str, task_type: str, rate: float, n: int) -> None:
    for i in range(n):
        strategy.observe(Outcome(target=target, task_type=task_type, success=(i % 100) < rate * 100,
                                 duration_ms=1.0))


def test_a_new_task_type_starts_from_the_shift_the_other_targets_show_there() -> None:
    assert strategy_bucket("easy") != strategy_bucket("hard")
    means = {}
    for pool in (5.0, 1e12):  # pooled, and in effect not
        strategy = ContextualThompson(("a", "b", "c"), seed=0, config=ContextualConfig(pool_weight=pool))
        for name in ("a", "b", "c"):
            _observe_rate(strategy, name, "easy", 0.9, 300)
        for name in ("a", "b"):
            _observe_rate(strategy, name, "hard", 0.4, 300)  # the new eval is harder for both
        mean, _, _ = strategy.posteriors(Task(task_type="hard", payload="x"), ["a", "c"])
        means[pool] = mean
    # c was never tried on "hard": pooled, it starts near a and b's level there; unpooled, at its old rate.
    assert means[5.0][1] < 0.65 and means[1e12][1] > 0.8
    assert means[5.0][0] == pytest.approx(means[1e12][0], abs=0.05)  # a's own record barely moves


def test_a_target_with_a_long_record_explores_less() -> None:
    strategy = ContextualThompson(("old", "new"), seed=0)
    _observe_rate(strategy, "old", "qa", 0.8, 900)
    _observe_rate(strategy, "new", "qa", 0.8, 10)
    task = Task(task_type="qa", payload="x")
    _, narrowed, _ = strategy.posteriors(task, ["old", "new"])
    strategy.config = strategy.config.model_copy(update={"experience": None})
    _, full, _ = strategy.posteriors(task, ["old", "new"])
    assert narrowed / full == pytest.approx([max(0.25, (100 / 1000) ** 0.5), (100 / 110) ** 0.5])
