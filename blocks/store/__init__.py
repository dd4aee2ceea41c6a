"""Storage: the DuckDB store block and the spool that keeps routed calls off its file lock.

All SQL lives here, one module per concern: store (block, ingestion), migrations, stats (target
statistics), summaries (rebuilt tables, retention), snapshots (publication), budgets, objectives,
learning (Q-table, sessions), queue (deferred tasks), alerts (health checks), capabilities
(benchmark runs), and the read-only history (CLI, gateway) and reports (flows' tables for people).
"""

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
