"""A real local Prefect stack for tests, as `adaptive-router up` starts it: server, worker, fleet, gateway."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from blocks.store import DuckDBStore
from flows.server import Stack, StackConfig, stop, up

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.5)
    return value


@contextmanager
def running_stack(root: Path) -> Iterator[tuple[Stack, StackConfig, DuckDBStore]]:
    """`up` on a fresh home under `root` (free ports, scheduler off, fast worker polling); `stop` after."""
    store = DuckDBStore(database=str(root / "data" / "router.duckdb"))
    env = {
        "PREFECT_HOME": str(root / "prefect"),
        "ADAPTIVE_ROUTER_DB": str(store.path),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    config = StackConfig(
        port=free_port(), fleet_port=free_port(), gateway_port=free_port(), home=root / "home", project=REPO,
        schedules=False, env=env,
    )
    try:
        yield up(config, echo=lambda line: None), config, store
    finally:
        stop(config.home)
