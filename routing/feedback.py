"""A user's word on a routed answer, and how learners take it in.

Feedback arrives after the attempt was learned from, so it corrects the reward already given rather
than adding an outcome: with the seed's table (routing.strategies.qlearning.reward) an answer first
learned as a plain success (+0.2) that the user calls excellent is credited +1.0 in total, one called
poor -1.0. A 1-5 rating maps to a verdict (5 excellent, 4 good, 3 fair, 1-2 poor); without a rating,
accepted means good and rejected means poor.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from routing.strategies.base import Strategy, walk
from routing.strategies.qlearning import Feedback as Verdict

VERDICT_BY_RATING: dict[int, Verdict] = {5: "excellent", 4: "good", 3: "fair", 2: "poor", 1: "poor"}


class Feedback(BaseModel):
    """What a user said about the answer to one routed task (named by the id the gateway returned)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_id: str = Field(min_length=1, max_length=200)
    rating: int | None = Field(default=None, ge=1, le=5, description="1 (poor) to 5 (excellent).")
    accepted: bool | None = Field(default=None, description="Did the user keep the answer?")
    comment: str | None = Field(default=None, max_length=4000)

    @model_validator(mode="after")
    def _says_something(self) -> Feedback:
        if self.rating is None and self.accepted is None:
            raise ValueError("feedback needs a rating (1-5) or accepted (true/false)")
        return self

    @property
    def verdict(self) -> Verdict:
        if self.rating is not None:
            return VERDICT_BY_RATING[self.rating]
        return "good" if self.accepted else "poor"


@runtime_checkable
class LearnsFromFeedback(Protocol):
    def feedback(self, task_id: str, target: str, success: bool, quality_score: float | None, verdict: Verdict) -> bool:
        """Correct what was learned from `task_id`'s attempt on `target`; False if it is not known."""
        ...


def apply_feedback(
    strategies: Iterable[Strategy], task_id: str, target: str, success: bool, quality_score: float | None, verdict: Verdict
) -> int:
    """Hand the feedback to every learner (composites' members included); how many took it in."""
    taken = 0
    for strategy in strategies:
        for member in walk(strategy):
            if isinstance(member, LearnsFromFeedback):
                taken += member.feedback(task_id, target, success, quality_score, verdict)
    return taken
