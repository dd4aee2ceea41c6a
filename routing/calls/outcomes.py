"""Turning an adapter's report into the record the store keeps and the router learns from."""

from __future__ import annotations

from routing.calls.grading import grade, passes
from routing.context.embedding import task_embedding
from routing.models import AttemptResult, Decision, ErrorType, ExecutionRecord, Target, Task


def build_record(
    task: Task,
    decision: Decision,
    target: Target,
    result: AttemptResult,
    attempt: int,
    cost_estimate: float | None = None,
    weight: float = 1.0,
) -> ExecutionRecord:
    """One executions row (standing for `weight` attempts when sampled). A call that answered wrongly
    (graded under the task's expectation) fails."""
    quality = grade(result.output, task.expected) if result.ok and task.expected else None
    success = result.ok and (quality is None or passes(quality))
    error_type, error_message = result.error_type, result.error_message
    if result.ok and not success:
        error_type = ErrorType.WRONG_ANSWER
        error_message = f"quality {quality:.0f} below the passing mark"
    pick = next((c for c in decision.candidates if c.target == target.name), None)
    embedding = task_embedding(task.metadata)
    return ExecutionRecord(
        task_id=task.id,
        decision_id=decision.id,
        attempt=attempt,
        task_type=task.task_type,
        category=task.category,
        session_id=task.session_id,
        description=task.payload[:200],
        repo=task.repo,
        file_count=task.file_count,
        estimated_tokens=task.estimated_tokens,
        target=target.name,
        model_tier=target.tier,
        pool_type=target.kind.value,
        strategy=decision.strategy,
        routing_confidence=decision.probability if target.name == decision.pick else None,
        complexity=task.complexity,
        success=success,
        duration_ms=result.duration_ms,
        quality_score=quality,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        cost_estimate=cost_estimate,
        actual_cost=result.cost,
        error_type=error_type,
        error_message=error_message,
        solution_summary=(result.output or "")[:200] or None,
        embedding=embedding.tolist() if embedding is not None else None,
        metadata={"score": pick.score} if pick else {},
        weight=weight,
    )
