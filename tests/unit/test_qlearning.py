"""Q-learning: the reward table, the update rule, exact propensities, the stored table, the strategy."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from pydantic import ValidationError

from routing import Outcome, Router, Target, Task
from routing.strategies.qlearning import QLearner, QLearningConfig, QLearningStrategy, QTable, bucket, reward


@pytest.mark.parametrize(
    ("success", "quality", "feedback", "expected"),
    [
        # each row of the table
        (True, 90.0, None, 1.0),
        (True, None, "excellent", 1.0),
        (True, None, "good", 0.5),
        (True, None, None, 0.2),
        (True, 70.0, None, 0.2),
        (True, None, "fair", -0.3),
        (True, 50.0, None, -0.3),
        (True, None, "poor", -1.0),
        (False, None, None, -1.0),
        # overlaps: the first applicable rule wins, warnings before praise
        (False, 95.0, "excellent", -1.0),
        (True, 95.0, "poor", -1.0),
        (True, 95.0, "fair", -0.3),
        (True, 50.0, "excellent", -0.3),
        (True, 50.0, "good", -0.3),
        (True, 85.0, "good", 1.0),
        (True, 70.0, "good", 0.5),
        # the edges: exactly 60 and exactly 80 are neither low nor high
        (True, 60.0, None, 0.2),
        (True, 80.0, None, 0.2),
    ],
)
def test_reward_table_and_precedence(success, quality, feedback, expected) -> None:
    assert reward(success, quality, feedback) == expected


def test_reward_rejects_unknown_feedback_and_quality_out_of_range() -> None:
    with pytest.raises(ValueError, match="feedback must be one of"):
        reward(True, None, "great")
    with pytest.raises(ValueError, match=r"quality_score must be in \[0, 100\]"):
        reward(True, 120.0)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"learning_rate": 0}, "learning_rate"),
        ({"discount": 1.0}, "discount"),
        ({"epsilon": 1.5}, "epsilon"),
        ({"recent_window": 0}, "recent_window"),
        ({"token_edges": (2000, 500)}, "token_edges must be increasing"),
        ({"gamma": 0.5}, "gamma"),
    ],
)
def test_config_is_validated_naming_the_field(options, field) -> None:
    with pytest.raises(ValidationError, match=field):
        QLearningConfig(**options)


def test_defaults_are_the_documented_constants() -> None:
    config = QLearningConfig()
    assert (config.learning_rate, config.discount) == (0.1, 0.9)


def test_update_rule_with_bootstrap() -> None:
    learner = QLearner(QLearningConfig(learning_rate=0.1, discount=0.9))
    s, s2 = ("qa", "low", "low", "high"), ("qa", "low", "low", "medium")
    learner.table.set(s2, "b", 0.5)
    # Q(s, a) = 0 + 0.1 * (1 + 0.9 * max(Q(s2, a)=0, Q(s2, b)=0.5) - 0) = 0.145
    assert learner.learn(s, "a", 1.0, s2) == pytest.approx(0.145)
    # again: 0.145 + 0.1 * (1 + 0.45 - 0.145) = 0.2755
    assert learner.learn(s, "a", 1.0, s2) == pytest.approx(0.2755)
    assert learner.table.visits(s, "a") == 2
    # terminal: no bootstrap
    assert learner.learn(s, "b", -1.0) == pytest.approx(-0.1)


def test_policy_propensity_is_exact_epsilon_greedy() -> None:
    learner = QLearner(QLearningConfig(epsilon=0.2), seed=1)
    s = ("qa", "low", "low", "high")
    learner.table.set(s, "a", 0.3)
    learner.table.set(s, "b", 0.3)
    learner.table.set(s, "c", -0.5)
    policy = learner.policy(s, ["a", "b", "c"])
    assert policy == pytest.approx({"a": 0.2 / 3 + 0.4, "b": 0.2 / 3 + 0.4, "c": 0.2 / 3})
    draws = Counter(learner.select(s, ["a", "b", "c"]) for _ in range(20000))
    for action, p in policy.items():
        assert draws[action] / 20000 == pytest.approx(p, abs=0.015)


def test_state_buckets() -> None:
    assert [bucket(v, (0.33, 0.66)) for v in (None, 0.1, 0.33, 0.9)] == ["unknown", "low", "medium", "high"]
    learner = QLearner(QLearningConfig(recent_window=4))
    task = Task(task_type="qa", payload="x" * 4000, complexity=0.5)
    assert learner.state(task) == ("qa", "medium", "medium", "unknown")
    for success in (True, True, True, False):
        learner.record("qa", success)
    assert learner.state(task)[3] == "medium"  # 3 of the last 4: 0.75, between the 0.5 and 0.8 edges
    learner.record("qa", False)
    learner.record("qa", False)
    assert learner.state(task)[3] == "low"  # the window keeps the last 4: 2 of 4


def test_table_round_trips_through_rows() -> None:
    table = QTable()
    table.set(("qa", "low", "low", "high"), "a", 0.25)
    table.set(("qa", "low", "low", "high"), "a", 0.5)
    table.set(("code|x", "high", "unknown", "low"), "b", -0.3)
    rows = table.to_rows()
    assert {(r["action"], r["q_value"], r["visits"]) for r in rows} == {("a", 0.5, 2), ("b", -0.3, 1)}
    assert set(rows[0]) == {"state", "action", "q_value", "visits", "updated_at"}
    loaded = QTable.from_rows(rows)
    assert loaded.to_rows() == rows
    assert loaded.value(("code|x", "high", "unknown", "low"), "b") == -0.3


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            {
                "state": '["qa"]',
                "action": "a",
                "q_value": 0,
                "visits": 1,
                "updated_at": "2024-01-01T00:00:00Z",
            },
            "4 strings",
        ),
        (
            {
                "state": "not json",
                "action": "a",
                "q_value": 0,
                "visits": 1,
                "updated_at": "2024-01-01T00:00:00Z",
            },
            "row 0",
        ),
        (
            {
                "state": '["a","b","c","d"]',
                "action": "a",
                "q_value": 0,
                "visits": -1,
                "updated_at": "2024-01-01",
            },
            "visits",
        ),
        ({"state": '["a","b","c","d"]', "action": "a", "visits": 1, "updated_at": "2024-01-01"}, "q_value"),
    ],
)
def test_bad_rows_are_rejected_naming_the_row_and_field(row, message) -> None:
    with pytest.raises(ValueError, match=message):
        QTable.from_rows([row])


def targets(*names: str) -> list[Target]:
    return [Target(name=n) for n in names]


def test_strategy_learns_the_better_target_and_reports_exact_propensities() -> None:
    strategy = QLearningStrategy(["good", "bad"], seed=2, epsilon=0.1)
    router = Router(targets("good", "bad"), strategy)
    rng = random.Random(3)
    picks = []
    for _ in range(600):
        decision = router.choose(Task(task_type="qa", payload="hello"))
        state = strategy.learner.state(Task(task_type="qa", payload="hello"))
        assert decision.probability == pytest.approx(
            strategy.learner.policy(state, ["good", "bad"])[decision.pick]
        )
        success = rng.random() < (0.9 if decision.pick == "good" else 0.3)
        router.observe(Outcome(target=decision.pick, task_type="qa", success=success, duration_ms=1))
        picks.append(decision.pick)
    assert Counter(picks[-200:])["good"] / 200 > 0.85
    assert decision.reason.startswith("qlearning: drew")
    assert decision.candidates[0].target == "good"


def test_outcomes_are_credited_to_the_state_the_pick_was_made_in() -> None:
    strategy = QLearningStrategy(["a", "b"], seed=4, discount=0.0, epsilon=0.0)
    router = Router(targets("a", "b"), strategy)
    small = Task(task_type="qa", payload="short")
    large = Task(task_type="qa", payload="x" * 10_000)
    assert strategy.choose(small, [router.target("a")], router.book).pick == "a"
    assert strategy.choose(large, [router.target("b")], router.book).pick == "b"
    router.observe(Outcome(target="b", task_type="qa", success=True, duration_ms=1))
    router.observe(Outcome(target="a", task_type="qa", success=False, duration_ms=1))
    router.observe(Outcome(target="a", task_type="qa", success=True, duration_ms=1))  # nobody's: last state
    table = strategy.learner.table
    assert table.value(("qa", "unknown", "high", "unknown"), "b") == pytest.approx(0.1 * 0.2)
    assert table.value(("qa", "unknown", "low", "unknown"), "a") == pytest.approx(0.1 * -1.0)
    assert table.value(("qa", "unknown", "high", "unknown"), "a") == pytest.approx(0.1 * 0.2)


def test_willingness_to_pay_makes_the_reward_net_dollars() -> None:
    strategy = QLearningStrategy(["a"], discount=0.0, learning_rate=1.0, willingness_to_pay=0.5)
    strategy.observe(Outcome(target="a", task_type="qa", success=True, duration_ms=1, cost=0.1))
    assert strategy.learner.table.to_rows()[0]["q_value"] == pytest.approx(0.5 - 0.1)
    with pytest.raises(ValueError, match="willingness_to_pay must be > 0"):
        QLearningStrategy(["a"], willingness_to_pay=0)
