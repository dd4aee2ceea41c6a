"""Prefect blocks of the adaptive router: storage, targets and settings.

The classes are imported on first use (`from blocks import DuckDBStore` works as before), so code
that only reads a local store (blocks.store.Store) never imports Prefect. Prefect loads the
`prefect.collections` entry point, `blocks.catalog`, which imports them all, so
`Block.load("adaptive-router-duckdb-store/...")` works without importing the classes first, and
`prefect block register -m blocks` registers them all.
"""

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from blocks.catalog import (
        AgnoTarget,
        DuckDBStore,
        LlamaIndexTarget,
        OpenAICompatibleTarget,
        PrefectDeploymentTarget,
        RouterSettings,
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


def __getattr__(name: str) -> Any:
    if name in __all__:
        from blocks import catalog

        return getattr(catalog, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


if "prefect" in sys.modules:  # an install whose entry point still names `blocks`: register them now
    from blocks import catalog  # noqa: F401
