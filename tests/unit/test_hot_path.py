"""The decision hot path: deferred propensities, prepared Beta draws, rankings kept across outcomes and
decisions built without revalidation give the same answers as the plain computations."""

from __future__ import annotations

import copy
import multiprocessing
import pickle
import random
import uuid

import numpy as np
import pytest
from scipy import integrate, stats

from routing import Outcome, Router, Target, Task
from routing.models import Candidate, Decision, Deferred, RoutedResult, new_id
from routing.stats.book import StatsBook
from routing.strategies.bandits.adapter import BanditStrategy
from routing.strategies.bandits.learners import ThompsonSampling
from routing.strategies.bandits.posteriors import DRAWS, BetaPosteriors
from routing.strategies.weighted import WeightedScore, WeightedScoreConfig


def task(task_type: str = "qa") -> Task:
    return Task(task_type=task_type, payload="What is 2 + 2?")


def outcome(target: str, rng: random.Random, task_type: str = "qa", rate: float = 0.7) -> Outcome:
    return Outcome(target=target, task_type=task_type, success=rng.random() < rate,
                   duration_ms=rng.lognormvariate(5, 0.5), cost=0.001 * rng.random())


def quad_propensity(a: list[float], b: list[float], pick: int) -> float:
    """P(X_pick is the largest) for independent X_j ~ Beta(a_j, b_j), by scipy's adaptive quadrature."""
    def integrand(x: float) -> float:
        others = [stats.beta.cdf(x, a[j], b[j]) for j in range(len(a)) if j != pick]
        return stats.beta.pdf(x, a[pick], b[pick]) * np.prod(others)

    return integrate.quad(integrand, 0, 1, limit=200)[0]


def test_a_deferred_propensity_is_that_of_the_state_the_pick_was_drawn_in() -> None:
    """Read only after later outcomes changed the posteriors, the logged propensity is still the exact
    one of the state at the choice (scipy quadrature over the Beta posteriors of that moment)."""
    names = ["a", "b", "c"]
    router = Router([Target(name=n) for n in names], BanditStrategy(ThompsonSampling, names, seed=3))
    rng = random.Random(4)
    for i in range(30):
        router.observe(outcome(names[i % 3], rng, rate=0.4 + 0.2 * (i % 3)))
    bandit = router.strategy.bandit
    context = ("qa", "general")
    n, means = bandit.counts(context), bandit.means(context)
    a = [1 + means[x] * (n[x] + 2) - 1 for x in names]
    b = [2 + n[x] - a_x for x, a_x in zip(names, a)]
    decision = router.choose(task())
    assert "_deferred" in decision.__pydantic_private__ and decision.__pydantic_private__["_deferred"]
    for _ in range(5):
        router.observe(outcome(decision.pick, rng))
    expected = quad_propensity(a, b, names.index(decision.pick))
    assert decision.probability == pytest.approx(expected, abs=2e-3)


def test_deferred_and_eager_reads_log_identical_propensities() -> None:
    """Two routers with one seed: one reads every probability at once, the other only at the end."""
    names = [f"t{i}" for i in range(8)]
    routers = [Router([Target(name=n) for n in names], BanditStrategy(ThompsonSampling, names, seed=5))
               for _ in range(2)]
    logs: list[list[Decision]] = [[], []]
    for which, router in enumerate(routers):
        rng = random.Random(6)
        for _ in range(200):
            decision = router.choose(task())
            if which == 0:
                decision.probability  # noqa: B018 - read now
            logs[which].append(decision)
            router.observe(outcome(decision.pick, rng, rate=0.5 + 0.05 * names.index(decision.pick)))
    assert [d.pick for d in logs[0]] == [d.pick for d in logs[1]]
    assert [d.probability for d in logs[0]] == [d.probability for d in logs[1]]


def test_a_decision_with_a_deferred_probability_behaves_as_a_resolved_one() -> None:
    calls = []

    def compute() -> float:
        calls.append(1)
        return 0.25

    candidates = (Candidate("a", 1.0, 3, 0.5, 10.0, {"x": 1.0}), Candidate("b", 0.5))

    def fresh() -> Decision:
        return Decision.built(task_id="t1", task_type="qa", strategy="s", candidates=candidates, pick="a",
                              probability=Deferred(compute), reason="r")

    plain = Decision(task_id="t1", task_type="qa", strategy="s", candidates=candidates, pick="a",
                     probability=0.25, reason="r")
    assert fresh().model_dump()["probability"] == 0.25
    assert Decision.model_validate_json(fresh().model_dump_json()).probability == 0.25
    assert pickle.loads(pickle.dumps(fresh())).probability == 0.25
    assert copy.deepcopy(fresh()).probability == 0.25
    assert fresh().model_copy(update={"variant": "v"}).probability == 0.25
    nested = RoutedResult(task_id="t1", decision=fresh(), attempts=(), success=False)
    assert nested.model_dump(mode="json")["decision"]["probability"] == 0.25
    assert "probability=0.25" in repr(fresh())
    built = fresh()
    assert built.model_fields_set == plain.model_fields_set
    dumped, expected = built.model_dump(), plain.model_dump()
    for field in ("id", "timestamp"):
        dumped.pop(field), expected.pop(field)
    assert dumped == expected
    again = Decision.model_validate_json(built.model_dump_json())
    assert again == built
    assert len(calls) == 8  # once per decision (a copy shares it), however often it is read
    with pytest.raises(ValueError, match="probability"):
        Decision.built(task_id="t", task_type="qa", strategy="s", candidates=candidates, pick="a",
                       probability=1.5, reason="r")


def test_prepared_beta_draws_are_independent_draws_from_the_current_posteriors() -> None:
    """Kolmogorov-Smirnov against scipy's Beta for every arm, whether its parameters never change,
    change now and then, or all change at once; no correlation between arms or successive draws."""
    a, b = [1.0, 2.0, 5.0, 30.0, 0.5, 80.0], [1.0, 3.0, 2.0, 40.0, 0.7, 20.0]
    posteriors = BetaPosteriors(len(a)).refresh(a, b)
    generator = np.random.default_rng(9)
    draws = []
    for t in range(12_000):
        if t % 97 == 5:  # one arm moves away and back: its unread draws must be thrown away
            posteriors.refresh(a[:3] + [31.0] + a[4:], b)
            posteriors.sample(generator)
            posteriors.refresh(a, b)
        if t % (5 * DRAWS) == 7:  # every arm at once
            posteriors.refresh([x + 1 for x in a], [x + 1 for x in b])
            posteriors.sample(generator)
            posteriors.refresh(a, b)
        draws.append(posteriors.sample(generator))
    values = np.array(draws)
    for j in range(len(a)):
        assert stats.kstest(values[:, j], stats.beta(a[j], b[j]).cdf).pvalue > 1e-3
    correlations = np.corrcoef(values.T)[np.triu_indices(len(a), 1)]
    assert np.abs(correlations).max() < 0.05
    for j in range(len(a)):
        assert abs(np.corrcoef(values[1:, j], values[:-1, j])[0, 1]) < 0.05


def test_weighted_rankings_kept_across_outcomes_match_fresh_ones() -> None:
    """After every outcome (several task types, a book small enough to forget pairs), the kept ranking
    equals one a new WeightedScore builds from the same book."""
    names = [f"t{i}" for i in range(6)]
    config = WeightedScoreConfig(min_samples=3)
    book = StatsBook(max_entries=14)
    router = Router([Target(name=n) for n in names], WeightedScore(config), book=book)
    rng = random.Random(11)
    for i in range(400):
        task_type = rng.choice(["qa", "code", "math"])
        router.observe(outcome(rng.choice(names), rng, task_type=task_type))
        for kind in ("qa", "code"):
            kept = router.choose(task(kind))
            fresh = WeightedScore(config).choose(task(kind), list(router.targets.values()), book)
            assert kept.candidates == fresh.candidates and kept.pick == fresh.pick, i


def test_bandit_rankings_kept_across_outcomes_match_rebuilt_ones() -> None:
    names = [f"t{i}" for i in range(6)]
    strategy = BanditStrategy(ThompsonSampling, names, seed=12, willingness_to_pay=1.0)
    router = Router([Target(name=n) for n in names], strategy, book=StatsBook(max_entries=10))
    rng = random.Random(13)
    for i in range(300):
        router.observe(outcome(rng.choice(names), rng, task_type=rng.choice(["qa", "code"])))
        decision = router.choose(task("qa"))
        view = strategy.bandit._views[(("qa", "general"), tuple(names))]
        view.extra.pop("ranking")
        rebuilt = strategy.choose(task("qa"), list(router.targets.values()), router.book)
        assert decision.candidates == rebuilt.candidates, i


class _Lazy:
    """A strategy seen only through `choose` and `observe`, whose observe forgets the latest decision
    first: it learns exactly as the wrapped one, but nothing is brought up to date on arrival."""

    def __init__(self, strategy) -> None:
        self.strategy, self.name = strategy, strategy.name

    def choose(self, task, targets, book):
        return self.strategy.choose(task, targets, book)

    def observe(self, outcome) -> None:
        self.strategy._latest = None
        self.strategy.observe(outcome)


@pytest.mark.parametrize(("build", "kinds"), [
    (lambda names: BanditStrategy(ThompsonSampling, names, seed=21, willingness_to_pay=2.0), ["qa"]),
    (lambda names: WeightedScore(WeightedScoreConfig(min_samples=4), seed=21), ["qa", "qa", "qa", "code"]),
], ids=["thompson", "weighted"])
def test_work_done_as_an_outcome_arrives_changes_no_decision(build, kinds) -> None:
    """Outcomes bring the latest decision's view, draws and ranking up to date when they arrive; the
    decisions (picks, propensities, rankings) are exactly those of a router that does it all lazily on
    the next decision. Thompson's draws match one for one only within one context (across contexts
    the same draws come in another order; `test_bandit_rankings_kept_across_outcomes_match_rebuilt_ones`
    and the propensity tests cover those); the weighted ranking, across task types and categories."""
    names = [f"t{i}" for i in range(8)]
    targets = [Target(name=n) for n in names]
    warm = Router(targets, build(names), book=StatsBook(max_entries=20))
    lazy = Router(targets, _Lazy(build(names)), book=StatsBook(max_entries=20))
    rng = random.Random(22)
    for i in range(600):
        kind = rng.choice(kinds)
        code = len(kinds) > 1 and rng.random() < 0.2
        ask = Task(task_type=kind, payload="Write a Python function" if code else "What is 2 + 2?")
        ours, theirs = warm.choose(ask), lazy.choose(ask)
        assert (ours.pick, ours.candidates) == (theirs.pick, theirs.candidates), i
        assert ours.probability == theirs.probability, i
        result = outcome(ours.pick, rng, task_type=kind, rate=0.3 + 0.08 * names.index(ours.pick))
        result = result.model_copy(update={"category": ask.category})
        warm.observe(result)
        lazy.observe(result)


def test_an_outcome_after_a_run_of_decisions_in_its_context_leaves_the_next_one_nothing_to_redo() -> None:
    names = [f"t{i}" for i in range(5)]
    strategy = BanditStrategy(ThompsonSampling, names, seed=5)
    router = Router([Target(name=n) for n in names], strategy)
    rng = random.Random(6)
    router.choose(task())
    decision = router.choose(task())
    router.observe(outcome(decision.pick, rng))
    bandit = strategy.bandit
    view = bandit._views[(("qa", "general"), tuple(names))]
    assert view.stamp == bandit._clock  # re-pooled on arrival
    posteriors = view.memo["posteriors"]
    assert posteriors._ready and not posteriors._stale  # the next draws made
    assert view.extra["ranking"][2] == router.book.version  # ranked against the updated book

    router.choose(task("code"))  # a decision in another context ends the run: nothing is warmed
    router.observe(outcome(decision.pick, rng, task_type="code"))
    assert bandit._views[(("code", "general"), tuple(names))].stamp != bandit._clock


def test_a_column_of_draws_is_refilled_once_however_often_arms_change_before_it_is_read() -> None:
    """Two outcomes before a decision (a fallback, a wave): the rows that run out at the column are
    drawn once, the arms that changed get new draws, and the column read is from the latest posteriors."""
    posteriors = BetaPosteriors(4).refresh([2.0, 3.0, 4.0, 5.0], [5.0, 4.0, 3.0, 2.0])
    generator = np.random.default_rng(1)
    for _ in range(DRAWS):
        posteriors.sample(generator)
        if posteriors._due[posteriors._column]:  # the next column ends some rows
            break
    assert posteriors._due[posteriors._column]
    due = list(posteriors._due[posteriors._column])
    posteriors.prepare(generator)
    drawn = posteriors.draws.copy()
    changed = next(j for j in range(4) if j not in due)
    posteriors.refresh({changed: 30.0}, {changed: 1.0}, [changed]).prepare(generator)  # only it is redrawn
    unchanged = [j for j in range(4) if j != changed]
    assert np.array_equal(posteriors.draws[unchanged], drawn[unchanged])
    assert posteriors.sample(generator)[changed] > 0.7  # from Beta(30, 1), not its old posterior


def _child_id(queue) -> None:
    queue.put(new_id())


def test_ids_differ_in_a_forked_child() -> None:
    """Ids are version 4 UUIDs; a forked child must not repeat those its parent fetched ahead."""
    new_id()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_id, args=(queue,))
    child.start()
    theirs = queue.get(timeout=30)
    child.join(timeout=30)
    ours = {new_id() for _ in range(300)}
    assert theirs not in ours and len(ours) == 300
    assert all(len(i) == 32 and uuid.UUID(i).version == 4 and uuid.UUID(i).variant == uuid.RFC_4122
               for i in ours | {theirs})


def test_a_router_holding_unread_propensities_pickles_with_them_computed() -> None:
    names = ["a", "b", "c"]
    router = Router([Target(name=n) for n in names], BanditStrategy(ThompsonSampling, names, seed=7))
    rng = random.Random(8)
    for i in range(12):
        router.observe(outcome(names[i % 3], rng))
    decision = router.choose(task())
    copied = pickle.loads(pickle.dumps((router, decision)))
    assert copied[1].probability == decision.probability
    assert copied[0].choose(task()).probability >= 0.0
