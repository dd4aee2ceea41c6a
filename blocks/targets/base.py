"""The contract every target kind honours, so the router can treat them alike.

A target block holds its connection settings (editable in the Prefect UI) and turns a Task into an
AttemptResult. Failures are returned, not raised: a failed attempt is an outcome to learn from, with
its error type deciding whether a retry or the next target is worth trying.
"""

from __future__ import annotations

import abc
import os
import time
from datetime import datetime
from typing import Any, ClassVar, Self

import httpx
from prefect.blocks.core import Block
from pydantic import BaseModel, Field, PrivateAttr, SecretStr

from blocks.meta import BLOCKS_DOCUMENTATION_URL, restore_runtime_state, without_runtime_state
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


class TargetBlock(Block, StrictBlock, abc.ABC):
    """Base of the target blocks: a router-facing name, a tier, a price and capability flags.

    A target holds only settings; the clients it opens on first use are private runtime state, closed
    by `aclose()` (or by leaving `async with`) and never pickled, so a block can be handed to another
    process or thread and reopens what it needs there.

    Attributes:
        target_name: Name the router knows this target by, unique among the router's targets.
        tier: A free label such as 'small' or 'premium'.
        price: What a call costs (per token and per second); free by default.
        timeout_seconds: Give up on one attempt after this many seconds.
        extra_capabilities: Capabilities beyond the ones this kind always has.

    Example:
        Load a saved target of any kind by its block type slug, and close its clients when done:
        ```python
        import asyncio

        from prefect.blocks.core import Block
        from blocks.targets import TargetBlock
        from routing import Task

        target: TargetBlock = Block.load("adaptive-router-openai-compatible-target/BLOCK_NAME")

        async def main():
            async with target:
                result = await target.execute(Task(task_type="qa", payload="Hello"))
            print(result.ok, result.output)

        asyncio.run(main())
        ```
    """

    _documentation_url = BLOCKS_DOCUMENTATION_URL

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

    async def status(self, execution_id: str) -> ExecutionStatus:
        raise NotImplementedError(f"{type(self).__name__} cannot monitor executions")

    async def cancel(self, execution_id: str) -> bool:
        raise NotImplementedError(f"{type(self).__name__} cannot cancel executions")

    @abc.abstractmethod
    async def health(self) -> HealthReport:
        """A cheap probe of whether the target answers at all."""

    async def aclose(self) -> None:
        """Release clients and connections; the block stays usable and reopens them on the next call."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __getstate__(self) -> dict[str, Any]:
        """Settings only: clients, runners, locks and run bookkeeping stay behind (see blocks.meta)."""
        return without_runtime_state(self, super().__getstate__())

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        restore_runtime_state(self)


class EndpointTarget(TargetBlock, abc.ABC):
    """A target whose model sits behind an OpenAI-compatible endpoint: HTTP, Agno, LlamaIndex.

    Attributes:
        base_url: API root, e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1.
        model: Model name sent in each request.
        api_key: Bearer key, kept as a secret: never logged or stored in the store.
        api_key_env: Name of an environment variable holding the key, as an alternative to `api_key`.

    Example:
        Probe a saved endpoint without spending tokens:
        ```python
        import asyncio

        from prefect.blocks.core import Block
        from blocks.targets.base import EndpointTarget

        target: EndpointTarget = Block.load("adaptive-router-agno-target/BLOCK_NAME")
        print(asyncio.run(target.health()))
        ```
    """

    base_url: str = Field(description="API root, e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1.")
    model: str = Field(description="Model name sent in each request.")
    api_key: SecretStr | None = Field(default=None, description="Bearer key; never logged or stored.")
    api_key_env: str | None = Field(default=None, description="Environment variable holding the key instead.")

    def secrets(self) -> list[str]:
        key = self.api_key_value()
        return [key] if key else []

    _transport: httpx.AsyncBaseTransport | None = PrivateAttr(default=None)

    def use_transport(self, transport: httpx.AsyncBaseTransport | None) -> Self:
        """Send the requests this block makes through httpx itself (the HTTP target's calls, every
        endpoint's health probe) over `transport`, e.g. an `httpx.MockTransport`; None restores the
        network. Set it before the first call: clients already open keep their transport. Agno and
        LlamaIndex call their model through SDKs with their own connections. A transport is
        process-local: it is not pickled. Returns the block, for chaining."""
        self._transport = transport
        return self

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
            async with httpx.AsyncClient(
                headers=self.auth_headers(), timeout=min(self.timeout_seconds, 10.0), transport=self._transport
            ) as client:
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
