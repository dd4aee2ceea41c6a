"""Breaker states as seen from the outcome history, for processes that did not make the calls.

A router's breakers live in its process; `adaptive-router health` runs in another. Replaying each
target's recent attempts through a breaker, on the attempts' own timestamps, gives the state a
router with the same configuration would hold now.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from routing.calls.breaker import BreakerBoard, BreakerConfig, BreakerSnapshot
from routing.models import AttemptResult, ErrorType, ExecutionRecord


def replay_breakers(
    history: Iterable[ExecutionRecord], now: datetime, config: BreakerConfig | None = None
) -> dict[str, BreakerSnapshot]:
    """Each target's breaker after its attempts in `history` (any order), evaluated at `now`."""
    clock = {"t": 0.0}
    board = BreakerBoard(config, clock=lambda: clock["t"])
    for record in sorted(history, key=lambda r: r.timestamp):
        clock["t"] = record.timestamp.timestamp()
        # a wrong answer is a healthy target: the breaker sees the call, not the grade
        healthy = record.success or record.error_type == ErrorType.WRONG_ANSWER
        board.record(
            AttemptResult(
                target=record.target,
                ok=healthy,
                duration_ms=record.duration_ms,
                error_type=None if healthy else record.error_type or ErrorType.TARGET_ERROR,
                error_message=None if healthy else record.error_message,
            )
        )
    clock["t"] = now.timestamp()
    return board.snapshot()
