"""The store as a Prefect block: saved on a server, loaded by name, listed in the UI's catalogue.

Everything the store does lives in `Store` (store.py), which imports no Prefect; this module adds
only what makes it a block, so read-only commands on a local file never pay for importing Prefect.
"""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block

from blocks.meta import BLOCKS_DOCUMENTATION_URL, logo, restore_runtime_state, without_runtime_state
from blocks.store.store import Store


class DuckDBStore(Block, Store):
    """Outcomes, decisions, statistics and policies of the adaptive router, in one DuckDB file.

    The block never holds a database connection (each operation opens and closes its own); what it
    does hold is this process's spool writer, an open segment file under an exclusive lock. `close()`,
    or leaving a `with` block, seals that segment so any ingester may take it; the store stays usable
    and opens a new segment on the next record. A pickled store carries its settings only.

    Attributes:
        database: Path of the DuckDB file; default $ADAPTIVE_ROUTER_DB, else .adaptive-router/router.duckdb.
        spool_directory: Where routed calls spool their outcomes; default 'spool' beside the file.
        lock_timeout_seconds: How long to wait for another process's lock on the file.
        fsync: fsync every spooled record, so it survives power loss too (slower).
        auto_migrate: Bring the schema to the latest version on first use (else run `db upgrade`).
        spool_url: fsspec URL where workers on other machines ship their sealed spool segments and the
            `ingest-outcomes` deployment fetches them; default $ADAPTIVE_ROUTER_SPOOL_URL, else none.
        published_url: fsspec URL the recalculation ships the published state to and routers read it
            from; default $ADAPTIVE_ROUTER_PUBLISHED_URL, else the file beside the store.
        budget_ledger: Where budgets are reserved so they hold across processes: 'prefect' (the Prefect
            server's global concurrency limits, across machines) or a shared SQLite file; default
            $ADAPTIVE_ROUTER_BUDGET_LEDGER, else each process on its own (blocks/store/ledger.py).

    Credentials and endpoints for the URLs come from the environment of each process, as fsspec's
    backends read them (AWS_*, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_*): never from the block.

    Example:
        Load a saved store, record through its spool, move the spool into the tables and read:
        ```python
        from blocks.store import DuckDBStore

        store = DuckDBStore.load("BLOCK_NAME")
        with store:
            store.record_execution(record)
        report = store.ingest()
        rows = store.query("SELECT target, count(*) AS n FROM executions GROUP BY target")
        ```
    """

    _block_type_name = "Adaptive Router DuckDB Store"
    _block_type_slug = "adaptive-router-duckdb-store"
    _logo_url = logo("duckdb")
    _documentation_url = BLOCKS_DOCUMENTATION_URL
    _description = "DuckDB file holding the router's executions, decisions, statistics and policies."

    def __getstate__(self) -> dict[str, Any]:
        """Settings only: the spool writer (an open, locked file) stays with this process."""
        return without_runtime_state(self, super().__getstate__())

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        restore_runtime_state(self)
