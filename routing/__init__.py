"""Pure routing domain: models, statistics, strategies and the Router. No Prefect, SQL or network."""

from routing.errors import AllTargetsFailedError, NoEligibleTargetError, RoutingError, UnknownTargetError
from routing.models import (
    AttemptResult,
    Candidate,
    Capability,
    Category,
    Constraints,
    Decision,
    ErrorType,
    ExecutionRecord,
    Expectation,
    Outcome,
    Price,
    Target,
    TargetKind,
    Task,
)
from routing.router import Router
from routing.stats.book import StatsBook, TargetStats
from routing.strategies.base import Choice, Strategy
from routing.strategies.weighted import WeightedScore, WeightedScoreConfig

__all__ = [
    "AllTargetsFailedError",
    "AttemptResult",
    "Candidate",
    "Capability",
    "Category",
    "Choice",
    "Constraints",
    "Decision",
    "ErrorType",
    "ExecutionRecord",
    "Expectation",
    "NoEligibleTargetError",
    "Outcome",
    "Price",
    "Router",
    "RoutingError",
    "StatsBook",
    "Strategy",
    "Target",
    "TargetKind",
    "TargetStats",
    "Task",
    "UnknownTargetError",
    "WeightedScore",
    "WeightedScoreConfig",
]
