"""Keeping the store in shape: sweep the spool, enforce retention, drain the queue of deferred tasks.

`ingest-outcomes` moves spool segments that a crashed or interrupted run left behind into the tables
(`route-batch` ingests its own at the end), and the segments workers on other machines shipped to the
store's spool URL (blocks/store/remote_spool.py): the deployment's concurrency limit of 1 makes it the
single ingester. `apply-retention` deletes raw records and aggregates past
their age, and the Prefect budget ledger's limits of periods over (blocks/store/prefect_ledger.py). `drain-queue` routes queued tasks (blocks/store/queue.py, oldest first, `not_before` respected)
through `route-batch`: a task moves from `queued` to `routing` while it is routed, then to `done` or
`failed`, or back to `queued` while its budget is still spent.
"""

from __future__ import annotations

from contextlib import closing
from datetime import UTC, datetime

from prefect import flow, get_run_logger
from pydantic import BaseModel, ValidationError

from blocks.store import DuckDBStore, IngestReport, utc_naive
from blocks.store.ledger import prefect_ledger_options
from blocks.store.queue import claim_due, set_status, settle
from blocks.store.remote_spool import RemoteSpool, check_url, display_url, ingest_shipped
from blocks.store.summaries import RetentionPolicy
from blocks.store.summaries import apply_retention as delete_expired
from flows.labels import label_current_run
from flows.route import DEFAULT_RUNTIME, fast_subflows, route_batch
from flows.runtime import get_runtime
from routing.models import Task
from routing.validation import describe


def store_block(name: str | None) -> DuckDBStore:
    """The saved DuckDB store block `name`, or the local store ($ADAPTIVE_ROUTER_DB or the default file)."""
    return DuckDBStore.load(name) if name else DuckDBStore()


@flow(name="ingest-outcomes", persist_result=False, flow_run_name="ingest-outcomes: sweep the spool")
def ingest_outcomes(store: str | None = None, spool_url: str | None = None) -> IngestReport:
    """Ingest every claimable spool segment (sealed, or left open by a writer that has died), and
    every segment shipped to `spool_url` (default: the store's `spool_url`, else $ADAPTIVE_ROUTER_SPOOL_URL)."""
    logger = get_run_logger()
    block = store_block(store)
    url = check_url("spool_url", spool_url) if spool_url else block.remote_spool_url
    if url is None:
        report = block.ingest(seal=False)
    else:
        remote = RemoteSpool(url)
        logger.info("fetching segments shipped to %s", display_url(url))
        report = ingest_shipped(block, remote, seal=False)
    if report.rejected:
        logger.warning("%d malformed spool lines kept aside: %s", len(report.rejected), report.rejected[:3])
    logger.info(
        "%d segments: %d executions, %d decisions, %d duplicates skipped",
        report.segments, report.executions, report.decisions, report.duplicates,
    )  # fmt: skip
    return report


@flow(
    name="apply-retention", persist_result=False,
    flow_run_name="apply-retention: raw {raw_days} days, aggregates {aggregate_days} days",
)
def apply_retention(
    raw_days: int = 90, aggregate_days: int = 365, store: str | None = None, as_of: datetime | None = None
) -> dict[str, int]:
    """Delete raw records older than `raw_days` and aggregates older than `aggregate_days`."""
    policy = RetentionPolicy(raw_days=raw_days, aggregate_days=aggregate_days)
    block = store_block(store)
    with block.connect() as con:
        deleted = delete_expired(con, policy, utc_naive(as_of))
    location = block.budget_ledger_location
    if location is not None and (options := prefect_ledger_options(location)) is not None:
        from blocks.store.prefect_ledger import PrefectBudgetLedger

        now = utc_naive(as_of).replace(tzinfo=UTC)  # naive input is UTC, as for the store
        with closing(PrefectBudgetLedger([], **options)) as ledger:
            deleted["budget limits"] = len(ledger.prune(now))
    get_run_logger().info(
        "deleted %s", ", ".join(f"{n} from {t}" for t, n in deleted.items() if n) or "nothing"
    )
    return deleted


class DrainReport(BaseModel):
    claimed: int = 0
    done: int = 0
    failed: int = 0
    invalid: int = 0


@flow(name="drain-queue", persist_result=False, flow_run_name="drain-queue on {runtime}")
def drain_queue(runtime: str = DEFAULT_RUNTIME, limit: int = 100, concurrency: int = 8) -> DrainReport:
    """Route up to `limit` due queued tasks, oldest first, with `route-batch` on `runtime`."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    logger = get_run_logger()
    store = get_runtime(runtime).store
    claimed = claim_due(store, utc_naive(), limit)
    report = DrainReport(claimed=len(claimed))
    tasks, rows, outcomes = [], {}, {}
    for task_id, payload, _ in claimed:
        try:
            task = Task.model_validate_json(payload)
        except ValidationError as exc:
            outcomes[task_id] = ("failed", f"invalid task: {describe(exc, first_only=True)}")
            report.invalid += 1
            continue
        tasks.append(task)
        rows[task.id] = task_id
    try:
        with fast_subflows():
            results = route_batch(tasks, runtime=runtime, concurrency=concurrency) if tasks else []
    except BaseException:
        set_status(store, {row: ("queued", "requeued: the drain failed") for row in rows.values()})
        raise
    requeued = {}
    for result in results:
        row = rows[result.task_id]
        status, reason, until = settle(result)
        outcomes[row] = (status, reason)
        if until is not None:
            requeued[row] = until
    set_status(store, outcomes, requeued)
    report.done = sum(status == "done" for status, _ in outcomes.values())
    report.failed = len(outcomes) - report.done
    logger.info("drained %d queued tasks: %d done, %d failed", report.claimed, report.done, report.failed)
    label_current_run(f"drain-queue on {runtime}: {report.claimed} due, {report.done} done, {report.failed} failed")
    return report
