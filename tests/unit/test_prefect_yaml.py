"""prefect.yaml against Prefect's own models, strictly: Prefect ignores keys it does not know.

Every key at every level must be one Prefect's deploy models define, every schedule must parse,
every entrypoint must load, and every deployment's (and trigger's) parameters must validate against
its flow's signature.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from deployments import FLOW_NAMES, ON_DEMAND
from prefect.cli.deploy._models import (
    ConcurrencyLimitSpec,
    DeploymentConfig,
    PrefectYamlModel,
    RawScheduleConfig,
    WorkPoolConfig,
)
from prefect.cli.deploy._triggers import _initialize_deployment_triggers
from prefect.client.schemas.objects import ConcurrencyLimitStrategy
from prefect.client.schemas.schedules import CronSchedule
from prefect.exceptions import ParameterTypeError, SignatureMismatchError
from prefect.flows import load_flow_from_entrypoint
from pydantic import BaseModel

from blocks.store.summaries import Summary
from flows.health import EVENTS
from flows.server import DEFAULT_POOL

REPO = Path(__file__).resolve().parents[2]
# `definitions` holds YAML anchors: Prefect's docs recommend it, and its models skip it by design.
TOP_LEVEL_EXTRAS = {"definitions"}


def load() -> dict[str, Any]:
    return yaml.safe_load((REPO / "prefect.yaml").read_text())


def unknown_keys(data: dict[str, Any], model: type[BaseModel], where: str) -> list[str]:
    known = set(model.model_fields) | {f.alias for f in model.model_fields.values() if f.alias}
    return [f"{where}{key}" for key in data if key not in known]


def problems(document: dict[str, Any]) -> list[str]:
    """Every key Prefect would silently ignore, anywhere in the document."""
    found = [k for k in unknown_keys(document, PrefectYamlModel, "") if k not in TOP_LEVEL_EXTRAS]
    for i, deployment in enumerate(document.get("deployments") or []):
        where = f"deployments[{i}]({deployment.get('name')})."
        found += unknown_keys(deployment, DeploymentConfig, where)
        if isinstance(deployment.get("work_pool"), dict):
            found += unknown_keys(deployment["work_pool"], WorkPoolConfig, f"{where}work_pool.")
        if isinstance(deployment.get("concurrency_limit"), dict):
            found += unknown_keys(
                deployment["concurrency_limit"], ConcurrencyLimitSpec, f"{where}concurrency_limit."
            )
        for j, trigger in enumerate(_triggers(deployment)):
            found += unknown_keys(trigger.raw, type(trigger.model), f"{where}triggers[{j}].")
    return found


class _Trigger:
    def __init__(self, raw: dict[str, Any], model: BaseModel) -> None:
        self.raw, self.model = raw, model


def _triggers(deployment: dict[str, Any]) -> list[_Trigger]:
    raws = [dict(t) for t in deployment.get("triggers") or []]
    models = _initialize_deployment_triggers(deployment["name"], [dict(t) for t in raws])
    return [_Trigger(raw, model) for raw, model in zip(raws, models)]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return load()


@pytest.fixture(scope="module")
def deployments(document) -> list[dict[str, Any]]:
    return document["deployments"]


def test_the_file_parses_with_prefects_model_and_has_no_key_prefect_would_ignore(document) -> None:
    PrefectYamlModel.model_validate(document)
    assert problems(document) == []


def test_the_strict_check_catches_a_misspelt_key(document) -> None:
    broken = yaml.safe_load(yaml.safe_dump(document))
    broken["deployments"][0]["schedulez"] = broken["deployments"][0].pop("schedules")
    broken["deployments"][1]["work_pool"]["job_variable"] = {}
    broken["deployments"][0]["triggers"][0]["paramaters"] = {}
    broken["deploymnets"] = []
    found = problems(broken)
    assert "deploymnets" in found
    assert any(p.endswith(".schedulez") for p in found)
    assert any(p.endswith(".work_pool.job_variable") for p in found)
    assert any(p.endswith(".triggers[0].paramaters") for p in found)


def test_every_scheduled_deployment_is_tagged_pooled_and_never_overlaps(deployments) -> None:
    names = [d["name"] for d in deployments]
    assert len(names) == len(set(names))
    assert {d["entrypoint"] for d in deployments} == set(FLOW_NAMES)
    for deployment in deployments:
        if deployment["entrypoint"] in ON_DEMAND:
            assert "schedules" not in deployment and "adaptive-router" in deployment["tags"]
            continue
        assert deployment["schedules"], deployment["name"]
        for schedule in deployment["schedules"]:
            parsed = RawScheduleConfig.model_validate(schedule)  # extra keys forbidden here by Prefect itself
            if parsed.cron:
                CronSchedule(cron=parsed.cron, timezone=parsed.timezone)
            else:
                assert parsed.interval.total_seconds() >= 60
        assert "adaptive-router" in deployment["tags"]
        assert deployment["work_pool"]["name"] == DEFAULT_POOL
        limit = ConcurrencyLimitSpec.model_validate(deployment["concurrency_limit"])
        assert limit.limit == 1
        ConcurrencyLimitStrategy(limit.collision_strategy)


@pytest.mark.slow  # a fresh interpreter per entrypoint, as a worker starts one
def test_every_entrypoint_loads_in_a_fresh_interpreter_as_a_worker_loads_it(deployments) -> None:
    """A worker imports the entrypoint in a new process from the project directory; a flow that only
    imports because the test process already holds its modules would crash there."""
    entrypoints = sorted({d["entrypoint"] for d in deployments})
    script = (
        "import json, sys\n"
        "from prefect.flows import load_flow_from_entrypoint\n"
        "print(json.dumps({e: load_flow_from_entrypoint(e, use_placeholder_flow=False).name for e in sys.argv[1:]}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, *entrypoints], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    names = json.loads(result.stdout.strip().splitlines()[-1])
    assert names == {e: FLOW_NAMES[e] for e in entrypoints}


@pytest.mark.parametrize("index", range(len(load()["deployments"])))
def test_parameters_fit_the_flow(deployments, index: int) -> None:
    deployment = deployments[index]
    flow = load_flow_from_entrypoint(deployment["entrypoint"], use_placeholder_flow=False)
    assert flow.name == FLOW_NAMES[deployment["entrypoint"]]
    run_time = ON_DEMAND.get(deployment["entrypoint"], {})
    flow.validate_parameters({**(deployment.get("parameters") or {}), **run_time})
    for trigger in _triggers(deployment):
        flow.validate_parameters(trigger.model.parameters or {})


def test_a_parameter_the_flow_lacks_would_be_caught(deployments) -> None:
    flow = load_flow_from_entrypoint(deployments[0]["entrypoint"], use_placeholder_flow=False)
    with pytest.raises(SignatureMismatchError, match="full_recalc"):
        flow.validate_parameters({"full_recalc": True})
    with pytest.raises(ParameterTypeError, match="full"):
        flow.validate_parameters({"full": "sometimes"})


def test_the_recalculation_runs_hourly_incremental_weekly_full_and_on_degradation(deployments) -> None:
    recalc = {d["name"]: d for d in deployments if d["entrypoint"] == "flows.recalculate:recalculate_stats"}
    assert recalc["incremental"]["parameters"] == {"full": False}
    assert recalc["incremental"]["schedules"] == [{"cron": "0 * * * *", "timezone": "UTC"}]
    assert recalc["full"]["parameters"] == {"full": True}
    assert recalc["full"]["schedules"] == [{"cron": "0 3 * * 0", "timezone": "UTC"}]  # Sundays 03:00 UTC
    (trigger,) = _triggers(recalc["incremental"])
    assert EVENTS["degraded"][0] in trigger.model.expect
    assert trigger.model.match.model_dump()["prefect.resource.id"] == "adaptive-router.target.*"


def test_each_summary_has_its_own_schedule(deployments) -> None:
    summaries = {
        d["parameters"]["summary"]: d["schedules"][0]
        for d in deployments
        if d["entrypoint"] == "flows.summaries:refresh_summaries"
    }
    assert summaries == {
        "tier-daily": {"interval": 300},
        "pool-hourly": {"interval": 600},
        "solution-patterns": {"cron": "20 * * * *", "timezone": "UTC"},
        "spend": {"interval": 300},
    }
    assert set(summaries) == set(Summary)  # a new summary without a schedule would never be refreshed


def test_up_outside_the_project_says_where_to_run_it_and_starts_nothing(tmp_path: Path) -> None:
    from flows.server import StackConfig, up
    from routing.errors import ServerError

    home = tmp_path / ".adaptive-router"
    with pytest.raises(ServerError, match=r"no prefect.yaml in .*: run `adaptive-router up` from the project"):
        up(StackConfig(project=tmp_path, home=home, port=1))
    assert not home.exists()  # no server, fleet or worker was started
