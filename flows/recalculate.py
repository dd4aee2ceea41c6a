"""`recalculate-stats`: executions -> per-target, per-task-type statistics, published for routers.

Deployed twice from prefect.yaml: hourly and incremental (only targets with new executions since
their last computation), weekly and full. It ingests the spool first so the statistics include every
outcome recorded so far, recomputes (blocks/store/stats.py), republishes the state file when anything
changed (blocks/store/snapshots.py), ships it to the store's `published_url` when one is set (where
routers on other machines read it, blocks/store/remote_state.py) with the live policies if their copy
there differs (a policy change whose shipping failed), attaches a table of target scores,
and renames its run after what it did ("recalculate-stats full: 12 targets, 40k executions").
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from pydantic import BaseModel

from blocks.store import utc_naive
from blocks.store.experiments import LIVE_FILE, live_path
from blocks.store.remote_spool import display_url
from blocks.store.remote_state import ship_published, shipped_copy_matches, shipped_state_exists
from blocks.store.reports import target_scores
from blocks.store.snapshots import publish as publish_state
from blocks.store.snapshots import published_path
from blocks.store.stats import recalculate
from flows.labels import label_current_run
from flows.maintenance import store_block


class RecalculationReport(BaseModel):
    mode: str
    targets: list[str]
    removed: list[str]
    executions: int
    task_types: list[str]
    published: str | None = None
    shipped: str | None = None
    shipped_live: str | None = None

    @property
    def title(self) -> str:
        if not (self.targets or self.removed):
            return f"recalculate-stats {self.mode}: no new executions"
        removed = f", {len(self.removed)} removed" if self.removed else ""
        targets = f"{len(self.targets)} target{'' if len(self.targets) == 1 else 's'}"
        return f"recalculate-stats {self.mode}: {targets}, {compact(self.executions)} executions{removed}"


def compact(count: int) -> str:
    """12 -> '12', 40_000 -> '40k', 1_250_000 -> '1.2M'."""
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if count >= size:
            return f"{count / size:.1f}".removesuffix(".0") + suffix
    return str(count)


@flow(name="recalculate-stats", persist_result=False)
def recalculate_stats(
    full: bool = False, store: str | None = None, publish: bool = True
) -> RecalculationReport:
    """Recompute statistics for every target (`full`) or only for targets with new executions."""
    logger = get_run_logger()
    block = store_block(store)
    ingested = block.ingest(seal=False)
    if ingested.executions:
        logger.info("ingested %d spooled executions first", ingested.executions)
    with block.connect() as con:
        result = recalculate(con, utc_naive(), full=full)
    report = RecalculationReport(
        mode="full" if full else "incremental",
        targets=list(result.targets),
        removed=list(result.removed),
        executions=result.executions,
        task_types=list(result.task_types),
    )
    if publish and (result.changed or not published_path(block).exists()):
        publication = publish_state(block, reason=report.title)
        report.published = str(publication.path)
        logger.info("published %d statistics entries to %s", publication.stats_entries, publication.path)
    url = block.remote_published_url
    if publish and url and published_path(block).exists() and (report.published or not shipped_state_exists(url)):
        report.shipped = display_url(ship_published(published_path(block), url))
        logger.info("shipped the published state to %s", report.shipped)
    live = live_path(block)
    if publish and url and live.exists() and not shipped_copy_matches(live, url, LIVE_FILE.name):
        report.shipped_live = display_url(ship_published(live, url, name=LIVE_FILE.name))
        logger.info("shipped the live policies to %s (the copy there differed)", report.shipped_live)
    _score_table(block, result.task_types)
    label_current_run(report.title)
    logger.info(report.title)
    return report


def _score_table(block, task_types) -> None:
    rows = target_scores(block, task_types)
    if rows:
        create_table_artifact(
            rows, key="target-scores", description="Recomputed statistics per target and task type"
        )
