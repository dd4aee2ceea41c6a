"""The published state: its JSON round trip, its validation, and how routers' strategies adopt it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from routing.evaluation.capability import CapabilityTable
from routing.models import Category, Outcome, Target, Task
from routing.published import BanditPrior, PublishedState, apply_published
from routing.router import Router
from routing.stats.snapshot import StatsEntry, StatsSnapshot
from routing.strategies.adaptive import AdaptiveStrategy
from routing.strategies.bandits.adapter import BanditStrategy, task_context
from routing.strategies.bandits.learners import GaussianThompsonSampling, ThompsonSampling
from routing.strategies.ensemble import EnsembleStrategy
from routing.strategies.statistical import StatisticalScore

WHEN = datetime(2025, 3, 2, 3, 0, tzinfo=UTC)
TARGETS = [Target(name="a"), Target(name="b")]


def entry(target: str, n: int, successes: int, latency: float) -> StatsEntry:
    return StatsEntry(
        target=target, task_type="qa", n=n, successes=successes, p50_latency_ms=latency,
        p95_latency_ms=latency * 2, p99_latency_ms=latency * 3, mean_latency_ms=latency * 1.1,
        latency_sd_ms=latency / 5, mean_cost=0.002, updated_at=WHEN,
    )  # fmt: skip


def state(**overrides) -> PublishedState:
    fields = {
        "created_at": WHEN,
        "snapshot": StatsSnapshot(
            entries=(entry("a", 400, 200, 50.0), entry("b", 400, 360, 80.0)), created_at=WHEN
        ),
        "priors": (
            BanditPrior(target="a", task_type="qa", category=Category.MATH, successes=50, failures=150),
            BanditPrior(target="b", task_type="qa", category=Category.MATH, successes=1800, failures=200),
        ),
        "capabilities": {"a": {"math": 40.0}, "b": {"math": 90.0, "coding": 70.0}},
    }
    return PublishedState(**{**fields, **overrides})


def test_json_round_trip_keeps_everything() -> None:
    original = state()
    again = PublishedState.model_validate_json(original.model_dump_json())
    assert again == original
    assert again.snapshot.get("b", "qa") == original.snapshot.get("b", "qa")
    assert again.capability_table() == CapabilityTable(
        {("a", Category.MATH): 40.0, ("b", Category.MATH): 90.0, ("b", Category.CODING): 70.0}
    )


def test_invalid_states_name_the_field_at_fault() -> None:
    prior = BanditPrior(target="a", task_type="qa", category=Category.MATH, successes=1, failures=1)
    with pytest.raises(ValidationError, match="priors: duplicate prior for target 'a', task type 'qa'"):
        state(priors=(prior, prior))
    with pytest.raises(ValidationError, match="invalid capability table"):
        state(capabilities={"a": {"cooking": 50.0}})
    with pytest.raises(ValidationError, match="capabilities"):
        state(capabilities={"a": {"math": 150.0}})
    with pytest.raises(ValidationError, match="format"):
        PublishedState.model_validate({"format": 2})


@pytest.mark.parametrize(
    ("successes", "failures", "cap", "expected"),
    [(30, 10, 100, (30, 10)), (1800, 200, 100, (90, 10)), (1, 2, 1, (0, 1)), (0, 500, 100, (0, 100))],
)
def test_capping_keeps_the_success_rate(
    successes: int, failures: int, cap: int, expected: tuple[int, int]
) -> None:
    prior = BanditPrior(
        target="a", task_type="qa", category=Category.MATH, successes=successes, failures=failures
    )
    assert prior.capped(cap) == expected


def test_statistical_strategy_adopts_the_snapshot_and_reorders_on_it() -> None:
    strategy = StatisticalScore()
    router = Router(TARGETS, strategy)
    task = Task(task_type="qa", category=Category.MATH, payload="?")
    assert router.choose(task).pick == "a"  # default order without statistics
    lines = apply_published(state(), router)
    assert strategy.snapshot == state().snapshot
    assert lines == ["statistical: statistics of 2 (target, task type) pairs, 1 task types re-ranked"]
    assert router.choose(task).pick == "b"  # 90% against 50% over 400 calls each is significant


def test_thompson_is_seeded_with_capped_priors_per_context() -> None:
    strategy = BanditStrategy(ThompsonSampling, ["a", "b"], seed=1)
    lines = apply_published(state(), Router(TARGETS, strategy), prior_cap=100)
    assert lines == ["thompson: seeded with 2 priors (200 calls, at most 100 each)"]
    context = task_context("qa", Category.MATH)
    # Seeds: a 25/100 (50 of 200, capped), b 90/100 (1800 of 2000). The context's view adds the global
    # counts (the same seeds) weighted down to prior_strength = 10 calls; the Beta(1, 1) prior on top.
    assert strategy.bandit.counts(context) == pytest.approx({"a": 110, "b": 110})
    assert strategy.bandit.means(context) == pytest.approx(
        {"a": (1 + 25 + 2.5) / 112, "b": (1 + 90 + 9) / 112}
    )
    decision = Router(TARGETS, strategy).choose(Task(task_type="qa", category=Category.MATH, payload="?"))
    assert decision.probability == pytest.approx(strategy.bandit.probabilities(context)[decision.pick])
    assert strategy.bandit.probabilities(context)["b"] > 0.999


def test_a_bandit_that_already_learned_or_forgets_is_not_seeded_twice() -> None:
    strategy = BanditStrategy(ThompsonSampling, ["a", "b"], seed=1)
    router = Router(TARGETS, strategy)
    apply_published(state(), router)
    before = strategy.bandit.counts()
    assert apply_published(state(), router) == [
        "thompson: not seeded (it has already learned from live calls)"
    ]
    assert strategy.bandit.counts() == before
    forgetting = BanditStrategy(ThompsonSampling, ["a", "b"], discount=0.99)
    assert "not seeded (it forgets" in apply_published(state(), Router(TARGETS, forgetting))[0]
    assert not any(forgetting.bandit.counts().values())
    quality = BanditStrategy(GaussianThompsonSampling, ["a", "b"])
    assert "reward is not success" in apply_published(state(), Router(TARGETS, quality))[0]


def test_learning_after_seeding_overturns_the_prior() -> None:
    """Seeds count for at most `prior_cap` calls: a few hundred live failures of b reverse the order."""
    strategy = BanditStrategy(ThompsonSampling, ["a", "b"], seed=3)
    apply_published(state(), Router(TARGETS, strategy), prior_cap=50)
    context = task_context("qa", Category.MATH)
    for _ in range(300):
        strategy.observe(
            Outcome(target="b", task_type="qa", category=Category.MATH, success=False, duration_ms=1)
        )
    means = strategy.bandit.means(context)
    assert means["b"] < means["a"]


def test_adaptive_strategy_gets_the_capability_table_and_ensembles_pass_it_on() -> None:
    adaptive = AdaptiveStrategy(CapabilityTable())
    assert apply_published(state(), Router(TARGETS, adaptive)) == [
        "adaptive: capability scores of 3 (target, category) pairs"
    ]
    assert adaptive.capabilities.get("b", Category.CODING) == 70.0
    assert apply_published(state(capabilities={}), Router(TARGETS, AdaptiveStrategy(CapabilityTable()))) == [
        "adaptive: no capability scores published yet"
    ]
    ensemble = EnsembleStrategy.default(["a", "b"], seed=2)
    lines = apply_published(state(), Router(TARGETS, ensemble))
    assert lines == ["thompson: seeded with 2 priors (200 calls, at most 100 each)"]
    assert ensemble.members["bandit"].bandit.counts(task_context("qa", Category.MATH))["a"] > 0


def test_prior_cap_must_be_positive() -> None:
    with pytest.raises(ValueError, match="prior_cap must be at least 1, got 0"):
        apply_published(state(), Router(TARGETS), prior_cap=0)
