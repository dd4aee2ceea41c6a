"""Every block class of the package, imported: the module Prefect loads as this collection.

Importing a block class registers it with Prefect, which `Block.load("adaptive-router-duckdb-store/...")`
and the server's block catalogue need; `blocks` itself imports them only on first use, so that
reading a local store never imports Prefect.
"""

from blocks.settings import RouterSettings
from blocks.store.block import DuckDBStore
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
