"""Storage: the DuckDB store block and the spool that keeps routed calls off its file lock."""

from blocks.store.store import DuckDBStore, IngestReport, RejectedLine, utc_naive
from routing.errors import StoreCorruptError, StoreError, StoreLockedError

__all__ = ["DuckDBStore", "IngestReport", "RejectedLine", "StoreCorruptError", "StoreError", "StoreLockedError", "utc_naive"]
