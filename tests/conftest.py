"""Shared fixtures: a real DuckDB file per test, the real fleet over loopback, Prefect's test harness."""

from __future__ import annotations

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("AGNO_TELEMETRY", "false")

from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def store(tmp_path: Path):
    from blocks.store import DuckDBStore

    return DuckDBStore(database=str(tmp_path / "router.duckdb"), lock_timeout_seconds=5)


@pytest.fixture(scope="session")
def fleet() -> Iterator:
    """The deterministic test fleet (no random errors or outages) on a free loopback port."""
    from blocks.fleet.config import load_fleet_config
    from blocks.fleet.launcher import FleetServer

    config = load_fleet_config(Path(__file__).parents[1] / "blocks" / "fleet" / "stable.toml")
    with FleetServer(config) as server:
        yield server


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect API for the whole session (~17 s to start), heartbeats off."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with (
        prefect_test_harness(server_startup_timeout=120),
        temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        yield


@pytest.fixture(scope="session")
def s3() -> Iterator[dict[str, str]]:
    """moto's S3 server on loopback with a `spool` bucket; yields the environment that points boto3 and
    s3fs at it (set in this process too, inherited by processes started after it). One per session:
    fsspec caches S3 filesystems with the endpoint they were made with. Tests use prefixes of their own."""
    moto_server = pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import boto3

    boto3.client("s3").create_bucket(Bucket="spool")
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.stop()
