"""Errors of the routing domain; each names the thing at fault so the caller can act on it."""

from __future__ import annotations


class RoutingError(Exception):
    """Base of every error raised by routing/."""


class UnknownTargetError(RoutingError, KeyError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"unknown target {name!r}; known targets: {', '.join(known) or 'none'}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class NoEligibleTargetError(RoutingError):
    """No configured target can take the task (capabilities, constraints or availability)."""


class AllTargetsFailedError(RoutingError):
    """Every candidate was tried or skipped; `failures` maps each target to why."""

    def __init__(self, task_id: str, failures: dict[str, str]) -> None:
        self.task_id = task_id
        self.failures = failures
        lines = "; ".join(f"{target}: {why}" for target, why in failures.items())
        super().__init__(f"task {task_id}: every target failed ({lines})")
