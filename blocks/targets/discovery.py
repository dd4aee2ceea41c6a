"""HTTP targets for the providers a user holds API keys for, found in the environment.

One table holds each provider's OpenAI-compatible endpoint, the variables its key may be in, and the
default models with their list prices (USD per 1k tokens, as published by each provider in 2025; edit
the table or the saved blocks when they change). Keys go into the blocks as SecretStr, which pydantic
and Prefect mask in repr, logs and JSON; with `reference_keys=True` a block only names the variable.

Any other OpenAI-compatible server (vLLM, Ollama, the local fleet) is added with
ADAPTIVE_ROUTER_OPENAI_BASE_URL, a comma-separated ADAPTIVE_ROUTER_OPENAI_MODELS and, if it needs
one, ADAPTIVE_ROUTER_OPENAI_API_KEY.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import SecretStr

from blocks.targets.http import OpenAICompatibleTarget
from routing.errors import ConfigError
from routing.models import Price

CUSTOM_BASE_URL_ENV = "ADAPTIVE_ROUTER_OPENAI_BASE_URL"
CUSTOM_MODELS_ENV = "ADAPTIVE_ROUTER_OPENAI_MODELS"
CUSTOM_KEY_ENV = "ADAPTIVE_ROUTER_OPENAI_API_KEY"
CUSTOM_PRICES_ENV = "ADAPTIVE_ROUTER_OPENAI_PRICES"  # "model=input/output,..." dollars per 1k tokens
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.:\-]")  # target names allow these only; models may hold '/'


@dataclass(frozen=True)
class ModelDefault:
    model: str
    tier: str
    input_per_1k: float
    output_per_1k: float


@dataclass(frozen=True)
class Provider:
    name: str
    key_envs: tuple[str, ...]
    base_url: str
    models: tuple[ModelDefault, ...]


PROVIDERS: tuple[Provider, ...] = (
    Provider(
        "openai",
        ("OPENAI_API_KEY",),
        "https://api.openai.com/v1",
        (
            ModelDefault("gpt-4o-mini", "small", 0.00015, 0.0006),
            ModelDefault("gpt-4o", "premium", 0.0025, 0.01),
        ),
    ),
    Provider(
        "anthropic",
        ("ANTHROPIC_API_KEY",),
        "https://api.anthropic.com/v1",
        (
            ModelDefault("claude-haiku-4-5", "small", 0.001, 0.005),
            ModelDefault("claude-sonnet-4-5", "premium", 0.003, 0.015),
        ),
    ),
    Provider(
        "groq",
        ("GROQ_API_KEY",),
        "https://api.groq.com/openai/v1",
        (
            ModelDefault("llama-3.1-8b-instant", "small", 0.00005, 0.00008),
            ModelDefault("llama-3.3-70b-versatile", "standard", 0.00059, 0.00079),
        ),
    ),
    Provider(
        "gemini",
        ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
        "https://generativelanguage.googleapis.com/v1beta/openai",
        (
            ModelDefault("gemini-2.0-flash", "small", 0.0001, 0.0004),
            ModelDefault("gemini-2.5-pro", "premium", 0.00125, 0.01),
        ),
    ),
)


def has_provider_keys(environ: Mapping[str, str] | None = None) -> bool:
    """Whether `environ` (default os.environ) names any provider key or a custom endpoint."""
    env = os.environ if environ is None else environ
    names = [name for provider in PROVIDERS for name in provider.key_envs] + [CUSTOM_BASE_URL_ENV]
    return any(env.get(name, "").strip() for name in names)


def discover_targets(
    environ: Mapping[str, str] | None = None, *, reference_keys: bool = False
) -> list[OpenAICompatibleTarget]:
    """Targets for every provider with a non-empty key in `environ` (default os.environ), then the custom
    endpoint if configured; cheapest model of each provider first."""
    env = os.environ if environ is None else environ
    targets: list[OpenAICompatibleTarget] = []
    for provider in PROVIDERS:
        key_env = next((name for name in provider.key_envs if env.get(name, "").strip()), None)
        if key_env is None:
            continue
        for default in provider.models:
            targets.append(
                OpenAICompatibleTarget(
                    target_name=f"{provider.name}:{default.model}",
                    base_url=provider.base_url,
                    model=default.model,
                    tier=default.tier,
                    price=Price(
                        input_per_1k_tokens=default.input_per_1k, output_per_1k_tokens=default.output_per_1k
                    ),
                    **_key(env, key_env, reference_keys),
                )
            )
    targets.extend(_custom_targets(env, reference_keys))
    return targets


def _key(env: Mapping[str, str], name: str, reference: bool) -> dict[str, object]:
    return {"api_key_env": name} if reference else {"api_key": SecretStr(env[name].strip())}


def _custom_targets(env: Mapping[str, str], reference_keys: bool) -> list[OpenAICompatibleTarget]:
    base_url = env.get(CUSTOM_BASE_URL_ENV, "").strip()
    models = list(dict.fromkeys(m.strip() for m in env.get(CUSTOM_MODELS_ENV, "").split(",") if m.strip()))
    if not base_url and not models:
        return []
    if not base_url:
        raise ValueError(
            f"{CUSTOM_MODELS_ENV} is set but {CUSTOM_BASE_URL_ENV} is not: where do the models live?"
        )
    if not models:
        raise ValueError(f"{CUSTOM_BASE_URL_ENV} is set but {CUSTOM_MODELS_ENV} (comma-separated) is empty")
    key = _key(env, CUSTOM_KEY_ENV, reference_keys) if env.get(CUSTOM_KEY_ENV, "").strip() else {}
    prices = _custom_prices(env.get(CUSTOM_PRICES_ENV, ""))
    unpriced = [m for m in models if m not in prices]
    if unpriced:
        example = ",".join(f"{m}=0.0005/0.0015" for m in unpriced)
        raise ConfigError(
            f"no price for custom model(s) {', '.join(unpriced)}: set {CUSTOM_PRICES_ENV}='{example}' "
            "(dollars per 1k input/output tokens; 0/0 for a free local model), or cost-aware routing would "
            "treat them as free"
        )
    return [
        OpenAICompatibleTarget(
            target_name=f"custom:{_NAME_UNSAFE.sub('-', model)}", base_url=base_url, model=model,
            price=prices[model], **key,
        )
        for model in models
    ]


def _custom_prices(text: str) -> dict[str, Price]:
    """`model=input/output,...` (dollars per 1k tokens) as prices by model name."""
    prices = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        model, _, pair = entry.rpartition("=")
        try:
            input_price, output_price = (float(x) for x in pair.split("/"))
            prices[model.strip()] = Price(input_per_1k_tokens=input_price, output_per_1k_tokens=output_price)
        except ValueError as exc:
            raise ConfigError(f"{CUSTOM_PRICES_ENV}: {entry!r} is not model=input/output ({exc})") from exc
    return prices
