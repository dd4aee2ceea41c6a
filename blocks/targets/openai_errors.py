"""Classify the exceptions of the openai SDK, which the Agno and LlamaIndex adapters both call through.

Frameworks wrap the SDK's exception in their own (agno's ModelProviderError, tenacity's RetryError), so
the chain of causes is searched for the SDK's exception, which knows the status code and headers.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import openai

from blocks.targets.http import error_type_for_status
from routing.models import ErrorType


def causes(exc: BaseException) -> list[BaseException]:
    """`exc` and everything it was raised from or while handling, outermost first.

    Both links are followed: agno re-raises a classified copy `from` the original, whose own context
    holds the SDK's exception, and such chains can loop back on themselves.
    """
    chain: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if any(current is seen for seen in chain):
            continue
        chain.append(current)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return chain


def classify(exc: BaseException) -> tuple[ErrorType, str, dict[str, Any]]:
    """Error type, message and metadata (status code, Retry-After) of a failed model or embedding call."""
    message = f"{type(exc).__name__}: {exc}"
    for cause in causes(exc):
        if isinstance(cause, openai.APITimeoutError):
            return ErrorType.TIMEOUT, message, {}
        if isinstance(cause, openai.APIConnectionError):
            return ErrorType.CONNECTION, message, {}
        if isinstance(cause, openai.APIStatusError):
            return error_type_for_status(cause.status_code), f"HTTP {cause.status_code}: {exc}", _status_metadata(cause)
        if isinstance(cause, json.JSONDecodeError | openai.APIResponseValidationError):
            return ErrorType.MALFORMED_RESPONSE, message, {}
    return ErrorType.TARGET_ERROR, message, {}


def _status_metadata(error: openai.APIStatusError) -> dict[str, Any]:
    metadata: dict[str, Any] = {"status_code": error.status_code}
    with contextlib.suppress(KeyError, ValueError):
        metadata["retry_after_seconds"] = float(error.response.headers["retry-after"])
    return metadata
