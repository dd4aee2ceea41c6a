"""The contract every target kind honours, so the router can treat them alike.

A target block holds its connection settings (editable in the Prefect UI) and turns a Task into an
AttemptResult. Failures are returned, not raised: a failed attempt is an outcome to learn from, with
its error type deciding whether a retry or the next target is worth trying.
"""

from __future__ import annotations

import abc
import asyncio
import os
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, Field, SecretStr

from blocks.validation import StrictBlock
from routing.calls.redaction import redact
from routing.models import AttemptResult, Capability, ErrorType, Price, Target, TargetKind, Task, utcnow
from routing.spend.cost import estimate_cost


class HealthReport(BaseModel):
    target: str
    healthy: bool
    latency_ms: float | None = None
    detail: str = ""
    checked_at: datetime | None = None


class ExecutionStatus(BaseModel):
    """Where a (possibly long-running) execution stands, for targets that can monitor or cancel."""

    execution_id: str
    state: str
    detail: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)


class TargetBlock(StrictBlock, abc.ABC):
    """Base of the target blocks: a router-facing name, a tier, a price and capability flags."""

    kind: ClassVar[TargetKind]
    base_capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.CHAT})

    target_name: str = Field(
        pattern=r"^[A-Za-z0-9_.:\-]+$", description="Name the router knows this target by (unique)."
    )
    tier: str | None = Field(default=None, description="A label such as 'small' or 'premium'.")
    price: Price = Field(default_factory=Price, description="What a call costs; free by default.")
    timeout_seconds: float = Field(default=60.0, gt=0, description="Give up on one attempt after this.")
    extra_capabilities: list[Capability] = Field(
        default_factory=list, description="Capabilities beyond the ones this kind always has."
    )
    batch_concurrency: int = Field(default=10, ge=1, description="Calls in flight at once in execute_batch.")

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self.base_capabilities | frozenset(self.extra_capabilities)

    def secrets(self) -> list[str]:
        """Values that must never leave this block in an error text."""
        return []

    def redact(self, text: str | None) -> str | None:
        """`text` from or about the target without this block's secrets or anything key-shaped;
        every error text passes here before it is logged, stored or emitted."""
        return redact(text, self.secrets())

    @property
    def can_deploy_flows(self) -> bool:
        return Capability.DEPLOY_FLOWS in self.capabilities

    @property
    def can_monitor_execution(self) -> bool:
        return Capability.MONITOR_EXECUTION in self.capabilities

    @property
    def can_cancel(self) -> bool:
        return Capability.CANCEL in self.capabilities

    @property
    def supports_batch_execution(self) -> bool:
        return Capability.BATCH_EXECUTION in self.capabilities

    @property
    def supports_multi_agent(self) -> bool:
        return Capability.MULTI_AGENT in self.capabilities

    @property
    def has_cloud_ui(self) -> bool:
        return Capability.CLOUD_UI in self.capabilities

    def descriptor(self) -> Target:
        """The router's view of this target: no connection details, no secrets."""
        return Target(
            name=self.target_name,
            kind=self.kind,
            model=getattr(self, "model", None),
            tier=self.tier,
            capabilities=self.capabilities,
            price=self.price,
        )

    def cost_estimate(self, task: Task) -> float:
        """An upper bound of what calling this target for `task` costs, for budgets to reserve.

        Output is bounded by the target's `max_tokens` where it has one and run time by its timeout,
        so with honest prices a budget that admits calls on this estimate is never overshot.
        """
        return estimate_cost(
            self.descriptor(),
            task,
            expected_output_tokens=getattr(self, "max_tokens", None),
            expected_seconds=self.timeout_seconds,
        )

    def failure(
        self,
        started: float,
        error: ErrorType,
        message: str,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        **metadata: Any,
    ) -> AttemptResult:
        """A failed attempt that began at `started` (a `time.perf_counter()` reading)."""
        return AttemptResult(
            target=self.target_name,
            ok=False,
            duration_ms=(time.perf_counter() - started) * 1000,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            error_type=error,
            error_message=self.redact(message),
            metadata=metadata,
        )

    async def initialize(self) -> None:
        """Prepare anything expensive (clients, indexes) ahead of the first call."""

    @abc.abstractmethod
    async def execute(self, task: Task) -> AttemptResult:
        """Run `task` once; never raises for a failure of the target, returns it."""

    async def execute_batch(self, tasks: Sequence[Task], concurrency: int | None = None) -> list[AttemptResult]:
        """Run `tasks`, at most `concurrency` (default `batch_concurrency`) at once; results in order."""
        limit = asyncio.Semaphore(concurrency or self.batch_concurrency)

        async def one(task: Task) -> AttemptResult:
            async with limit:
                return await self.execute(task)

        return list(await asyncio.gather(*(one(t) for t in tasks)))

    async def status(self, execution_id: str) -> ExecutionStatus:
        raise NotImplementedError(f"{type(self).__name__} cannot monitor executions")

    async def cancel(self, execution_id: str) -> bool:
        raise NotImplementedError(f"{type(self).__name__} cannot cancel executions")

    @abc.abstractmethod
    async def health(self) -> HealthReport:
        """A cheap probe of whether the target answers at all."""

    async def shutdown(self) -> None:
        """Release clients and connections."""


class EndpointTarget(TargetBlock, abc.ABC):
    """A target whose model sits behind an OpenAI-compatible endpoint: HTTP, Agno, LlamaIndex."""

    base_url: str = Field(description="API root, e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1")
    model: str = Field(description="Model name sent in each request.")
    api_key: SecretStr | None = Field(default=None, description="Bearer key; never logged or stored.")
    api_key_env: str | None = Field(default=None, description="Environment variable holding the key instead.")

    def secrets(self) -> list[str]:
        key = self.api_key_value()
        return [key] if key else []

    def api_key_value(self) -> str | None:
        """The key to send: the block's own, else the named environment variable's, else none."""
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def auth_headers(self) -> dict[str, str]:
        key = self.api_key_value()
        return {"Authorization": f"Bearer {key}"} if key else {}

    async def health(self) -> HealthReport:
        """Lists the endpoint's models: proves it answers and accepts the key, spending no tokens."""
        started = time.perf_counter()
        try:
            async with httpx.AsyncClient(headers=self.auth_headers(), timeout=min(self.timeout_seconds, 10.0)) as client:
                response = await client.get(self.base_url.rstrip("/") + "/models")
            healthy = response.status_code == 200
            detail = "" if healthy else f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            healthy, detail = False, self.redact(f"{type(exc).__name__}: {exc}") or ""
        return HealthReport(
            target=self.target_name,
            healthy=healthy,
            latency_ms=(time.perf_counter() - started) * 1000,
            detail=detail,
            checked_at=utcnow(),
        )
