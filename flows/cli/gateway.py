"""`adaptive-router gateway`: the OpenAI-compatible gateway, the operator API and /metrics over HTTP."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.common import DatabaseOption, console, describe_failure, fail, open_store, quiet_prefect


def gateway(
    host: Annotated[str, typer.Option(help="Address to bind; beyond loopback an admin token is required.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8800,
    runtime: Annotated[str, typer.Option(help="Saved runtime (settings block) to serve; none saved: the local fleet.")] = "default",
    subflow_per_request: Annotated[bool, typer.Option("--subflow-per-request", help="Give each request its own routed-call flow run (~330 ms more a request) instead of task runs in the gateway's flow run.")] = False,
    admin_token_secret: Annotated[str | None, typer.Option(help="Prefect Secret block holding the admin token (else $ADAPTIVE_ROUTER_ADMIN_TOKEN).")] = None,
    database: DatabaseOption = None,
) -> None:
    """Serve the router as an OpenAI-compatible API (/v1), with the operator API (/api/v1), feedback and /metrics."""
    from flows.gateway.auth import TOKEN_ENV, admin_token, check_bind
    from routing.errors import RoutingError

    if admin_token_secret is None:  # the Secret block needs Prefect: checked when the flow starts
        try:
            check_bind(host, admin_token())
        except RoutingError as exc:
            fail(exc)
    log = open_store(database).path.parent / "logs" / "gateway.log"
    quiet_prefect(log)
    console.print(f"gateway at http://{host}:{port}/v1 (runtime {runtime!r}); operator API at /api/v1, metrics at /metrics",
                  highlight=False)  # fmt: skip
    console.print(f"admin routes: {'token required' if admin_token_secret or admin_token() else 'open on loopback (set ' + TOKEN_ENV + ' to require a token)'}; log: {log}",
                  highlight=False)  # fmt: skip
    from flows.gateway.serve import gateway as serve

    try:
        serve(host, port, runtime, subflow_per_request, admin_token_secret, database)
    except RoutingError as exc:
        fail(exc)
    except Exception as exc:  # noqa: BLE001 - one line on the console, the traceback in the log
        fail(describe_failure(exc, log))
