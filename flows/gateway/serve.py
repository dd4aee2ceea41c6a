"""Serving the gateway: the `gateway` flow run lives as long as the server, so every request's task
runs show up under it in the UI. `GatewayServer` runs that flow on a background thread (tests,
benchmarks, `up`'s process uses the flow directly).

With no saved runtime of the name asked for, the gateway starts the local fleet and serves the local
runtime over it (as the demo does), so a fresh clone works with no keys.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Self

import httpx
import uvicorn
from prefect import flow, get_run_logger

from flows.gateway.app import create_app
from flows.gateway.auth import admin_token, check_bind
from flows.gateway.service import Gateway
from flows.route import DEFAULT_RUNTIME
from flows.runtime import get_runtime
from routing.errors import UnknownNameError

DEFAULT_PORT = 8800
INGEST_SECONDS = 15.0  # how often the gateway moves its spooled records into the store

class _Server(uvicorn.Server):
    """Uvicorn that keeps a stop signal to itself: after a graceful shutdown on SIGTERM or Ctrl-C it does
    not raise the signal again, so the gateway's flow run ends Completed instead of Crashed."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()


_servers: dict[int, uvicorn.Server] = {}
logger = logging.getLogger("adaptive_router")


@contextlib.contextmanager
def _runtime_or_local(name: str, store_path: str | None) -> Iterator[str]:
    """`name` if it resolves, else the local fleet runtime registered under that name for the duration."""
    try:
        get_runtime(name)
        yield name
        return
    except UnknownNameError:
        pass
    from blocks.store import DuckDBStore
    from flows.local import local_runtime

    with local_runtime(DuckDBStore(database=store_path), name=name):
        yield name


def _ingest_periodically(gateway: Gateway, stop: threading.Event) -> None:
    from blocks.store import StoreError

    while not stop.wait(INGEST_SECONDS):
        try:
            gateway.runtime().store.ingest()
        except StoreError as exc:
            logger.warning("gateway records stay spooled for now: %s", exc)


@flow(name="gateway", flow_run_name="gateway on {host}:{port}", persist_result=False, log_prints=False)
def gateway(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    runtime: str = DEFAULT_RUNTIME,
    subflow_per_request: bool = False,
    admin_token_secret: str | None = None,
    database: str | None = None,
) -> None:
    """Serve the OpenAI-compatible gateway and the operator API until stopped; each request's attempts
    are task runs of this flow run (or, with `subflow_per_request`, routed-call subflow runs)."""
    token = admin_token(admin_token_secret)
    check_bind(host, token)
    with _runtime_or_local(runtime, database) as name:
        service = Gateway(name, subflow_per_request)
        config = uvicorn.Config(create_app(service, token), host=host, port=port, log_level="warning",
                                access_log=False, lifespan="off")  # fmt: skip
        server = _Server(config)
        _servers[port] = server
        stop = threading.Event()
        ingester = threading.Thread(target=_ingest_periodically, args=(service, stop), daemon=True)
        ingester.start()
        get_run_logger().info("gateway for runtime %r on http://%s:%d/v1", name, host, port)
        try:
            server.run()
        finally:
            stop.set()
            _servers.pop(port, None)
            service.runtime().store.ingest()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class GatewayServer:
    """The `gateway` flow on a background thread, ready when `start()` returns; `stop()` ends it."""

    def __init__(self, runtime: str = DEFAULT_RUNTIME, host: str = "127.0.0.1", port: int = 0,
                 subflow_per_request: bool = False, timeout_seconds: float = 120.0) -> None:  # fmt: skip
        self.runtime, self.host = runtime, host
        self.port = port or free_port(host)
        self.subflow_per_request = subflow_per_request
        self.timeout_seconds = timeout_seconds
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        try:
            gateway(self.host, self.port, self.runtime, self.subflow_per_request)
        except BaseException as exc:  # noqa: BLE001 - reported by start()/stop()
            self._error = exc

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name="gateway", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.timeout_seconds
        while time.monotonic() < deadline:
            if self._error is not None:
                raise RuntimeError(f"the gateway did not start: {self._error}") from self._error
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.root_url + "/health", timeout=1.0).status_code == 200:
                    return self
            time.sleep(0.1)
        raise TimeoutError(f"the gateway did not answer on {self.root_url} within {self.timeout_seconds:g} s")

    def stop(self) -> None:
        server = _servers.get(self.port)
        if server is not None:
            server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
