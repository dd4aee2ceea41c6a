"""The local provider fleet, exercised over real loopback HTTP with the clients the project uses.

`fleet` (tests/conftest.py) is the shared stable fleet; tests that count requests start their own.
"""

from __future__ import annotations

import json
import math
import random
import socket
import threading

import httpx
import openai
import pytest

from blocks.fleet import (
    DEFAULT_FLEET_PATH,
    STABLE_FLEET_PATH,
    FleetConfig,
    FleetConfigError,
    FleetServer,
    Latency,
    ModelSpec,
    Outage,
    generate_tasks,
    load_bank,
    load_fleet_config,
    lookup,
)
from blocks.fleet.knowledge import correct_reply, wrong_reply
from routing.models import Category

pytestmark = pytest.mark.integration

FAST = Latency(median_ms=1, sigma=0)


def _fleet(*models: ModelSpec, seed: int = 0, hang_seconds: float = 30) -> FleetConfig:
    return FleetConfig(seed=seed, hang_seconds=hang_seconds, models=models)


def _client(server: FleetServer, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, **kwargs)


def _ask(client: openai.OpenAI, model: str, prompt: str) -> str:
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}])
    return reply.choices[0].message.content or ""


# --- the wire format -------------------------------------------------------------------------------


def test_openai_sdk_chat_returns_answer_and_usage(fleet: FleetServer) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 37 + 58?"}]
    reply = _client(fleet).chat.completions.create(model="premium", messages=messages, max_tokens=200)

    assert reply.id.startswith("chatcmpl-") and reply.object == "chat.completion" and reply.created > 0
    assert reply.model == "premium"
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason == "stop"
    assert reply.usage.prompt_tokens == math.ceil(len("Be brief.What is 37 + 58?") / 4)
    premium = load_fleet_config(STABLE_FLEET_PATH).model("premium")
    assert reply.usage.completion_tokens == math.ceil(len(choice.message.content) / 4) + premium.verbosity
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_max_tokens_cuts_the_reply(fleet: FleetServer) -> None:
    messages = [{"role": "user", "content": "Tell me about the weather in spring."}]
    reply = _client(fleet).chat.completions.create(model="small", messages=messages, max_tokens=2)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 2 and len(reply.choices[0].message.content) <= 8


def test_models_list_publishes_prices(fleet: FleetServer) -> None:
    models = {m.id: m.model_extra for m in _client(fleet).models.list().data}
    assert set(models) == {"small", "mid", "premium", "mathcoder"}
    output_price = {name: extra["price"]["output_per_1k_tokens"] for name, extra in models.items()}
    assert output_price["premium"] > output_price["small"]
    assert models["mathcoder"]["tier"] == "specialist"


def test_unknown_model_is_404_naming_it(fleet: FleetServer) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        _ask(_client(fleet), "gpt-nonexistent", "hello")
    error = caught.value.body
    assert error["code"] == "model_not_found"
    assert "'gpt-nonexistent'" in error["message"] and "premium" in error["message"]


_HELLO = {"model": "small", "messages": [{"role": "user", "content": "x"}]}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{not json", "JSON decode error"),
        ({"model": "small"}, "messages: Field required"),
        ({"model": "small", "messages": [{"role": "robot"}]}, "messages.0.role"),
        ({**_HELLO, "stream": True}, "Streaming is not supported"),
        ({**_HELLO, "tool_choice": {"type": "function", "function": {"name": "f"}}}, "names function 'f'"),
    ],
)
def test_bad_requests_get_openai_shaped_400(fleet: FleetServer, body: str | dict, expected: str) -> None:
    content = body if isinstance(body, str) else json.dumps(body)
    response = httpx.post(
        f"{fleet.base_url}/chat/completions", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert expected in error["message"] and error["type"] == "invalid_request_error"


# --- simulated behaviour ---------------------------------------------------------------------------


def test_quality_per_category_is_respected() -> None:
    model = ModelSpec(name="uneven", latency=FAST, quality={Category.MATH: 0.9, Category.LANGUAGE: 0.2})
    with FleetServer(_fleet(model, seed=3)) as server:
        client = _client(server)
        rng = random.Random(5)
        sums = [lookup(f"What is {rng.randint(2, 99)} + {rng.randint(2, 99)}?") for _ in range(200)]
        math_right = sum(q.answer in _ask(client, "uneven", q.prompt) for q in sums)
        language = [e for e in load_bank() if e.category is Category.LANGUAGE]
        language_right = sum(
            (e := language[i % len(language)]).answer.lower() in _ask(client, "uneven", e.prompt).lower()
            for i in range(200)
        )
    assert 160 <= math_right <= 195
    assert 20 <= language_right <= 65


def test_same_seed_reproduces_replies() -> None:
    def replies() -> list[str]:
        model = ModelSpec(name="coin", latency=FAST, default_quality=0.5)
        with FleetServer(_fleet(model, seed=42)) as server:
            client = _client(server)
            return [_ask(client, "coin", task.prompt) for task in generate_tasks(20, seed=1)]

    first = replies()
    assert first == replies()
    assert len(set(first)) > 5


def test_outages_follow_request_count() -> None:
    model = ModelSpec(
        name="broken",
        latency=FAST,
        default_quality=1.0,
        retry_after_seconds=7,
        outages=(
            Outage(start_request=0, end_request=2, mode="error"),
            Outage(start_request=2, end_request=3, mode="malformed"),
            Outage(start_request=3, end_request=4, mode="rate_limit"),
            Outage(start_request=4, end_request=5, mode="hang"),
        ),
    )
    body = {"model": "broken", "messages": [{"role": "user", "content": "What is 2 + 2?"}]}
    with FleetServer(_fleet(model, hang_seconds=1.0)) as server:
        url = f"{server.base_url}/chat/completions"
        with httpx.Client(timeout=5) as http:
            statuses = [http.post(url, json=body).status_code for _ in range(2)]
            malformed = http.post(url, json=body)
            limited = http.post(url, json=body)
            with pytest.raises(httpx.ReadTimeout):
                http.post(url, json=body, timeout=0.3)
            recovered = http.post(url, json=body)

    assert statuses == [503, 503]
    assert malformed.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        malformed.json()
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert recovered.status_code == 200 and "4" in recovered.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize(
    ("field", "error"),
    [("error_rate", openai.InternalServerError), ("rate_limit_rate", openai.RateLimitError)],
)
def test_random_failures_use_their_rate(field: str, error: type[openai.APIError]) -> None:
    model = ModelSpec(name="doomed", latency=FAST, **{field: 1.0})
    with FleetServer(_fleet(model)) as server, pytest.raises(error):
        _ask(_client(server), "doomed", "hello")


def test_tool_call_round_trip(fleet: FleetServer) -> None:
    tools = [{
        "type": "function",
        "function": {
            "name": "search",
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string"},
                    "unit": {"type": "string", "enum": ["metric", "imperial"]},
                    "limit": {"type": "integer"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["query", "unit"],
            },
        },
    }]
    prompt = "What is the capital of France?"
    messages = [{"role": "user", "content": prompt}]
    client = _client(fleet)

    first = client.chat.completions.create(model="premium", messages=messages, tools=tools)
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]
    assert call.function.name == "search"
    assert json.loads(call.function.arguments) == {"query": prompt, "unit": "metric", "limit": 0, "tags": []}

    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Paris is the capital of France."},
    ]
    second = client.chat.completions.create(model="premium", messages=messages, tools=tools)
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content and not second.choices[0].message.tool_calls

    plain = client.chat.completions.create(
        model="premium", messages=messages[:1], tools=tools, tool_choice="none"
    )
    assert plain.choices[0].finish_reason == "stop"


def test_agno_team_leader_delegates_to_a_member(fleet: FleetServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGNO_TELEMETRY", "false")
    from agno.agent import Agent
    from agno.models.openai.like import OpenAILike
    from agno.team import Team

    def model(name: str) -> OpenAILike:
        return OpenAILike(id=name, base_url=fleet.base_url, api_key="unused")

    member = Agent(name="Math", id="math-agent", model=model("mathcoder"), telemetry=False)
    team = Team(name="Desk", members=[member], model=model("premium"), telemetry=False)
    run = team.run("What is 12 * 11?")

    assert [r.agent_id for r in run.member_responses] == ["math-agent"]
    assert run.content


# --- embeddings ------------------------------------------------------------------------------------


def test_embeddings_are_deterministic_unit_vectors_that_rank_by_overlap(fleet: FleetServer) -> None:
    client = _client(fleet)
    texts = ["capital city of France", "Paris is the capital of France", "binary search runs in log time"]
    as_floats = client.embeddings.create(model="any-name", input=texts, encoding_format="float")
    as_base64 = client.embeddings.create(model="other", input=texts)  # the SDK's default encoding
    first = [d.embedding for d in as_floats.data]
    again = [d.embedding for d in as_base64.data]

    assert all(len(v) == 384 and math.isclose(sum(x * x for x in v), 1, rel_tol=1e-5) for v in first)
    assert all(math.isclose(a, b, abs_tol=1e-6) for u, v in zip(first, again) for a, b in zip(u, v))
    query, related, unrelated = first
    def cosine(u, v):
        return sum(a * b for a, b in zip(u, v))

    assert cosine(query, related) > 0.5 > cosine(query, unrelated) + 0.3


# --- configuration ---------------------------------------------------------------------------------

_GOOD_MODEL = '[[models]]\nname = "fast"\nlatency = { median_ms = 20 }\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[models]]\nname = "fast"\nlatency = { median_ms = 0 }\n',
         "fleet.toml: models.fast.latency.median_ms: Input should be greater than 0"),
        (_GOOD_MODEL + "colour = 'red'\n", "models.fast.colour: Extra inputs are not permitted"),
        (_GOOD_MODEL + "quality = { math = 1.5 }\n", "models.fast.quality.math: Input should be less than"),
        ("seed = 1\n[[models]\n", "invalid TOML"),
        ("seed = 1\nhang_seconds = \n", "line 2"),
        (_GOOD_MODEL * 2, "models: duplicate model name 'fast'"),
        ("seed = 1\n", "models: Field required"),
        (_GOOD_MODEL + "outages = [{ start_request = 5, end_request = 5 }]\n",
         "models.fast.outages.0: end_request (5) must be greater than start_request (5)"),
    ],
)
def test_config_errors_name_file_and_field(tmp_path, text: str, expected: str) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    with pytest.raises(FleetConfigError) as caught:
        load_fleet_config(path)
    assert expected in str(caught.value) and "fleet.toml" in str(caught.value)


def test_missing_config_file_is_named(tmp_path) -> None:
    with pytest.raises(FleetConfigError, match="nowhere.toml: cannot read"):
        load_fleet_config(tmp_path / "nowhere.toml")


def test_default_fleet_has_distinct_models_and_an_outage() -> None:
    config = load_fleet_config(DEFAULT_FLEET_PATH)
    assert len(config.models) >= 4
    assert all(20 <= m.latency.median_ms <= 250 for m in config.models)
    assert any(m.outages for m in config.models)
    best_at = {c: max(config.models, key=lambda m: m.quality_for(c)).name for c in Category}
    assert len(set(best_at.values())) >= 2


# --- the task bank ---------------------------------------------------------------------------------


def test_bank_covers_every_category() -> None:
    counts = {c: sum(e.category is c for e in load_bank()) for c in Category}
    assert min(counts.values()) >= 8, counts


def test_generated_tasks_are_seeded_and_checkable() -> None:
    tasks = generate_tasks(300, seed=9)
    assert tasks == generate_tasks(300, seed=9) and tasks != generate_tasks(300, seed=10)
    assert {t.category for t in tasks} == set(Category)
    assert tasks[0].expectation.answer == tasks[0].answer
    arithmetic = [t for t in tasks if t.task_type == "arithmetic"]
    assert 40 <= len(arithmetic) <= 110
    for task in arithmetic:
        a, op, b = task.prompt.removeprefix("What is ").removesuffix("?").split()
        assert int(task.answer) == {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
    rng = random.Random(0)
    for task in tasks:
        right, wrong = correct_reply(task).lower(), wrong_reply(task, rng).lower()
        checks = [task.answer.lower(), *(k.lower() for k in task.keywords)]
        assert all(c in right for c in checks) and not any(c in wrong for c in checks), task


# --- the launcher ----------------------------------------------------------------------------------


def test_server_starts_and_stops_cleanly_three_times() -> None:
    baseline = threading.active_count()
    config = _fleet(ModelSpec(name="m", latency=FAST))
    for _ in range(3):
        with FleetServer(config) as server:
            port = server.port
            assert httpx.get(f"http://127.0.0.1:{port}/health").json()["models"] == ["m"]
        assert threading.active_count() == baseline
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
