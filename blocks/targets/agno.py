"""Agno agents and teams as targets: one agent, or a team whose leader delegates to member agents.

Agno is imported inside the methods so that importing `blocks` stays light; the Agent or Team is built
on first use, once per event loop (its OpenAI client must not cross loops, as in the HTTP target).

Agno reports a failed run through `RunOutput.status` rather than raising, and keeps only the error's
text. To tell a refused connection from a 429 or a timeout, the model used here records the exception
it raises into a context variable set around each run, and the adapter maps the last one recorded.
Retries are the router's job (RetryPolicy), so both agno's and the openai SDK's own retries are off.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from blocks.meta import logo
from blocks.targets.base import EndpointTarget, ExecutionStatus
from routing.models import AttemptResult, Capability, ErrorType, TargetKind, Task
from routing.validation import repeated

_MODEL_ERRORS: contextvars.ContextVar[list[BaseException] | None] = contextvars.ContextVar(
    "agno_model_errors", default=None
)
_KEPT_FINISHED_RUNS = 1000


class AgnoMember(BaseModel):
    """One member agent of a team; its model defaults to the block's."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="The member's name, unique within the team.")
    role: str | None = Field(default=None, description="What the leader delegates to this member for.")
    instructions: str | None = Field(default=None, description="Instructions of this member.")
    model: str | None = Field(default=None, description="Model of this member; default: the block's.")


@dataclass
class _Run:
    """A run in flight or recently finished, for status() and cancel()."""

    state: str
    started: float
    loop: asyncio.AbstractEventLoop | None = None
    future: asyncio.Future | None = None
    detail: str = ""


class AgnoTarget(EndpointTarget):
    """An Agno agent, or a team of agents led by a coordinator, behind an OpenAI-compatible endpoint.

    The agent or team is built on first use in each event loop; `aclose()` cancels runs in flight and
    closes the model clients. Runs can be watched with `status()` and stopped with `cancel()` by task
    id. The settings every target shares (tier, price, timeout, capabilities) are described on
    TargetBlock.

    Attributes:
        target_name: Name the router knows this target by; also the agent's or team's name.
        base_url: API root of the OpenAI-compatible endpoint the models are called through.
        model: Model of the agent, or of the team leader (and of members that name none).
        api_key: Bearer key (a secret), or `api_key_env` naming the variable that holds it.
        instructions: Instructions of the agent or team leader.
        mode: 'agent' for one agent, 'team' for a leader with `members`.
        members: The team's member agents (team mode only).
        max_tokens: Longest answer of each model call, in tokens.
        team_mode: How the leader uses its members: coordinate, route, broadcast or tasks.

    Example:
        Load a saved team and run one task through it:
        ```python
        import asyncio

        from blocks.targets import AgnoTarget
        from routing import Task

        team = AgnoTarget.load("BLOCK_NAME")

        async def main():
            async with team:
                result = await team.execute(Task(task_type="plan", payload="Plan a release."))
            print(result.ok, result.metadata.get("members"), result.output)

        asyncio.run(main())
        ```
    """

    _block_type_name = "Adaptive Router Agno Target"
    _block_type_slug = "adaptive-router-agno-target"
    _logo_url = logo("agno-agi")
    _description = "An Agno agent or multi-agent team reached through an OpenAI-compatible model endpoint."

    kind: ClassVar[TargetKind] = TargetKind.AGNO
    base_capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.CHAT, Capability.BATCH_EXECUTION, Capability.MONITOR_EXECUTION, Capability.CANCEL}
    )

    instructions: str | None = Field(default=None, description="Instructions of the agent or team leader.")
    mode: Literal["agent", "team"] = Field(default="agent", description="One agent, or a team with members.")
    members: list[AgnoMember] = Field(default_factory=list, description="Team members (team mode only).")
    max_tokens: int = Field(default=256, gt=0, description="Longest answer of each model call, in tokens.")
    team_mode: Literal["coordinate", "route", "broadcast", "tasks"] = Field(
        default="coordinate", description="How the leader uses its members (agno TeamMode)."
    )

    _runners: weakref.WeakKeyDictionary = PrivateAttr(default_factory=weakref.WeakKeyDictionary)
    _runs: OrderedDict = PrivateAttr(default_factory=OrderedDict)

    @model_validator(mode="after")
    def _members_match_mode(self) -> AgnoTarget:
        if self.mode == "team" and not self.members:
            raise ValueError("members must list at least one agent when mode is 'team'")
        if self.mode == "agent" and self.members:
            raise ValueError("members are only used when mode is 'team'; set mode='team' or drop members")
        names = [m.name for m in self.members]
        if duplicates := repeated(names):
            raise ValueError(f"members: duplicate names {', '.join(duplicates)}")
        return self

    @property
    def capabilities(self) -> frozenset[Capability]:
        extra = {Capability.MULTI_AGENT} if self.mode == "team" else set()
        return super().capabilities | extra

    def cost_estimate(self, task: Task) -> float:
        """An upper bound: a team makes up to 2 + members model calls (leader, each member, leader
        again), each reading the task, instructions and tool schemas (~1,500 tokens allowed) plus the
        answers before it, and writing at most `max_tokens`."""
        calls = 1 if self.mode == "agent" else 2 + len(self.members)
        per_call_input = task.estimated_tokens + 1500 + calls * self.max_tokens
        return self.price.cost(calls * per_call_input, calls * self.max_tokens, self.timeout_seconds)

    # -- building the agno objects --------------------------------------------------------------


    def _model(self, name: str) -> Any:
        return _recording_model_class()(
            id=name,
            base_url=self.base_url,
            api_key=self.api_key_value() or "not-provided",
            timeout=self.timeout_seconds,
            max_retries=0,
            max_tokens=self.max_tokens,
        )

    def _build(self) -> Any:
        os.environ.setdefault("AGNO_TELEMETRY", "false")
        from agno.agent import Agent

        if self.mode == "agent":
            return Agent(
                name=self.target_name,
                model=self._model(self.model),
                instructions=self.instructions,
                telemetry=False,
            )
        from agno.team import Team
        from agno.team.mode import TeamMode

        members = [
            Agent(
                name=m.name,
                role=m.role,
                instructions=m.instructions,
                model=self._model(m.model or self.model),
                telemetry=False,
            )
            for m in self.members
        ]
        return Team(
            name=self.target_name,
            model=self._model(self.model),
            members=members,
            mode=TeamMode(self.team_mode),
            instructions=self.instructions,
            telemetry=False,
        )

    def _runner(self) -> Any:
        loop = asyncio.get_running_loop()
        runner = self._runners.get(loop)
        if runner is None:
            runner = self._runners[loop] = self._build()
        return runner

    async def initialize(self) -> None:
        self._runner()

    # -- execution ------------------------------------------------------------------------------

    async def execute(self, task: Task) -> AttemptResult:
        """Run the agent or team on `task.payload`; the execution id for status/cancel is `task.id`."""
        started = time.perf_counter()
        run_id = task.id
        errors: list[BaseException] = []
        token = _MODEL_ERRORS.set(errors)
        try:
            runner = self._runner()
            inner = asyncio.ensure_future(
                runner.arun(task.payload, run_id=run_id, session_id=task.session_id)
            )
        finally:
            _MODEL_ERRORS.reset(token)
        run = _Run("RUNNING", started, asyncio.get_running_loop(), inner)
        self._remember(run_id, run)
        try:
            done, _ = await asyncio.wait({inner}, timeout=self.timeout_seconds)
            if not done:
                await self._stop(run_id, inner)
                result = self._failed(
                    run_id,
                    started,
                    "TIMED_OUT",
                    ErrorType.TIMEOUT,
                    f"run did not finish within {self.timeout_seconds:g} s",
                )
            elif inner.cancelled():
                result = self._failed(
                    run_id, started, "CANCELLED", ErrorType.CLIENT_ERROR, "run cancelled by the caller"
                )
            elif inner.exception() is not None:
                error, message, extra = _classify(inner.exception())
                result = self._failed(run_id, started, "ERROR", error, message, **extra)
            else:
                result = self._result(run_id, started, inner.result(), errors)
            run.state, run.detail = result.metadata["run_status"], result.error_message or ""
            return result
        except asyncio.CancelledError:
            await self._stop(run_id, inner)
            run.state = "CANCELLED"
            raise
        finally:
            run.future = run.loop = None


    def _result(self, run_id: str, started: float, output: Any, errors: list[BaseException]) -> AttemptResult:
        status = _status_name(output.status)
        input_tokens, output_tokens = _tokens(output)
        metadata = {"run_status": status, "execution_id": run_id}
        if getattr(output, "member_responses", None):
            metadata["members"] = [_run_name(m) for m in output.member_responses]
        duration_ms = (time.perf_counter() - started) * 1000
        common = {
            "target": self.target_name,
            "duration_ms": duration_ms,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cost": self.price.cost(input_tokens, output_tokens, duration_ms / 1000),
        }
        if status == "COMPLETED":
            content = output.content
            text = content if isinstance(content, str) else output.get_content_as_string()
            return AttemptResult(ok=True, output=text, metadata=metadata, **common)
        if status == "CANCELLED":
            error, message, extra = ErrorType.CLIENT_ERROR, "run cancelled by the caller", {}
        elif errors:
            error, message, extra = _classify(errors[-1])
        else:
            error, message, extra = ErrorType.TARGET_ERROR, f"agno run ended {status}: {output.content}", {}
        return AttemptResult(
            ok=False, error_type=error, error_message=self.redact(message), metadata=metadata | extra, **common
        )

    def _failed(
        self, run_id: str, started: float, status: str, error: ErrorType, message: str, **extra: Any
    ) -> AttemptResult:
        return self.failure(started, error, message, run_status=status, execution_id=run_id, **extra)

    # -- monitoring and cancelling --------------------------------------------------------------

    def _remember(self, run_id: str, run: _Run) -> None:
        self._runs[run_id] = run
        self._runs.move_to_end(run_id)
        while len(self._runs) > _KEPT_FINISHED_RUNS:
            oldest, old = next(iter(self._runs.items()))
            if old.future is not None:  # never forget a run still in flight
                break
            del self._runs[oldest]

    async def status(self, execution_id: str) -> ExecutionStatus:
        run = self._runs.get(execution_id)
        if run is None:
            return ExecutionStatus(
                execution_id=execution_id, state="UNKNOWN", detail="no such run on this target"
            )
        return ExecutionStatus(
            execution_id=execution_id,
            state=run.state,
            detail=run.detail,
            metadata={"elapsed_seconds": time.perf_counter() - run.started} if run.future else {},
        )

    async def cancel(self, execution_id: str) -> bool:
        """Ask agno to stop the run and cancel its task; True if a run in flight was found."""
        run = self._runs.get(execution_id)
        if run is None or run.future is None or run.loop is None:
            return False
        from agno.run.cancel import acancel_run

        await acancel_run(execution_id)
        run.loop.call_soon_threadsafe(run.future.cancel)
        return True

    async def _stop(self, run_id: str, inner: asyncio.Future) -> None:
        from agno.run.cancel import acancel_run

        await acancel_run(run_id)
        inner.cancel()
        await asyncio.wait({inner})

    # -- closing --------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Cancel runs in flight and close this loop's model clients (other loops' are dropped)."""
        for run_id, run in list(self._runs.items()):
            if run.future is not None:
                await self.cancel(run_id)
        runner = self._runners.pop(asyncio.get_running_loop(), None)
        self._runners.clear()
        for model in _models(runner) if runner is not None else ():
            if model.async_client is not None:
                await model.async_client.close()


@functools.cache
def _recording_model_class() -> type:
    """OpenAILike that records the exception of a failed model call for the adapter to classify."""
    from agno.models.openai import OpenAILike

    class RecordingOpenAILike(OpenAILike):
        async def ainvoke(self, *args: Any, **kwargs: Any) -> Any:
            try:
                return await super().ainvoke(*args, **kwargs)
            except Exception as exc:
                errors = _MODEL_ERRORS.get()
                if errors is not None:
                    errors.append(exc)
                raise

    return RecordingOpenAILike


def _models(runner: Any) -> list[Any]:
    """The models of an agent, or of a team's leader and (recursively) its members."""
    return [runner.model, *(m for member in getattr(runner, "members", None) or () for m in _models(member))]


def _run_name(output: Any) -> str | None:
    return getattr(output, "agent_name", None) or getattr(output, "team_name", None)


def _status_name(status: Any) -> str:
    return str(getattr(status, "value", status)).upper()


def _tokens(output: Any) -> tuple[int, int]:
    """Input and output tokens of a run plus all its members' (agno leaves members out of team metrics)."""
    metrics = output.metrics
    input_tokens = getattr(metrics, "input_tokens", 0) or 0
    output_tokens = getattr(metrics, "output_tokens", 0) or 0
    for member in getattr(output, "member_responses", None) or ():
        member_in, member_out = _tokens(member)
        input_tokens += member_in
        output_tokens += member_out
    return input_tokens, output_tokens


def _classify(exc: BaseException) -> tuple[ErrorType, str, dict[str, Any]]:
    from blocks.targets.openai_errors import classify

    return classify(exc)
