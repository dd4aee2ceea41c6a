"""Storage: the DuckDB store block and the spool that keeps routed calls off its file lock.

All SQL lives here, one module per concern: store (the store without Prefect: ingestion, reads),
block (the same as a Prefect block), bulk (DuckDB loading a spooled segment itself), migrations, stats (target statistics), summaries (rebuilt
tables, retention), snapshots (publication), budgets, objectives, learning (Q-table, sessions), queue
(deferred tasks), alerts (health checks), capabilities (benchmark runs), and the read-only history
(CLI, gateway) and reports (flows' tables for people). `DuckDBStore` is imported on first use, so
reading a local store never imports Prefect.
"""

from typing import TYPE_CHECKING, Any

from blocks.store.integrity import StoreCheck, check_store
from blocks.store.store import IngestReport, RejectedLine, Store, utc_naive
from routing.errors import StoreCorruptError, StoreError, StoreLockedError

if TYPE_CHECKING:
    from blocks.store.block import DuckDBStore

__all__ = [
    "DuckDBStore",
    "IngestReport",
    "RejectedLine",
    "Store",
    "StoreCheck",
    "StoreCorruptError",
    "StoreError",
    "StoreLockedError",
    "check_store",
    "utc_naive",
]


def __getattr__(name: str) -> Any:
    if name == "DuckDBStore":
        from blocks.store.block import DuckDBStore

        globals()[name] = DuckDBStore
        return DuckDBStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
