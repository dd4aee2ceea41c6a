"""A Prefect deployment as a target: each task becomes a flow run of a deployed workflow.

The run is created with `arun_deployment(..., timeout=0)` (linked as a subflow when called from inside a
flow, so it shows under the routing flow in the UI) and then polled until it reaches a final state or
the target's timeout, when it is cancelled. Run time is billed per second (`price.per_second`).

Parameters of the flow run, later ones winning: the block's `parameters`, then the task's
`metadata["parameters"]` (a dict), then the task's payload under `payload_parameter` unless the task's
parameters already name it (set `payload_parameter` to None for flows that take no prompt).

The execution id for `status` and `cancel` may be the task id (while this block remembers it) or the
flow run id, which every result carries in `metadata["flow_run_id"]`.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections import OrderedDict
from typing import Any, ClassVar

import httpx
from pydantic import Field, PrivateAttr

from blocks.meta import logo
from blocks.targets.base import ExecutionStatus, HealthReport, TargetBlock
from blocks.targets.http import error_type_for_status
from routing.errors import ConfigError
from routing.models import AttemptResult, Capability, ErrorType, Price, TargetKind, Task
from routing.spend.cost import default_price

_KEPT_RUN_IDS = 1000


class PrefectDeploymentTarget(TargetBlock):
    """Runs a deployed flow with the task as a parameter and reports its final state.

    Each call opens and closes its own Prefect client, so the block holds no connection; it remembers
    the flow runs it started (for `status()` and `cancel()` by task id) in memory only. The settings
    every target shares (tier, timeout, capabilities) are described on TargetBlock.

    Attributes:
        target_name: Name the router knows this target by.
        deployment_name: The deployment to run, as '<flow name>/<deployment name>'.
        parameters: Parameters sent with every run (the task's own `metadata["parameters"]` win).
        payload_parameter: Flow parameter that receives the task's payload; None sends none.
        price: Billed per second of run time, at Prefect Cloud's rate by default.
        timeout_seconds: Cancel the run if it is not final by then.
        poll_interval_seconds: How often the run's state is read.
        tags: Tags of each flow run.

    Example:
        Load a saved target and run its deployment for one task:
        ```python
        import asyncio

        from blocks.targets import PrefectDeploymentTarget
        from routing import Task

        target = PrefectDeploymentTarget.load("BLOCK_NAME")

        async def main():
            async with target:
                result = await target.execute(Task(task_type="etl", payload="2026-12-01"))
            print(result.ok, result.metadata["flow_run_id"], result.metadata.get("ui_url"))

        asyncio.run(main())
        ```
    """

    _block_type_name = "Adaptive Router Prefect Deployment Target"
    _block_type_slug = "adaptive-router-prefect-deployment-target"
    _logo_url = logo("PrefectHQ")
    _description = "A Prefect deployment run per task, polled to a final state; cancellable from the router."

    kind: ClassVar[TargetKind] = TargetKind.PREFECT_DEPLOYMENT
    base_capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.DEPLOY_FLOWS, Capability.MONITOR_EXECUTION, Capability.CANCEL, Capability.CLOUD_UI}
    )

    deployment_name: str = Field(
        pattern=r"^[^/]+/[^/]+$", description="The deployment to run, as '<flow name>/<deployment name>'."
    )
    parameters: dict[str, Any] = Field(default_factory=dict, description="Parameters sent with every run.")
    payload_parameter: str | None = Field(
        default="prompt", description="Flow parameter that receives the task's payload; None sends none."
    )
    price: Price = Field(
        default_factory=lambda: default_price(TargetKind.PREFECT_DEPLOYMENT, cloud=True),
        description="Billed per second of run time, at Prefect Cloud's rate by default.",
    )
    timeout_seconds: float = Field(
        default=600.0, gt=0, description="Cancel the run if it is not final by then."
    )
    poll_interval_seconds: float = Field(default=1.0, gt=0, description="How often the run's state is read.")
    tags: list[str] = Field(default_factory=lambda: ["adaptive-router"], description="Tags of each flow run.")

    _flow_runs: OrderedDict = PrivateAttr(default_factory=OrderedDict)

    def _parameters(self, task: Task) -> dict[str, Any]:
        from_task = task.metadata.get("parameters", {})
        if not isinstance(from_task, dict):
            raise ConfigError(f"task.metadata['parameters'] must be a dict, got {type(from_task).__name__}")
        parameters = {**self.parameters, **from_task}
        if self.payload_parameter is not None:
            parameters.setdefault(self.payload_parameter, task.payload)
        return parameters

    async def execute(self, task: Task) -> AttemptResult:
        from prefect.client.orchestration import get_client
        from prefect.deployments import arun_deployment
        from prefect.exceptions import ObjectNotFound

        started = time.perf_counter()
        failed = functools.partial(self.failure, started)

        try:
            parameters = self._parameters(task)
        except ConfigError as exc:
            return failed(ErrorType.CLIENT_ERROR, str(exc))
        try:
            async with get_client() as client:
                try:
                    flow_run = await arun_deployment(
                        self.deployment_name,
                        client=client,
                        parameters=parameters,
                        timeout=0,
                        tags=self.tags,
                    )
                except ObjectNotFound:
                    return failed(ErrorType.CLIENT_ERROR, f"deployment {self.deployment_name!r} not found")
                self._remember(task.id, flow_run.id)
                try:
                    flow_run = await self._wait(client, flow_run.id, started)
                except asyncio.CancelledError:
                    await asyncio.shield(self._cancel(client, flow_run.id))
                    raise
                if not flow_run.state or not flow_run.state.is_final():
                    await self._cancel(client, flow_run.id)
                    return failed(
                        ErrorType.TIMEOUT,
                        f"flow run {flow_run.name} not finished within {self.timeout_seconds:g} s; cancelled",
                        **_run_metadata(flow_run),
                    )
                return await self._outcome(flow_run, started)
        except httpx.HTTPStatusError as exc:
            status = exc.response.status_code
            return failed(
                error_type_for_status(status), f"Prefect API answered HTTP {status}: {exc.response.text[:300]}"
            )
        except (httpx.TransportError, OSError) as exc:
            return failed(ErrorType.CONNECTION, f"cannot reach the Prefect API: {type(exc).__name__}: {exc}")

    async def _wait(self, client: Any, flow_run_id: uuid.UUID, started: float) -> Any:
        """The flow run once final, or as it stands when the timeout runs out."""
        deadline = started + self.timeout_seconds
        while True:
            flow_run = await client.read_flow_run(flow_run_id)
            remaining = deadline - time.perf_counter()
            if (flow_run.state and flow_run.state.is_final()) or remaining <= 0:
                return flow_run
            await asyncio.sleep(min(self.poll_interval_seconds, remaining))

    async def _outcome(self, flow_run: Any, started: float) -> AttemptResult:
        from prefect.client.schemas.objects import StateType

        state = flow_run.state
        duration_ms = (time.perf_counter() - started) * 1000
        run_seconds = flow_run.total_run_time.total_seconds()
        common = {
            "target": self.target_name,
            "duration_ms": duration_ms,
            "cost": self.price.cost(seconds=run_seconds),
            "metadata": _run_metadata(flow_run) | {"run_seconds": run_seconds},
        }
        if state.type == StateType.COMPLETED:
            return AttemptResult(ok=True, output=await _result_text(state), **common)
        why = f"flow run {flow_run.name} ended {state.name}" + (f": {state.message}" if state.message else "")
        if state.type == StateType.CANCELLED:
            error = ErrorType.CLIENT_ERROR  # stopped by a caller, says nothing about the deployment's health
        elif state.type == StateType.CRASHED:
            error = ErrorType.SERVER_ERROR  # the infrastructure failed, not the flow's code
        elif state.name == "TimedOut":
            error = ErrorType.TIMEOUT
        else:
            error = ErrorType.TARGET_ERROR
        return AttemptResult(ok=False, error_type=error, error_message=self.redact(why), **common)

    # -- monitoring and cancelling --------------------------------------------------------------

    def _remember(self, task_id: str, flow_run_id: uuid.UUID) -> None:
        self._flow_runs[task_id] = flow_run_id
        self._flow_runs.move_to_end(task_id)
        while len(self._flow_runs) > _KEPT_RUN_IDS:
            self._flow_runs.popitem(last=False)

    def _flow_run_id(self, execution_id: str) -> uuid.UUID | None:
        known = self._flow_runs.get(execution_id)
        if known is not None:
            return known
        try:
            return uuid.UUID(execution_id)
        except ValueError:
            return None

    async def status(self, execution_id: str) -> ExecutionStatus:
        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectNotFound

        flow_run_id = self._flow_run_id(execution_id)
        if flow_run_id is not None:
            async with get_client() as client:
                try:
                    flow_run = await client.read_flow_run(flow_run_id)
                except ObjectNotFound:
                    flow_run = None
            if flow_run is not None and flow_run.state is not None:
                return ExecutionStatus(
                    execution_id=execution_id,
                    state=flow_run.state.type.value,
                    detail=flow_run.state.message or "",
                    metadata=_run_metadata(flow_run),
                )
        return ExecutionStatus(execution_id=execution_id, state="UNKNOWN", detail="no such flow run")

    async def cancel(self, execution_id: str) -> bool:
        """Stop the run: True if it was not final yet and the API accepted the cancellation."""
        from prefect.client.orchestration import get_client

        flow_run_id = self._flow_run_id(execution_id)
        if flow_run_id is None:
            return False
        async with get_client() as client:
            return await self._cancel(client, flow_run_id)

    async def _cancel(self, client: Any, flow_run_id: uuid.UUID) -> bool:
        """A run not yet started is cancelled outright; a started one goes to Cancelling, so that its
        worker or runner stops the process and marks it Cancelled."""
        from prefect.client.schemas.objects import StateType
        from prefect.exceptions import ObjectNotFound
        from prefect.states import Cancelled, Cancelling

        try:
            flow_run = await client.read_flow_run(flow_run_id)
        except ObjectNotFound:
            return False
        if flow_run.state is None or flow_run.state.is_final():
            return False
        message = f"cancelled by the adaptive router (target {self.target_name})"
        state = (
            Cancelled(message=message)
            if flow_run.state.type == StateType.SCHEDULED
            else Cancelling(message=message)
        )
        result = await client.set_flow_run_state(flow_run_id, state=state, force=True)
        return result.state is not None and result.state.type in (StateType.CANCELLING, StateType.CANCELLED)

    # -- health ---------------------------------------------------------------------------------

    async def health(self) -> HealthReport:
        """The API answers and the deployment exists."""
        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectNotFound

        started = time.perf_counter()
        async with get_client() as client:
            problem = await client.api_healthcheck()
            if problem is not None:
                detail = f"Prefect API unreachable: {type(problem).__name__}: {problem}"
            else:
                try:
                    await client.read_deployment_by_name(self.deployment_name)
                    detail = ""
                except ObjectNotFound:
                    detail = f"deployment {self.deployment_name!r} not found"
        return HealthReport(
            target=self.target_name,
            healthy=not detail,
            latency_ms=(time.perf_counter() - started) * 1000,
            detail=detail,
        )


def _run_metadata(flow_run: Any) -> dict[str, Any]:
    from prefect.utilities.urls import url_for

    metadata: dict[str, Any] = {
        "flow_run_id": str(flow_run.id),
        "flow_run_name": flow_run.name,
        "state_name": flow_run.state.name if flow_run.state else None,
    }
    ui_url = url_for(flow_run)
    if ui_url:
        metadata["ui_url"] = ui_url
    return metadata


async def _result_text(state: Any) -> str | None:
    """The flow's return value as text when its result was persisted where we can read it, else None."""
    try:
        value = await state.aresult(raise_on_failure=False, retry_result_failure=False)
    except Exception:  # noqa: BLE001 -- not persisted, or stored where this process cannot read it
        return None
    return None if value is None else str(value)
