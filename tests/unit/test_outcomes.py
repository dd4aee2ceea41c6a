"""Grading answers and turning attempts into executions rows."""

from __future__ import annotations

import pytest

from routing import AttemptResult, Decision, ErrorType, Expectation, Target, Task
from routing.calls.grading import grade
from routing.calls.outcomes import build_record


@pytest.mark.parametrize(
    ("output", "expected", "quality"),
    [
        ("The answer is 42.", Expectation(answer="42"), 100.0),
        ("The answer is 420.", Expectation(answer="42"), 0.0),
        ("Paris is the capital", Expectation(answer="paris", keywords=("capital", "france")), 75.0),
        ("def f(): return 1", Expectation(required=("def f(", "return")), 100.0),
        ("def g(): return 1", Expectation(required=("def f(", "return")), 0.0),
        ("short", Expectation(min_length=10), 50.0),
        ("", Expectation(), 0.0),
        ("anything", Expectation(), 100.0),
    ],
)
def test_grade(output: str, expected: Expectation, quality: float) -> None:
    assert grade(output, expected) == pytest.approx(quality)


def decision(task: Task) -> Decision:
    return Decision(task_id=task.id, task_type=task.task_type, strategy="weighted", candidates=(), pick="a",
                    probability=0.8, reason="test")


def test_wrong_answer_is_a_failed_execution() -> None:
    task = Task(task_type="math", payload="What is 2 + 2?", expected=Expectation(answer="4"))
    result = AttemptResult(target="a", ok=True, output="It is 5.", duration_ms=12, input_tokens=5,
                           output_tokens=3, cost=0.001)
    record = build_record(task, decision(task), Target(name="a", tier="small"), result, attempt=1)
    assert not record.success
    assert record.error_type == ErrorType.WRONG_ANSWER
    assert record.quality_score == 0.0
    assert record.actual_cost == 0.001 and record.model_tier == "small" and record.pool_type == "http"
    assert record.routing_confidence == 0.8


def test_failed_call_keeps_its_error_and_fallback_has_no_confidence() -> None:
    task = Task(task_type="qa", payload="hi")
    result = AttemptResult(target="b", ok=False, duration_ms=3, error_type=ErrorType.TIMEOUT, error_message="slow")
    record = build_record(task, decision(task), Target(name="b"), result, attempt=2)
    assert (record.success, record.error_type, record.error_message, record.attempt) == (False, "timeout", "slow", 2)
    assert record.routing_confidence is None and record.quality_score is None
