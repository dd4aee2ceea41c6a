"""Storage: the DuckDB store block and the spool that keeps routed calls off its file lock."""

from blocks.store.store import (
    DuckDBStore,
    IngestReport,
    RejectedLine,
    StoreError,
    StoreLockedError,
    utc_naive,
)

__all__ = ["DuckDBStore", "IngestReport", "RejectedLine", "StoreError", "StoreLockedError", "utc_naive"]
