"""Feedback rows: a user's rating or acceptance of a routed task's answer, tied to the attempt judged.

Feedback names the task (the id the gateway returned); it is stored against the task's winning
attempt (else its last one), so experiments and aggregates can join it to executions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blocks.store.store import utc_naive
from routing.errors import UnknownNameError
from routing.feedback import Feedback
from routing.models import new_id

if TYPE_CHECKING:
    from blocks.store.store import Store


def judged_attempt(store: Store, task_id: str) -> dict[str, Any]:
    """The attempt feedback on `task_id` is about: its successful attempt, else its last one."""
    rows = store.query(
        """SELECT execution_id, target, success, quality_score, task_type FROM executions WHERE task_id = ?
           ORDER BY success DESC, attempt DESC LIMIT 1""",
        [task_id],
    )
    if not rows:
        recent = store.query("SELECT task_id FROM executions GROUP BY task_id ORDER BY max(timestamp) DESC LIMIT 5")
        raise UnknownNameError("routed task", task_id, [r["task_id"] for r in recent],
                               "the newest shown; a task routed moments ago may still be in a running gateway's spool")
    return rows[0]


def record_feedback(store: Store, feedback: Feedback) -> dict[str, Any]:
    """Store `feedback` against the task's judged attempt; returns the row with that attempt's figures."""
    attempt = judged_attempt(store, feedback.task_id)
    row = {
        "feedback_id": new_id(),
        "execution_id": attempt["execution_id"],
        "task_id": feedback.task_id,
        "timestamp": utc_naive(),
        "acceptance": feedback.accepted,
        "rating": feedback.rating,
        "verdict": feedback.verdict,
        "comment": feedback.comment,
    }
    with store.connect() as con:
        con.execute(f"INSERT INTO feedback ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
    return {**row, "target": attempt["target"], "success": attempt["success"],
            "quality_score": attempt["quality_score"], "task_type": attempt["task_type"]}  # fmt: skip


def feedback_for(store: Store, task_id: str) -> list[dict[str, Any]]:
    return store.query(
        "SELECT feedback_id, execution_id, task_id, timestamp, acceptance, rating, verdict, comment "
        "FROM feedback WHERE task_id = ? ORDER BY timestamp",
        [task_id],
    )
