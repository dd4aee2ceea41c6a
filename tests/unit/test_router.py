"""The Router and the first scorer: default order, scoring, eligibility, exploration, propensity."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from routing import (
    Capability,
    NoEligibleTargetError,
    Outcome,
    Router,
    Target,
    Task,
    UnknownTargetError,
    WeightedScore,
    WeightedScoreConfig,
)


def targets(*names: str) -> list[Target]:
    return [Target(name=n) for n in names]


def feed(router: Router, target: str, successes: int, failures: int, latency: float, task_type="qa") -> None:
    for i in range(successes + failures):
        router.observe(Outcome(target=target, task_type=task_type, success=i < successes, duration_ms=latency))


def test_default_order_until_every_target_has_min_samples() -> None:
    router = Router(targets("a", "b"), WeightedScore(WeightedScoreConfig(min_samples=10)))
    feed(router, "a", 0, 10, 100)  # a is terrible
    feed(router, "b", 9, 0, 100)  # b is great but one short of the minimum
    decision = router.choose(Task(task_type="qa", payload="x"))
    assert decision.pick == "a"
    assert "default order" in decision.reason
    feed(router, "b", 1, 0, 100)
    assert router.choose(Task(task_type="qa", payload="x")).pick == "b"


def test_score_is_success_times_point_seven_plus_relative_speed_times_point_three() -> None:
    router = Router(targets("fast", "slow"), WeightedScore(WeightedScoreConfig(min_samples=4)))
    feed(router, "fast", 2, 2, 100)  # success .5, fastest -> speed 1
    feed(router, "slow", 4, 0, 400)  # success 1, speed 100/400
    decision = router.choose(Task(task_type="qa", payload="x"))
    scores = {c.target: c.score for c in decision.candidates}
    assert scores["fast"] == pytest.approx(0.5 * 0.7 + 1.0 * 0.3)
    assert scores["slow"] == pytest.approx(1.0 * 0.7 + 0.25 * 0.3)
    assert decision.pick == "slow" and decision.fallback_order == ["slow", "fast"]
    assert decision.probability == 1.0


def test_statistics_are_per_task_type() -> None:
    router = Router(targets("a", "b"), WeightedScore(WeightedScoreConfig(min_samples=2)))
    feed(router, "a", 0, 2, 10, task_type="code")
    feed(router, "b", 2, 0, 10, task_type="code")
    assert router.choose(Task(task_type="code", payload="x")).pick == "b"
    assert router.choose(Task(task_type="chat", payload="x")).pick == "a"


def test_exploration_logs_true_propensities() -> None:
    strategy = WeightedScore(WeightedScoreConfig(min_samples=1, explore_rate=0.3), seed=3)
    router = Router(targets("a", "b", "c"), strategy)
    picks = [router.choose(Task(task_type="qa", payload="x")) for _ in range(3000)]
    share_b = sum(d.pick == "b" for d in picks) / len(picks)
    assert share_b == pytest.approx(0.1, abs=0.03)
    assert {round(d.probability, 6) for d in picks} == {round(0.7 + 0.1, 6), 0.1}
    assert all(d.probability == pytest.approx(0.8) for d in picks if d.pick == "a")


def test_required_capabilities_filter_targets() -> None:
    router = Router([Target(name="chat"), Target(name="agents", capabilities={Capability.MULTI_AGENT})])
    task = Task(task_type="qa", payload="x", required_capabilities={Capability.MULTI_AGENT})
    assert [c.target for c in router.choose(task).candidates] == ["agents"]
    task = Task(task_type="qa", payload="x", required_capabilities={Capability.DEPLOY_FLOWS})
    with pytest.raises(NoEligibleTargetError, match="can_deploy_flows"):
        router.choose(task)


def test_unavailable_targets_are_skipped_and_named_when_none_is_left() -> None:
    down = {"a"}
    router = Router(targets("a", "b"), available=lambda name: name not in down)
    assert router.choose(Task(task_type="qa", payload="x")).pick == "b"
    down.add("b")
    with pytest.raises(NoEligibleTargetError, match="unavailable \\(a, b\\)"):
        router.choose(Task(task_type="qa", payload="x"))


def test_unknown_target_outcome_names_known_targets() -> None:
    router = Router(targets("a", "b"))
    with pytest.raises(UnknownTargetError, match="unknown target 'zzz'; known targets: a, b"):
        router.observe(Outcome(target="zzz", task_type="qa", success=True, duration_ms=1))


def test_router_rejects_empty_and_duplicate_targets() -> None:
    with pytest.raises(ValueError, match="at least one target"):
        Router([])
    with pytest.raises(ValueError, match="duplicate target names: a"):
        Router(targets("a", "b", "a"))


@pytest.mark.parametrize(
    ("fields", "field_name"),
    [
        ({"task_type": "", "payload": "x"}, "task_type"),
        ({"task_type": "   ", "payload": "x"}, "task_type"),
        ({"task_type": "qa", "payload": ""}, "payload"),
        ({"task_type": "qa", "payload": "x", "category": "astrology"}, "category"),
        ({"task_type": "qa", "payload": "x", "required_capabilities": ["fly"]}, "required_capabilities"),
        ({"task_type": "qa", "payload": "x", "priority": 1}, "priority"),
    ],
)
def test_invalid_task_names_the_field(fields: dict, field_name: str) -> None:
    with pytest.raises(ValidationError) as info:
        Task(**fields)
    assert field_name in str(info.value)


def test_invalid_target_and_scorer_config_name_the_field() -> None:
    with pytest.raises(ValidationError, match="name"):
        Target(name="has space")
    with pytest.raises(ValidationError, match="input_per_1k_tokens"):
        Target(name="t", price={"input_per_1k_tokens": -1})
    with pytest.raises(ValidationError, match="must be 1"):
        WeightedScoreConfig(success_weight=0.9, speed_weight=0.3)
    with pytest.raises(ValidationError, match="min_samples"):
        WeightedScoreConfig(min_samples=0)
