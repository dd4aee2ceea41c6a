"""Names and tags for the current flow run, so the UI's run list reads as a log of what happened."""

from __future__ import annotations

from collections.abc import Sequence

from prefect.client.orchestration import get_client
from prefect.runtime import flow_run


def label_current_run(name: str, tags: Sequence[str] | None = None) -> None:
    """Rename (and, given `tags`, tag) the current flow run; a no-op outside a flow run."""
    run_id = flow_run.get_id()
    if run_id is None:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(run_id, name=name, tags=list(tags) if tags is not None else None)
