"""The A/B-analysis flow deployed for real: a regressed experiment emits the event, the automation rolls it back.

On a fresh local server with a process worker (as `adaptive-router up` starts them, scheduler off):
an experiment whose treatment is clearly worse is analysed by the `analyze-experiments/every-15-minutes`
deployment (which leaves rollbacks to the automation), `adaptive-router.experiment.regressed` is
emitted, the automation prefect.yaml defines runs `rollback-experiment`, and the store shows the
experiment rolled back with the policies of its snapshot restored.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from experiments_support import route_synthetic
from stack_support import REPO, running_stack, wait_for

from blocks.store import DuckDBStore
from blocks.store.experiments import apply_policy, load_experiment, load_policy_state, start_experiment
from flows.server import Stack, StackConfig
from routing.experiments.assignment import ExperimentConfig, Status, new_experiment
from routing.experiments.policy import parse_policy

pytestmark = [pytest.mark.integration, pytest.mark.slow]



@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> Iterator[tuple[Stack, StackConfig, DuckDBStore]]:
    with running_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


def test_a_regressed_experiment_is_rolled_back_by_the_automation(deployed) -> None:
    stack, config, store = deployed
    apply_policy(store, parse_policy("fixed:mid"), "the policy in force", approved=True)
    experiment = new_experiment("regress", parse_policy("fixed:mid"), [parse_policy("fixed:small")],
                                config=ExperimentConfig(min_samples=50))  # fmt: skip
    experiment = start_experiment(store, experiment)
    route_synthetic(store, [experiment], 300)
    apply_policy(store, parse_policy("fixed:small"), "changed while the experiment ran", approved=True)

    env = {**os.environ, "PREFECT_API_URL": stack.api_url, "PREFECT_HOME": config.env["PREFECT_HOME"]}
    subprocess.run(
        [sys.executable, "-m", "prefect", "deployment", "run", "analyze-experiments/every-15-minutes"],
        cwd=REPO, env=env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip

    def runs() -> dict[str, dict]:
        with httpx.Client(base_url=stack.api_url, timeout=10) as client:
            found = client.post("/flow_runs/filter", json={}).raise_for_status().json()
            flows = {f["id"]: f["name"] for f in client.post("/flows/filter", json={}).raise_for_status().json()}
        return {flows[r["flow_id"]]: r for r in found if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED")}

    done = wait_for(lambda: "rollback-experiment" in (found := runs()) and found, 240, "the automation's rollback run")
    assert done["analyze-experiments"]["state_type"] == "COMPLETED"
    rollback = done["rollback-experiment"]
    assert rollback["state_type"] == "COMPLETED" and rollback["created_by"]["type"] == "AUTOMATION"
    assert rollback["parameters"] == {"experiment": "regress"}

    with httpx.Client(base_url=stack.api_url, timeout=10) as client:
        events = client.post("/events/filter", json={"filter": {"event": {"name": ["adaptive-router.experiment.regressed"]}}})
    regressed = events.raise_for_status().json()["events"]
    assert [e["resource"]["prefect.resource.id"] for e in regressed] == ["adaptive-router.experiment.regress"]
    assert regressed[0]["payload"]["decision"] == "rollback"

    stored = load_experiment(store, "regress")
    assert stored.status is Status.ROLLED_BACK
    assert load_policy_state(store).policies["*"].spec == "fixed:mid"  # the snapshot taken at its start
