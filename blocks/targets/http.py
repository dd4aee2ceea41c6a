"""OpenAI-compatible chat completions over HTTP: hosted providers, local servers, the local fleet."""

from __future__ import annotations

import asyncio
import functools
import time
import weakref
from typing import Any, ClassVar

import httpx
from pydantic import Field, PrivateAttr

from blocks.meta import logo
from blocks.targets.base import EndpointTarget
from routing.models import AttemptResult, Capability, ErrorType, TargetKind, Task


class OpenAICompatibleTarget(EndpointTarget):
    """A model behind an OpenAI-compatible `/chat/completions` endpoint.

    One pooled httpx client per event loop is opened on the first call and closed by `aclose()`;
    `use_transport()` routes the calls over another transport (tests use `httpx.MockTransport`).
    The settings every target shares (tier, price, timeout, capabilities) are described on TargetBlock.

    Attributes:
        target_name: Name the router knows this target by.
        base_url: API root, e.g. https://api.groq.com/openai/v1 or the local fleet's.
        model: Model name sent in each request.
        api_key: Bearer key (a secret), or `api_key_env` naming the variable that holds it.
        max_tokens: Longest answer, in tokens; also bounds the cost estimate budgets reserve.
        temperature: Sampling temperature sent with each request.
        system_prompt: Optional system message sent before the task's payload.

    Example:
        Load a saved target and send it one task:
        ```python
        import asyncio

        from blocks.targets import OpenAICompatibleTarget
        from routing import Task

        target = OpenAICompatibleTarget.load("BLOCK_NAME")

        async def main():
            async with target:
                result = await target.execute(Task(task_type="qa", payload="What is 2 + 2?"))
            print(result.ok, result.output, result.cost)

        asyncio.run(main())
        ```
    """

    _block_type_name = "Adaptive Router OpenAI-compatible Target"
    _block_type_slug = "adaptive-router-openai-compatible-target"
    _logo_url = logo("openai")
    _description = "A chat model reached over an OpenAI-compatible HTTP API (OpenAI, Groq, vLLM, the local fleet)."

    kind: ClassVar[TargetKind] = TargetKind.HTTP
    base_capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.CHAT})

    max_tokens: int = Field(default=256, gt=0, description="Longest answer, in tokens.")
    temperature: float = Field(default=0.0, ge=0, le=2, description="Sampling temperature, 0 to 2.")
    system_prompt: str | None = Field(default=None, description="System message sent before each task.")

    _clients: weakref.WeakKeyDictionary = PrivateAttr(default_factory=weakref.WeakKeyDictionary)

    def _client(self) -> httpx.AsyncClient:
        """One pooled client per event loop: an httpx client must not cross loops."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = httpx.AsyncClient(
                base_url=self.base_url.rstrip("/") + "/",
                headers=self.auth_headers(),
                timeout=self.timeout_seconds,
                transport=self._transport,
            )
            self._clients[loop] = client
        return client

    def _body(self, task: Task) -> dict[str, Any]:
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        messages.append({"role": "user", "content": task.payload})
        return {
            "model": self.model,
            "messages": messages,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }

    async def execute(self, task: Task) -> AttemptResult:
        started = time.perf_counter()
        failed = functools.partial(self.failure, started)
        try:
            response = await self._client().post("chat/completions", json=self._body(task))
        except httpx.TimeoutException:
            return failed(ErrorType.TIMEOUT, f"no answer from {self.base_url} within {self.timeout_seconds:g} s")
        except httpx.TransportError as exc:
            return failed(ErrorType.CONNECTION, f"cannot reach {self.base_url}: {type(exc).__name__}: {exc}")
        if response.status_code >= 400:
            error = error_type_for_status(response.status_code)
            detail = _error_detail(response)
            retry_after = _retry_after(response)
            extra = {"status_code": response.status_code}
            if retry_after is not None:
                extra["retry_after_seconds"] = retry_after
            return failed(error, f"HTTP {response.status_code} from {self.model}: {detail}", **extra)
        try:
            body = response.json()
            output = body["choices"][0]["message"]["content"] or ""
            usage = body.get("usage") or {}
            input_tokens = int(usage.get("prompt_tokens", 0))
            output_tokens = int(usage.get("completion_tokens", 0))
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return failed(ErrorType.MALFORMED_RESPONSE, f"unreadable completion from {self.model}: {exc!r}")
        duration_ms = (time.perf_counter() - started) * 1000
        return AttemptResult(
            target=self.target_name,
            ok=True,
            output=output,
            duration_ms=duration_ms,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost=self.price.cost(input_tokens, output_tokens, duration_ms / 1000),
        )

    async def aclose(self) -> None:
        clients = list(self._clients.values())
        self._clients.clear()
        for client in clients:
            await client.aclose()


def error_type_for_status(status: int) -> ErrorType:
    if status == 429:
        return ErrorType.RATE_LIMITED
    if status in (401, 403):
        return ErrorType.AUTH
    if status == 408:
        return ErrorType.TIMEOUT
    if status >= 500:
        return ErrorType.SERVER_ERROR
    return ErrorType.CLIENT_ERROR


def _error_detail(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])[:500]
    except (ValueError, KeyError, TypeError):
        return response.text[:500] or response.reason_phrase


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None
