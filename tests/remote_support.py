"""Routers on 'another machine' and a network that hangs, for the tests of published URLs (tests import
this module)."""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

from blocks.store import DuckDBStore
from routing.models import ExecutionRecord


def remote_router(tmp_path: Path, url: str):
    """A router on 'another machine': its own empty store, the published documents only at `url`."""
    from blocks.fleet.config import STABLE_FLEET_PATH, load_fleet_config
    from blocks.fleet.targets import fleet_targets
    from flows.runtime import RoutingRuntime
    from routing.strategies.statistical import StatisticalScore

    targets = fleet_targets(load_fleet_config(STABLE_FLEET_PATH), "http://127.0.0.1:9")[:2]
    strategy = StatisticalScore()
    elsewhere = DuckDBStore(database=str(tmp_path / "elsewhere" / "router.duckdb"), published_url=url)
    return RoutingRuntime.build(targets, elsewhere, strategy), strategy, [t.target_name for t in targets]


def outcomes(names: list[str], task_type: str, n: int = 200) -> list[ExecutionRecord]:
    """The second target succeeds 90 % of the time, the first 50 %: a significant difference."""
    return [
        ExecutionRecord(task_id=f"{task_type}-{name}-{i}", task_type=task_type, target=name,
                        success=i % 10 < (9 if k else 5), duration_ms=10.0 + i % 7)
        for k, name in enumerate(names) for i in range(n)
    ]  # fmt: skip


class HeldConnections:
    """A loopback server that accepts connections and leaves them unanswered until `release` is set,
    then relays each to `upstream` (moto's S3 server): an endpoint that hangs, then recovers.

    `accepted` is set once a client connected, `answered` once a byte went back to a client."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").rsplit(":", 1)
        self.upstream = (host, int(port))
        self.accepted, self.release, self.answered = threading.Event(), threading.Event(), threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def storage_options(self) -> dict:
        """s3fs options for a client that reaches moto only through this server."""
        return {"client_kwargs": {"endpoint_url": self.endpoint}, "key": "testing", "secret": "testing"}

    def close(self) -> None:
        self.release.set()
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:  # closed
                return
            self.accepted.set()
            threading.Thread(target=self._hold_then_relay, args=(client,), daemon=True).start()

    def _hold_then_relay(self, client: socket.socket) -> None:
        self.release.wait()
        upstream = socket.create_connection(self.upstream)
        threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
        self._pipe(upstream, client, True)

    def _pipe(self, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        try:
            while data := source.recv(65536):
                if answers:
                    self.answered.set()
                sink.sendall(data)
        except OSError:  # the other direction closed both ends
            return
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
