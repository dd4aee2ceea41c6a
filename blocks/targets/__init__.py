"""Target blocks: one per kind of place work can be sent.

Importing them is light: agno, llama-index and openai load only when a target is first used.
"""

from blocks.targets.agno import AgnoMember, AgnoTarget
from blocks.targets.base import ExecutionStatus, HealthReport, TargetBlock
from blocks.targets.discovery import discover_targets
from blocks.targets.http import OpenAICompatibleTarget
from blocks.targets.llamaindex import LlamaIndexTarget
from blocks.targets.prefect_deployment import PrefectDeploymentTarget

__all__ = [
    "AgnoMember",
    "AgnoTarget",
    "ExecutionStatus",
    "HealthReport",
    "LlamaIndexTarget",
    "OpenAICompatibleTarget",
    "PrefectDeploymentTarget",
    "TargetBlock",
    "discover_targets",
]
