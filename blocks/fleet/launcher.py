"""Run the fleet: in a background thread for tests and the demo, or in the foreground for the CLI."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx
import uvicorn

from blocks.fleet.config import DEFAULT_FLEET_PATH, FleetConfig, load_fleet_config
from blocks.fleet.server import create_app

_STARTUP_TIMEOUT_S = 10.0
# In-flight calls (a 'hang' outage above all) get this long to finish before shutdown cancels them.
_GRACEFUL_SHUTDOWN_S = 1


def _uvicorn_config(config: FleetConfig, **kwargs: object) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(config),
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
        **kwargs,
    )


def _bind(host: str, port: int) -> socket.socket:
    """A TCP socket for uvicorn to listen on. Its protocol must be IPPROTO_TCP, as asyncio only sets
    TCP_NODELAY on such sockets; without it every response stalls ~40 ms on Nagle plus delayed ACK."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


class FleetServer:
    """The fleet on loopback in a daemon thread, ready when `start()` (or `with`) returns.

    The socket is bound here rather than by uvicorn so that port=0 yields a free port known up front.
    """

    def __init__(self, config: FleetConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self.host = host
        self._requested_port = port
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("FleetServer is not running")
        return self._socket.getsockname()[1]

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, e.g. http://127.0.0.1:54321/v1."""
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("FleetServer is already running")
        self._socket = _bind(self.host, self._requested_port)
        self._server = uvicorn.Server(_uvicorn_config(self.config))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="fleet-server", daemon=True
        )
        self._thread.start()
        try:
            self._wait_until_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        url = f"http://{self.host}:{self.port}/health"
        while time.monotonic() < deadline:
            if self._thread is None or not self._thread.is_alive():
                raise RuntimeError("fleet server thread exited during startup; see the log above")
            if self._server is not None and self._server.started:
                try:
                    if httpx.get(url, timeout=1.0).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
            time.sleep(0.02)
        raise RuntimeError(f"fleet server did not answer {url} within {_STARTUP_TIMEOUT_S:.0f}s")

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=_STARTUP_TIMEOUT_S)
            if self._thread.is_alive():
                raise RuntimeError("fleet server thread did not stop")
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve(config_path: str | Path = DEFAULT_FLEET_PATH, host: str = "127.0.0.1", port: int = 8700) -> None:
    """Serve the fleet in the foreground until interrupted (the `adaptive-router fleet serve` command)."""
    config = load_fleet_config(config_path)
    uvicorn.Server(_uvicorn_config(config, host=host, port=port)).run()
