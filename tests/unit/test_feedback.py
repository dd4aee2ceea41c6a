"""Feedback: verdicts from ratings, the learner's reward correction, and the feedback table."""

from __future__ import annotations

import pytest

from blocks.store.feedback import feedback_for, record_feedback
from routing.errors import UnknownNameError
from routing.feedback import Feedback, apply_feedback
from routing.models import Target, Task
from routing.stats.book import StatsBook
from routing.strategies.ensemble import EnsembleStrategy
from routing.strategies.qlearning import QLearningStrategy, reward
from tests.experiments_support import route_synthetic

TARGETS = [Target(name="a"), Target(name="b")]


@pytest.mark.parametrize(("rating", "accepted", "verdict"), [
    (5, None, "excellent"), (4, False, "good"), (3, True, "fair"), (2, None, "poor"), (1, True, "poor"),
    (None, True, "good"), (None, False, "poor"),
])  # fmt: skip
def test_a_rating_decides_the_verdict_before_acceptance(rating, accepted, verdict) -> None:
    assert Feedback(task_id="t", rating=rating, accepted=accepted).verdict == verdict


def test_feedback_must_say_something_within_range() -> None:
    with pytest.raises(ValueError, match="rating .1-5. or accepted"):
        Feedback(task_id="t")
    with pytest.raises(ValueError, match="less than or equal to 5"):
        Feedback(task_id="t", rating=6)


def _chosen(strategy: QLearningStrategy) -> tuple[Task, str]:
    task = Task(task_type="qa", payload="What is 2 + 2?")
    choice = strategy.choose(task, TARGETS, StatsBook())
    return task, choice.pick


@pytest.mark.parametrize("verdict", ["excellent", "good", "fair", "poor"])
def test_feedback_moves_q_by_the_difference_it_makes_to_the_seed_reward(verdict) -> None:
    strategy = QLearningStrategy(["a", "b"], seed=1, epsilon=0.0)
    task, pick = _chosen(strategy)
    state = strategy._chosen[task.id]
    from routing.models import Outcome

    strategy.observe(Outcome(target=pick, task_type="qa", success=True, duration_ms=5, quality_score=70))
    before, visits = strategy.learner.table.value(state, pick), strategy.learner.table.visits(state, pick)
    assert strategy.feedback(task.id, pick, True, 70, verdict)
    change = strategy.learner.config.learning_rate * (reward(True, 70, verdict) - reward(True, 70))
    assert strategy.learner.table.value(state, pick) == pytest.approx(before + change)
    assert strategy.learner.table.visits(state, pick) == visits  # a correction, not another outcome
    assert (change > 0) == (verdict in ("excellent", "good"))


def test_feedback_is_declined_for_unknown_tasks_and_dollar_rewards() -> None:
    strategy = QLearningStrategy(["a", "b"], seed=1)
    assert not strategy.feedback("never-chosen", "a", True, None, "poor")
    priced = QLearningStrategy(["a", "b"], seed=1, willingness_to_pay=0.01)
    task, pick = _chosen(priced)
    assert not priced.feedback(task.id, pick, True, None, "poor")


def test_apply_feedback_reaches_the_learners_inside_an_ensemble() -> None:
    ensemble = EnsembleStrategy.default(["a", "b"], seed=2)
    learners = [m for m in ensemble.members.values() if isinstance(m, QLearningStrategy)]
    assert learners, "the default ensemble has a Q-learning member"
    task = Task(task_type="qa", payload="Hello")
    ensemble.choose(task, TARGETS, StatsBook())
    assert apply_feedback([ensemble], task.id, "a", True, None, "excellent") == len(learners)


def test_feedback_is_stored_against_the_winning_attempt(store) -> None:
    route_synthetic(store, [], 5)
    attempts = store.query("SELECT task_id, execution_id, target, success FROM executions ORDER BY timestamp")
    task_id = attempts[0]["task_id"]
    row = record_feedback(store, Feedback(task_id=task_id, rating=4, comment="fine"))
    assert (row["execution_id"], row["target"], row["verdict"]) == (attempts[0]["execution_id"], attempts[0]["target"], "good")
    assert [(r["rating"], r["verdict"], r["comment"], r["acceptance"]) for r in feedback_for(store, task_id)] == [(4, "good", "fine", None)]
    with pytest.raises(UnknownNameError, match="unknown routed task 'nope'; known routed tasks: .*" + attempts[-1]["task_id"]):
        record_feedback(store, Feedback(task_id="nope", accepted=True))
