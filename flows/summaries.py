"""`refresh-summaries`: rebuild summary tables that dashboards and the router read.

One flow, one parameter choosing the summary, so prefect.yaml can give each its own schedule: tier
performance per day every 5 minutes, pool performance per hour every 10, solution patterns hourly, and
spend per target and task type per day, ISO week and month every 5 minutes. Each rebuild is one
transaction (blocks/store/summaries.py).
"""

from __future__ import annotations

import time
from datetime import datetime

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from blocks.store import utc_naive
from blocks.store.summaries import Summary, rebuild
from flows.maintenance import store_block


def _run_name() -> str:
    return f"refresh-summaries {flow_run.parameters.get('summary') or 'all'}"


@flow(name="refresh-summaries", persist_result=False, flow_run_name=_run_name)
def refresh_summaries(
    summary: Summary | None = None,
    store: str | None = None,
    horizon_days: int = 90,
    as_of: datetime | None = None,
) -> dict[str, int]:
    """Rebuild `summary` (default: every summary); returns the rows each summary table now holds.

    `horizon_days` should equal the raw-retention age: older buckets have lost their raw rows.
    """
    if horizon_days < 1:
        raise ValueError(f"horizon_days must be at least 1, got {horizon_days}")
    logger = get_run_logger()
    block = store_block(store)
    now = utc_naive(as_of)
    rows = {}
    with block.connect() as con:
        for chosen in [summary] if summary else list(Summary):
            started = time.perf_counter()
            rows[chosen.value] = rebuild(con, chosen, now, horizon_days)
            logger.info(
                "%s: %d rows in %.0f ms",
                chosen.value,
                rows[chosen.value],
                (time.perf_counter() - started) * 1000,
            )
    return rows
