"""Target discovery from a fake environment: which providers, which models and prices, and no key leaks."""

import re

import httpx
import pytest
from targets_support import run

from blocks.targets.discovery import PROVIDERS, discover_targets
from routing.models import Task

SECRET = "sk-test-DO-NOT-LEAK-1234567890"


def names(targets):
    return [t.target_name for t in targets]


def test_nothing_without_keys():
    assert discover_targets({}) == []
    assert discover_targets({"OPENAI_API_KEY": "   ", "PATH": "/bin"}) == []


def test_one_target_per_default_model_of_each_keyed_provider():
    targets = discover_targets({"OPENAI_API_KEY": SECRET, "GROQ_API_KEY": "gsk"})
    assert names(targets) == [
        "openai:gpt-4o-mini",
        "openai:gpt-4o",
        "groq:llama-3.1-8b-instant",
        "groq:llama-3.3-70b-versatile",
    ]
    mini = targets[0]
    assert (
        mini.base_url == "https://api.openai.com/v1" and mini.model == "gpt-4o-mini" and mini.tier == "small"
    )
    assert mini.price.input_per_1k_tokens == 0.00015 and mini.price.output_per_1k_tokens == 0.0006
    assert mini.api_key.get_secret_value() == SECRET


def test_every_provider_is_found_by_its_key():
    env = {name: f"key-{provider.name}" for provider in PROVIDERS for name in provider.key_envs[:1]}
    targets = discover_targets(env)
    assert {t.target_name.split(":")[0] for t in targets} == {p.name for p in PROVIDERS}
    anthropic = next(t for t in targets if t.target_name.startswith("anthropic:"))
    assert anthropic.base_url == "https://api.anthropic.com/v1"
    assert all(t.price.output_per_1k_tokens >= t.price.input_per_1k_tokens > 0 for t in targets)


def test_gemini_accepts_google_api_key():
    targets = discover_targets({"GOOGLE_API_KEY": "g"})
    assert names(targets) == ["gemini:gemini-2.0-flash", "gemini:gemini-2.5-pro"]
    assert targets[0].base_url.startswith("https://generativelanguage.googleapis.com/")


def test_custom_openai_compatible_endpoint():
    env = {
        "ADAPTIVE_ROUTER_OPENAI_BASE_URL": "http://127.0.0.1:8000/v1",
        "ADAPTIVE_ROUTER_OPENAI_MODELS": "small, meta-llama/Llama-3-8B,small,",
        "ADAPTIVE_ROUTER_OPENAI_PRICES": "small=0/0, meta-llama/Llama-3-8B=0.0002/0.0006",
    }
    targets = discover_targets(env)
    assert names(targets) == ["custom:small", "custom:meta-llama-Llama-3-8B"]
    assert targets[1].model == "meta-llama/Llama-3-8B"
    assert targets[0].api_key is None and targets[0].price.cost(1000, 1000) == 0
    assert targets[1].price.cost(1000, 1000) == pytest.approx(0.0008)


@pytest.mark.parametrize(
    ("prices", "message"),
    [
        ("", "no price for custom model(s) m: set ADAPTIVE_ROUTER_OPENAI_PRICES='m=0.0005/0.0015'"),
        ("m=cheap", "'m=cheap' is not model=input/output"),
        ("m=-1/0", "input_per_1k_tokens"),
    ],
)
def test_a_custom_endpoint_needs_a_price_per_model(prices, message):
    env = {"ADAPTIVE_ROUTER_OPENAI_BASE_URL": "http://x/v1", "ADAPTIVE_ROUTER_OPENAI_MODELS": "m",
           "ADAPTIVE_ROUTER_OPENAI_PRICES": prices}
    with pytest.raises(ValueError, match=re.escape(message)):
        discover_targets(env)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ADAPTIVE_ROUTER_OPENAI_BASE_URL": "http://x/v1"}, "ADAPTIVE_ROUTER_OPENAI_MODELS"),
        ({"ADAPTIVE_ROUTER_OPENAI_MODELS": "a"}, "ADAPTIVE_ROUTER_OPENAI_BASE_URL is not"),
    ],
)
def test_half_configured_custom_endpoint_is_an_error_naming_the_variable(env, message):
    with pytest.raises(ValueError, match=message):
        discover_targets(env)


def test_keys_never_appear_in_repr_or_json():
    env = {
        "OPENAI_API_KEY": SECRET,
        "ADAPTIVE_ROUTER_OPENAI_BASE_URL": "http://127.0.0.1:1/v1",
        "ADAPTIVE_ROUTER_OPENAI_MODELS": "m",
        "ADAPTIVE_ROUTER_OPENAI_PRICES": "m=0.001/0.002",
        "ADAPTIVE_ROUTER_OPENAI_API_KEY": SECRET,
    }
    for target in discover_targets(env):
        for text in (repr(target), str(target), target.model_dump_json(), str(target.model_dump())):
            assert SECRET not in text
        assert SECRET not in repr(target.descriptor())


def test_reference_keys_store_only_the_variable_name():
    targets = discover_targets({"GEMINI_API_KEY": SECRET}, reference_keys=True)
    assert all(t.api_key is None and t.api_key_env == "GEMINI_API_KEY" for t in targets)


def test_discovered_key_is_sent_as_bearer():
    """The key reaches the provider in the Authorization header (captured by a mock transport, no network)."""
    seen = {}

    def answer(request: httpx.Request) -> httpx.Response:
        seen["auth"] = request.headers.get("authorization")
        seen["url"] = str(request.url)
        body = {
            "choices": [{"message": {"content": "hi"}}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 1000},
        }
        return httpx.Response(200, json=body)

    target = discover_targets({"GROQ_API_KEY": SECRET})[0].use_transport(httpx.MockTransport(answer))
    result = run(target, target.execute(Task(task_type="qa", payload="hello")))
    assert result.ok and seen["auth"] == f"Bearer {SECRET}"
    assert seen["url"] == "https://api.groq.com/openai/v1/chat/completions"
    assert result.cost == pytest.approx(0.00005 + 0.00008)
