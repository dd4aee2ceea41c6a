"""Target blocks: one per kind of place work can be sent."""

from blocks.targets.base import ExecutionStatus, HealthReport, TargetBlock
from blocks.targets.http import OpenAICompatibleTarget

__all__ = ["ExecutionStatus", "HealthReport", "OpenAICompatibleTarget", "TargetBlock"]
