"""When this process may emit Prefect events without side effects of its own.

Only inside a Prefect run or with an API configured: elsewhere `emit_event` would start an ephemeral
server (tens of seconds) in the middle of a routed call.
"""

from __future__ import annotations


def events_reachable() -> bool:
    """True inside a flow or task run, or when PREFECT_API_URL names a server."""
    from prefect.context import FlowRunContext, TaskRunContext
    from prefect.settings import PREFECT_API_URL

    return bool(FlowRunContext.get() or TaskRunContext.get() or PREFECT_API_URL.value())
