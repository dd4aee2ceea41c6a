"""Prefect blocks of the adaptive router: storage, targets and settings.

Declared as the `prefect.collections` entry point, so `Block.load("adaptive-router-duckdb-store/...")`
works without importing the classes first, and `prefect block register -m blocks` registers them all.
"""

from blocks.settings import RouterSettings
from blocks.store import DuckDBStore
from blocks.targets import (
    AgnoTarget,
    LlamaIndexTarget,
    OpenAICompatibleTarget,
    PrefectDeploymentTarget,
    TargetBlock,
)

__all__ = [
    "AgnoTarget",
    "DuckDBStore",
    "LlamaIndexTarget",
    "OpenAICompatibleTarget",
    "PrefectDeploymentTarget",
    "RouterSettings",
    "TargetBlock",
]
