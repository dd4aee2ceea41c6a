"""The Prefect deployment target against a real local Prefect API and a real runner.

The session's test harness provides the API; this module, run as a script, serves three small flows
(`flow.serve`-style, one runner process), which the target then runs by deployment name.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect import flow

from routing.models import Capability, ErrorType, Price, Task

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


@flow(name="router-echo", persist_result=True)
def echo(prompt: str, suffix: str = "") -> str:
    return f"echo: {prompt}{suffix}"


@flow(name="router-sleepy")
def sleepy(prompt: str, seconds: float = 120.0) -> str:
    time.sleep(seconds)
    return "woke up"


@flow(name="router-fails")
def fails(prompt: str) -> None:
    raise RuntimeError(f"cannot handle {prompt!r}")


def serve_test_flows() -> None:
    from prefect import serve

    serve(*(f.to_deployment(name="test") for f in (echo, sleepy, fails)), print_starting_message=False)


@pytest.fixture(scope="module")
def runner(prefect_harness) -> Iterator[None]:
    """The runner process serving the three deployments, polling for work every second."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    env = {
        **os.environ,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PYTHONPATH": str(REPO),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from tests.integration.test_targets_prefect import serve_test_flows as s; s()",
        ],
        cwd=REPO,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        with get_client(sync_client=True) as client:
            while True:
                try:
                    for name in ("router-echo/test", "router-sleepy/test", "router-fails/test"):
                        client.read_deployment_by_name(name)
                    break
                except Exception:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError("the runner did not register its deployments") from None
                    time.sleep(0.5)
        yield
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def target(deployment: str, **kwargs):
    from blocks.targets.prefect_deployment import PrefectDeploymentTarget

    return PrefectDeploymentTarget(
        target_name=f"deploy-{deployment.split('/')[0]}",
        deployment_name=deployment,
        poll_interval_seconds=0.2,
        **kwargs,
    )


def test_runs_a_deployment_to_completion(runner) -> None:
    echo_target = target(
        "router-echo/test", parameters={"suffix": "?"}, price=Price(per_second=0.5, per_call=0.01)
    )
    assert echo_target.capabilities >= {Capability.DEPLOY_FLOWS, Capability.CANCEL, Capability.CLOUD_UI}
    task = Task(task_type="workflow", payload="hello")

    result = asyncio.run(echo_target.execute(task))

    assert result.ok, result.error_message
    assert result.output == "echo: hello?"
    assert result.metadata["state_name"] == "Completed"
    assert result.metadata["run_seconds"] > 0
    assert result.cost == pytest.approx(0.01 + 0.5 * result.metadata["run_seconds"])
    status = asyncio.run(echo_target.status(task.id))
    assert status.state == "COMPLETED" and status.metadata["flow_run_id"] == result.metadata["flow_run_id"]


def test_task_parameters_override_the_payload(runner) -> None:
    task = Task(task_type="workflow", payload="ignored", metadata={"parameters": {"prompt": "explicit"}})
    result = asyncio.run(target("router-echo/test").execute(task))
    assert result.output == "echo: explicit"


def test_a_failing_flow_is_a_target_error_with_its_message(runner) -> None:
    result = asyncio.run(target("router-fails/test").execute(Task(task_type="workflow", payload="this")))
    assert not result.ok
    assert result.error_type is ErrorType.TARGET_ERROR
    assert "Failed" in result.error_message and "cannot handle 'this'" in result.error_message


def test_cancels_a_long_running_flow(runner) -> None:
    sleepy_target = target("router-sleepy/test")
    task = Task(task_type="workflow", payload="zzz")

    async def run_then_cancel():
        execution = asyncio.create_task(sleepy_target.execute(task))
        deadline = time.monotonic() + 60
        while (await sleepy_target.status(task.id)).state != "RUNNING":
            assert time.monotonic() < deadline, "the flow run never started"
            await asyncio.sleep(0.2)
        assert await sleepy_target.cancel(task.id)
        return await execution

    result = asyncio.run(run_then_cancel())
    assert not result.ok
    assert result.error_type is ErrorType.CLIENT_ERROR
    assert result.metadata["state_name"] == "Cancelled"
    assert not asyncio.run(sleepy_target.cancel(task.id))  # already final


def test_timeout_cancels_the_run(runner) -> None:
    quick = target("router-sleepy/test", timeout_seconds=1.0)
    task = Task(task_type="workflow", payload="zzz")
    result = asyncio.run(quick.execute(task))
    assert result.error_type is ErrorType.TIMEOUT
    status = asyncio.run(quick.status(result.metadata["flow_run_id"]))
    assert status.state in {"CANCELLING", "CANCELLED"}


def test_unknown_deployment_is_a_client_error_naming_it(prefect_harness) -> None:
    missing = target("no-such-flow/nowhere")
    result = asyncio.run(missing.execute(Task(task_type="workflow", payload="x")))
    assert result.error_type is ErrorType.CLIENT_ERROR
    assert "'no-such-flow/nowhere' not found" in result.error_message
    health = asyncio.run(missing.health())
    assert not health.healthy and "not found" in health.detail


def test_health_of_a_served_deployment(runner) -> None:
    report = asyncio.run(target("router-echo/test").health())
    assert report.healthy, report.detail
