"""The scheduled flows deployed for real: `up` starts a local Prefect server and process worker.

From prefect.yaml on a fresh server (temporary PREFECT_HOME, a free port, scheduler off so only the
runs the test starts happen): `up` saves a working `default` runtime on the local fleet, so every
deployment that needs no input runs to Completed; the `recalculate` command triggers the deployment and
waits for it, and the published statistics change; a `adaptive-router.target.degraded` event makes the
automation defined in prefect.yaml start a recalculation, which the worker runs. `stop` ends every
process `up` started.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from deployments import FLOW_NAMES
from stack_support import REPO, running_stack, wait_for

from blocks.store import DuckDBStore
from blocks.store.snapshots import load_published, published_path
from flows.server import Stack, StackConfig, stop
from routing.models import ExecutionRecord

pytestmark = [pytest.mark.integration, pytest.mark.slow]



@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> Iterator[tuple[Stack, StackConfig, DuckDBStore]]:
    with running_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


def executions(target: str, n: int, rate: float, start: int = 0) -> list[ExecutionRecord]:
    now = datetime.now(UTC)
    return [
        ExecutionRecord(
            task_id=f"{target}-{i}",
            target=target,
            task_type="qa",
            success=i % 100 < rate * 100,
            duration_ms=20.0 + i % 7,
            actual_cost=0.001,
            timestamp=now - timedelta(seconds=i),
        )
        for i in range(start, start + n)
    ]


def spool(store: DuckDBStore, records: list[ExecutionRecord]) -> None:
    for record in records:
        store.record_execution(record)
    store.writer().close()


def published_n(store: DuckDBStore) -> dict[str, int]:
    state = load_published(published_path(store))
    return {} if state is None else {e.target: e.n for e in state.snapshot.entries}


def test_up_deploys_every_flow_of_prefect_yaml(deployed) -> None:
    import yaml

    stack, config, _ = deployed
    document = yaml.safe_load((REPO / "prefect.yaml").read_text())
    assert stack.deployments == sorted(
        f"{FLOW_NAMES[d['entrypoint']]}/{d['name']}" for d in document["deployments"]
    )
    with httpx.Client(base_url=stack.api_url, timeout=10) as client:
        automations = client.post("/automations/filter", json={}).raise_for_status().json()
        pool = client.get(f"/work_pools/{config.pool}").raise_for_status().json()
    assert pool["type"] == "process"
    assert any("adaptive-router.target.degraded" in json.dumps(a["trigger"]) for a in automations)
    assert stack.ui_url == f"http://127.0.0.1:{config.port}"


def test_recalculate_command_runs_the_deployment_and_publishes(deployed) -> None:
    stack, config, store = deployed
    spool(store, executions("a", 60, 0.9) + executions("b", 40, 0.5))
    env = {**os.environ, "PREFECT_API_URL": stack.api_url, "PREFECT_HOME": config.env["PREFECT_HOME"]}
    result = subprocess.run(
        [sys.executable, "-m", "flows.cli", "recalculate", "--timeout", "150"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=200, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "recalculate-stats incremental: 2 targets, 100 executions" in result.stdout
    assert "Completed" in result.stdout
    assert published_n(store) == {"a": 60, "b": 40}


def test_a_degraded_event_starts_a_recalculation_through_the_automation(deployed) -> None:
    stack, config, store = deployed
    spool(store, executions("a", 30, 0.2, start=1000))
    before = published_n(store)
    env = {**os.environ, "PREFECT_API_URL": stack.api_url, "PREFECT_HOME": config.env["PREFECT_HOME"]}
    subprocess.run(
        [sys.executable, "-m", "prefect", "event", "emit", "adaptive-router.target.degraded",
         "--resource-id", "adaptive-router.target.a", "--payload", '{"success_rate": 0.2}'],
        cwd=REPO, env=env, check=True, capture_output=True, timeout=60,
    )  # fmt: skip

    def automation_run() -> dict | None:
        with httpx.Client(base_url=stack.api_url, timeout=10) as client:
            runs = client.post("/flow_runs/filter", json={}).raise_for_status().json()
        return next((r for r in runs if (r.get("created_by") or {}).get("type") == "AUTOMATION"
                     and r["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")), None)  # fmt: skip

    run = wait_for(automation_run, 150, "the recalculation the automation starts")
    assert run["state_type"] == "COMPLETED"
    assert run["name"] == "recalculate-stats incremental: 1 target, 90 executions"
    assert published_n(store) == {**before, "a": before["a"] + 30}


# a task or tasks to route; the experiment to roll back
NEEDS_INPUT = {"routed-call/on-demand", "route-batch/batch-on-demand", "rollback-experiment/on-regression"}


def test_every_deployment_that_needs_no_input_completes_on_the_default_runtime(deployed) -> None:
    stack, config, _ = deployed
    env = {**os.environ, "PREFECT_API_URL": stack.api_url, "PREFECT_HOME": config.env["PREFECT_HOME"]}
    assert stack.fleet_pid is not None and len(stack.targets) >= 3
    models = httpx.get(f"{stack.gateway_url}/models", timeout=10).raise_for_status().json()
    assert {m["id"] for m in models["data"]} == {"router", *(slug.rsplit("/", 1)[-1] for slug in stack.targets)}
    with httpx.Client(base_url=stack.api_url, timeout=10) as client:
        settings = client.post("/block_documents/filter", json={}).raise_for_status().json()
    assert "default" in {b["name"] for b in settings if b["block_type"]["slug"] == "adaptive-router-settings"}
    names = [d for d in stack.deployments if d not in NEEDS_INPUT]
    script = (
        "import json, sys; from prefect.deployments import run_deployment\n"
        "print(json.dumps({n: str(run_deployment(n, timeout=0).id) for n in sys.argv[1:]}))"
    )
    started = subprocess.run(
        [sys.executable, "-c", script, *names], cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
        check=True,
    )  # fmt: skip
    runs = json.loads(started.stdout.strip().splitlines()[-1])

    def finished() -> dict[str, dict] | None:
        with httpx.Client(base_url=stack.api_url, timeout=10) as client:
            states = {n: client.get(f"/flow_runs/{i}").raise_for_status().json() for n, i in runs.items()}
        done = all(r["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") for r in states.values())
        return states if done else None

    states = wait_for(finished, 420, "every deployment's run to finish")
    outcome = {n: (r["state_type"], r["state"]["message"]) for n, r in states.items()}
    assert {n: s for n, (s, _) in outcome.items()} == {n: "COMPLETED" for n in names}, outcome


def test_stop_leaves_no_process(deployed) -> None:
    stack, config, _ = deployed
    said = stop(config.home)
    assert said == [f"stopped the {name} (pid {pid})" for name, pid in
                    (("gateway", stack.gateway_pid), ("worker", stack.worker_pid), ("fleet", stack.fleet_pid),
                     ("server", stack.server_pid))]

    def running(pgid: int) -> list[str]:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pgid, os.WNOHANG)  # `up` ran in this process: reap its children
        listing = subprocess.run(["ps", "-A", "-o", "pgid=,stat=,args="], capture_output=True, text=True).stdout
        return [line for line in listing.splitlines() if line.split()[0] == str(pgid) and "Z" not in line.split()[1]]

    for pid in (stack.server_pid, stack.worker_pid, stack.fleet_pid, stack.gateway_pid):
        wait_for(lambda pid=pid: not running(pid), 30, f"process group {pid} to end: {running(pid)}")
