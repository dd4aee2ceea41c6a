"""The OpenAI chat-completions wire format: requests in, completions and SSE chunks out.

`model` says how to route: `router` with the runtime's policy, `router/<task_type>` with that task
type, any target name straight to that target. The messages become the task's payload (one user
message as it is; a conversation as `role: content` lines), since targets take one prompt. Sampling
options are accepted for compatibility but each target keeps its own settings.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from routing.errors import ConfigError
from routing.models import RoutedResult, Task

ROUTER_MODEL = "router"
DEFAULT_TASK_TYPE = "chat"
CHUNK_CHARS = 64  # characters of the answer per streamed chunk


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(str(part.get("text", "")) for part in self.content if part.get("type") == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatRequest(BaseModel):
    """The fields the gateway reads; the rest of OpenAI's are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    metadata: dict[str, Any] | None = None


def route_of(model: str) -> tuple[str | None, str]:
    """(the named target or None to route, the task type) for a request's `model`."""
    if model == ROUTER_MODEL:
        return None, DEFAULT_TASK_TYPE
    if model.startswith(ROUTER_MODEL + "/"):
        task_type = model.removeprefix(ROUTER_MODEL + "/").strip()
        if not task_type:
            raise ConfigError("model 'router/' needs a task type after the slash, e.g. router/codegen")
        return None, task_type
    return model, DEFAULT_TASK_TYPE


def payload_of(messages: list[Message]) -> str:
    if len(messages) == 1 and messages[0].role == "user":
        return messages[0].text()
    return "\n".join(f"{m.role}: {m.text()}" for m in messages if m.text())


def task_of(request: ChatRequest, session_id: str | None = None) -> tuple[Task, str | None]:
    """The task to route and the target the request named, if any."""
    target, task_type = route_of(request.model)
    payload = payload_of(request.messages)
    if not payload.strip():
        raise ConfigError("the messages have no text to send")
    metadata = {"source": "gateway", **({"user": request.user} if request.user else {})}
    return Task(task_type=task_type, payload=payload, session_id=session_id, metadata=metadata), target


def usage(result: RoutedResult) -> dict[str, int]:
    winner = next(a for a in result.attempts if a.success)
    return {"prompt_tokens": winner.input_tokens, "completion_tokens": winner.output_tokens,
            "total_tokens": winner.input_tokens + winner.output_tokens}  # fmt: skip


def completion(result: RoutedResult, model: str) -> dict[str, Any]:
    return {
        "id": result.task_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": result.output or ""},
                     "finish_reason": "stop", "logprobs": None}],
        "usage": usage(result),
    }


def stream(result: RoutedResult, model: str, include_usage: bool = False) -> Iterator[str]:
    """Server-sent events of a finished answer: role, the text in pieces, the stop, usage if asked, [DONE].

    The answer streams once the routed call has succeeded: fallback needs the whole attempt.
    """
    created = int(time.time())

    def event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        body = {"id": result.task_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}  # fmt: skip
        return f"data: {json.dumps(body)}\n\n"

    yield event({"role": "assistant", "content": ""})
    text = result.output or ""
    for start in range(0, len(text), CHUNK_CHARS):
        yield event({"content": text[start : start + CHUNK_CHARS]})
    yield event({}, "stop")
    if include_usage:
        body = {"id": result.task_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [], "usage": usage(result)}  # fmt: skip
        yield f"data: {json.dumps(body)}\n\n"
    yield "data: [DONE]\n\n"


def error_body(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape, so its client raises the matching exception with our message."""
    return {"error": {"message": message, "type": kind, "code": code, "param": None}}


def models(names: list[tuple[str, str | None]], created: int) -> dict[str, Any]:
    """`/v1/models`: the router, and every target (owned by its tier)."""
    data = [{"id": ROUTER_MODEL, "object": "model", "created": created, "owned_by": "adaptive-router"}]
    data += [{"id": name, "object": "model", "created": created, "owned_by": tier or "target"} for name, tier in names]
    return {"object": "list", "data": data}

