"""An OpenAI-compatible server whose models are simulations with known quality, latency and failures.

It speaks the chat-completions wire format faithfully (errors included) so that the openai SDK, agno and
llama-index clients work against it unchanged, and so a real endpoint can replace it without code changes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import random
import re
import struct
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from blocks.fleet.config import FleetConfig, ModelSpec
from blocks.fleet.embeddings import DIMENSIONS, embed
from blocks.fleet.knowledge import correct_reply, detect_category, generic_reply, lookup, wrong_reply
from routing.models import FINITE

OWNER = "adaptive-router-fleet"
_MEMBER_ID = re.compile(r'\bid="([^"]+)"')
# What a 'malformed' outage sends: a 200 whose JSON stops half-way, as a proxy cutting the stream would.
_TRUNCATED_BODY = '{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"message": '

# --- request bodies: unknown parameters are ignored, as OpenAI keeps adding them -------------------


class ChatMessage(BaseModel):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.get("text", "") for part in self.content if part.get("type") == "text")
        return self.content or ""


class FunctionDef(BaseModel):
    name: str = Field(min_length=1)
    parameters: dict[str, Any] = Field(default_factory=dict)


class ToolDef(BaseModel):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(BaseModel):
    name: str


class NamedToolChoice(BaseModel):
    type: Literal["function"]
    function: NamedFunction


class ChatRequest(BaseModel):

    model_config = ConfigDict(**FINITE)
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: PositiveInt | None = None
    max_completion_tokens: PositiveInt | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    tools: list[ToolDef] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    stream: bool = False

    @model_validator(mode="after")
    def _named_tool_is_offered(self) -> ChatRequest:
        if isinstance(self.tool_choice, NamedToolChoice):
            offered = [t.function.name for t in self.tools or []]
            if self.tool_choice.function.name not in offered:
                raise ValueError(
                    f"tool_choice names function {self.tool_choice.function.name!r}, "
                    f"which is not among the offered tools ({', '.join(offered) or 'none'})"
                )
        return self

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(BaseModel):
    """The legacy completions endpoint, which llama-index's OpenAILike uses unless is_chat_model=True."""

    model_config = ConfigDict(**FINITE)

    model: str
    prompt: str
    max_tokens: PositiveInt | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    stream: bool = False


class EmbeddingRequest(BaseModel):
    model: str
    input: str | Annotated[list[str], Field(min_length=1)]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: PositiveInt | None = None


# --- per-model simulation ---------------------------------------------------------------------------


@dataclass
class _ModelState:
    """A model's request counter (outages are scheduled on it) and its own seeded random stream."""

    spec: ModelSpec
    rng: random.Random
    requests: int = 0


@dataclass(frozen=True)
class _Reply:
    text: str
    finish_reason: str
    completion_tokens: int


def _error(
    status: int, message: str, type_: str, code: str | None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _tokens(chars: int) -> int:
    return math.ceil(chars / 4)


def _rate_limited(spec: ModelSpec) -> JSONResponse:
    return _error(
        429,
        f"Rate limit reached for {spec.name}; retry after {spec.retry_after_seconds}s",
        "requests",
        "rate_limit_exceeded",
        headers={"Retry-After": str(spec.retry_after_seconds)},
    )


async def _misbehave(state: _ModelState, hang_seconds: float) -> Response | None:
    """Count the call, then apply a scheduled outage or a random failure, else wait out the model's
    latency. Returns the failure response, or None when the call should be answered."""
    spec, number = state.spec, state.requests
    state.requests += 1
    outage = spec.outage_at(number)
    if outage is not None:
        if outage.mode == "error":
            return _error(503, f"{spec.name} is unavailable (outage)", "server_error", "service_unavailable")
        if outage.mode == "rate_limit":
            return _rate_limited(spec)
        if outage.mode == "malformed":
            return Response(_TRUNCATED_BODY, media_type="application/json")
        await asyncio.sleep(hang_seconds)
    roll = state.rng.random()
    if roll < spec.error_rate:
        return _error(500, f"{spec.name} had an error while processing the request", "server_error", None)
    if roll < spec.error_rate + spec.rate_limit_rate:
        return _rate_limited(spec)
    await asyncio.sleep(state.rng.lognormvariate(math.log(spec.latency.median_ms), spec.latency.sigma) / 1000)
    return None


def _answer(state: _ModelState, prompt: str, limit: int | None) -> _Reply:
    """Right with the model's quality for the prompt's category, else plausibly wrong; cut at `limit`."""
    entry = lookup(prompt)
    category = entry.category if entry else detect_category(prompt)
    right = state.rng.random() < state.spec.quality_for(category)
    if entry is None:
        text = generic_reply(prompt, category, right)
    else:
        text = correct_reply(entry) if right else wrong_reply(entry, state.rng)
    tokens = _tokens(len(text)) + state.spec.verbosity
    if limit is not None and tokens > limit:
        return _Reply(text[: limit * 4], "length", limit)
    return _Reply(text, "stop", tokens)


def _tool_to_call(body: ChatRequest) -> FunctionDef | None:
    """The function to call, if the model should call one now: tools are offered and none has
    answered since the user last spoke."""
    if not body.tools or body.tool_choice == "none":
        return None
    last_user = max((i for i, m in enumerate(body.messages) if m.role == "user"), default=-1)
    if any(m.role == "tool" for m in body.messages[last_user + 1 :]):
        return None
    if isinstance(body.tool_choice, NamedToolChoice):
        return next(t.function for t in body.tools if t.function.name == body.tool_choice.function.name)
    return body.tools[0].function


def _arguments(schema: dict[str, Any], prompt: str, member_id: str | None) -> dict[str, Any]:
    properties = schema.get("properties") or {}
    names = [*properties, *(r for r in schema.get("required", []) if r not in properties)]
    return {name: _argument(name, properties.get(name, {}), prompt, member_id) for name in names}


def _argument(name: str, schema: dict[str, Any], prompt: str, member_id: str | None) -> Any:
    """A value that fits the schema: strings carry the prompt, except an `*_id` string, which takes the
    first `id="..."` listed in the system prompt (how an agno Team leader names the member to use)."""
    if schema.get("enum"):
        return schema["enum"][0]
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        chosen = next((o for o in options if o.get("type") != "null"), options[0])
        return _argument(name, chosen, prompt, member_id)
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "string":
        return member_id if member_id and (name == "id" or name.endswith("_id")) else prompt
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    if kind == "object":
        return _arguments(schema, prompt, member_id)
    return {"boolean": False, "array": []}.get(kind)


def _tool_call(body: ChatRequest, function: FunctionDef, prompt: str) -> dict[str, Any]:
    system = " ".join(m.text for m in body.messages if m.role in ("system", "developer"))
    member = _MEMBER_ID.search(system)
    arguments = _arguments(function.parameters, prompt, member.group(1) if member else None)
    return {
        "id": f"call_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {"name": function.name, "arguments": json.dumps(arguments)},
    }


# --- the app ----------------------------------------------------------------------------------------


def create_app(config: FleetConfig) -> FastAPI:
    """A fresh app with fresh request counters and random streams seeded from `config.seed`."""
    app = FastAPI(title="adaptive-router fleet", docs_url=None, redoc_url=None, openapi_url=None)
    created = int(time.time())
    states = {
        spec.name: _ModelState(spec, random.Random(f"{config.seed}:{spec.name}")) for spec in config.models
    }

    @app.exception_handler(RequestValidationError)
    async def _bad_body(_request: Any, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'] if p != 'body') or 'body'}: {err['msg']}"
            for err in exc.errors()
        )
        return _error(400, f"Invalid request: {problems}", "invalid_request_error", "invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Any, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), "invalid_request_error", None)

    def state_of(model: str) -> _ModelState | JSONResponse:
        if model in states:
            return states[model]
        return _error(
            404,
            f"The model {model!r} does not exist on this fleet; known models: {', '.join(states)}",
            "invalid_request_error",
            "model_not_found",
        )

    def model_card(spec: ModelSpec) -> dict[str, Any]:
        return {
            "id": spec.name,
            "object": "model",
            "created": created,
            "owned_by": OWNER,
            "tier": spec.tier,
            "price": spec.price.model_dump(),
        }

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "models": list(states)}

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card(s.spec) for s in states.values()]}

    @app.get("/v1/models/{model}", response_model=None)
    async def get_model(model: str) -> dict[str, Any] | JSONResponse:
        state = state_of(model)
        return state if isinstance(state, JSONResponse) else model_card(state.spec)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(body: ChatRequest) -> dict[str, Any] | Response:
        if body.stream:
            return _unsupported_stream()
        state = state_of(body.model)
        if isinstance(state, JSONResponse):
            return state
        if failure := await _misbehave(state, config.hang_seconds):
            return failure
        prompt = next((m.text for m in reversed(body.messages) if m.role == "user"), "")
        function = _tool_to_call(body)
        if function is not None:
            call = _tool_call(body, function, prompt)
            message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
            tokens = _tokens(len(call["function"]["arguments"])) + state.spec.verbosity
            reply = _Reply("", "tool_calls", tokens)
        else:
            reply = _answer(state, prompt, body.token_limit)
            message = {"role": "assistant", "content": reply.text}
        prompt_tokens = _tokens(sum(len(m.text) for m in body.messages))
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.model,
            "choices": [
                {"index": 0, "message": message, "finish_reason": reply.finish_reason, "logprobs": None}
            ],
            "usage": _usage(prompt_tokens, reply.completion_tokens),
        }

    @app.post("/v1/completions", response_model=None)
    async def complete(body: CompletionRequest) -> dict[str, Any] | Response:
        if body.stream:
            return _unsupported_stream()
        state = state_of(body.model)
        if isinstance(state, JSONResponse):
            return state
        if failure := await _misbehave(state, config.hang_seconds):
            return failure
        reply = _answer(state, body.prompt, body.max_tokens)
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": body.model,
            "choices": [
                {"index": 0, "text": reply.text, "finish_reason": reply.finish_reason, "logprobs": None}
            ],
            "usage": _usage(_tokens(len(body.prompt)), reply.completion_tokens),
        }

    @app.post("/v1/embeddings")
    async def embeddings(body: EmbeddingRequest) -> dict[str, Any]:
        texts = [body.input] if isinstance(body.input, str) else body.input
        dimensions = body.dimensions or DIMENSIONS
        vectors = [_encode(embed(text, dimensions), body.encoding_format) for text in texts]
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
        tokens = _tokens(sum(len(t) for t in texts))
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return {"object": "list", "data": data, "model": body.model, "usage": usage}

    return app


def _unsupported_stream() -> JSONResponse:
    return _error(
        400,
        "Streaming is not supported by this server; send stream=false",
        "invalid_request_error",
        "unsupported_parameter",
    )


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _encode(vector: list[float], encoding_format: str) -> list[float] | str:
    """`base64` is little-endian float32, which the openai SDK requests by default and decodes."""
    if encoding_format == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
