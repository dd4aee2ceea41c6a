"""Storage: the DuckDB store block and the spool that keeps routed calls off its file lock."""

from blocks.store.integrity import StoreCheck, check_store
from blocks.store.store import DuckDBStore, IngestReport, RejectedLine, utc_naive
from routing.errors import StoreCorruptError, StoreError, StoreLockedError

__all__ = [
    "DuckDBStore",
    "IngestReport",
    "RejectedLine",
    "StoreCheck",
    "StoreCorruptError",
    "StoreError",
    "StoreLockedError",
    "check_store",
    "utc_naive",
]
