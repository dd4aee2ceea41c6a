"""Hostile input at the edge: non-finite numbers, out-of-range integers, lone surrogates, NUL, unknown
block keys, non-UTF-8 fleet files and key-shaped error texts (issue 10, fault classes 3, 6 and 7)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from pydantic import ValidationError

from blocks.fleet.config import FleetConfigError, load_fleet_config
from blocks.settings import RouterSettings
from blocks.store import DuckDBStore
from blocks.targets.http import OpenAICompatibleTarget
from routing.calls.redaction import REDACTED, redact
from routing.models import (
    INT32_MAX,
    INT64_MAX,
    AttemptResult,
    Constraints,
    ExecutionRecord,
    Price,
    Task,
    clean_text,
)

NON_FINITE = [math.inf, -math.inf, math.nan, "inf", "NaN", "-Infinity"]


def execution(**overrides) -> dict:
    return {"task_id": "t", "task_type": "qa", "target": "a", "success": True, "duration_ms": 5.0} | overrides


@pytest.mark.parametrize("value", NON_FINITE)
@pytest.mark.parametrize(
    "build",
    [
        lambda v: Price(per_call=v),
        lambda v: Constraints(max_cost=v),
        lambda v: Task(task_type="qa", payload="x", complexity=v),
        lambda v: AttemptResult(target="a", ok=True, duration_ms=v),
        lambda v: ExecutionRecord(**execution(actual_cost=v)),
        lambda v: ExecutionRecord(**execution(quality_score=v)),
        lambda v: ExecutionRecord(**execution(embedding=[0.1, v])),
        lambda v: OpenAICompatibleTarget(target_name="a", base_url="http://x", model="m", timeout_seconds=v),
        lambda v: DuckDBStore(lock_timeout_seconds=v),
    ],
    ids=["price", "constraints", "task", "attempt", "cost", "quality", "embedding", "target-block", "store-block"],
)
def test_non_finite_numbers_are_refused_everywhere(build, value) -> None:
    with pytest.raises(ValidationError):
        build(value)


def test_non_finite_values_inside_free_form_metadata_become_null_and_are_flagged() -> None:
    record = ExecutionRecord(**execution(metadata={"score": math.inf, "ok": 1.5}))
    assert record.metadata == {"score": None, "ok": 1.5, "sanitised": ["metadata"]}
    json.loads(json.dumps(record.model_dump(mode="json"), allow_nan=False))  # valid JSON for DuckDB


def test_integers_must_fit_their_columns() -> None:
    with pytest.raises(ValidationError, match="file_count"):
        ExecutionRecord(**execution(file_count=INT32_MAX + 1))
    with pytest.raises(ValidationError, match="attempt"):
        ExecutionRecord(**execution(attempt=2**40))
    with pytest.raises(ValidationError, match="input_tokens"):
        ExecutionRecord(**execution(input_tokens=INT64_MAX + 1))
    assert ExecutionRecord(**execution(input_tokens=2**40)).input_tokens == 2**40  # BIGINT since migration 6


def test_a_targets_token_counts_are_clamped_and_flagged_not_refused() -> None:
    result = AttemptResult(target="a", ok=True, duration_ms=1, input_tokens=2**70, output_tokens=-3)
    assert (result.input_tokens, result.output_tokens) == (INT64_MAX, 0)
    assert result.metadata["clamped"] == ["input_tokens", "output_tokens"]


def test_lone_surrogates_and_nul_in_a_reply_are_replaced_and_flagged() -> None:
    reply = json.loads('"ok \\ud800 then \\udfff end\\u0000"')  # what a hostile target's JSON decodes to
    result = AttemptResult(target="a", ok=True, output=reply, duration_ms=1)
    assert result.output == "ok \ufffd then \ufffd end\ufffd"
    assert result.metadata["sanitised"] == ["output"]
    result.output.encode("utf-8")  # encodable now
    assert clean_text("a 😀 pair survives") == "a 😀 pair survives"


@pytest.mark.parametrize("value", ["", "   ", "a\x00b"])
def test_blank_or_nul_ids_are_refused(value: str) -> None:
    with pytest.raises(ValidationError):
        Task(id=value, task_type="qa", payload="x")
    with pytest.raises(ValidationError):
        ExecutionRecord(**execution(task_id=value))


def test_unknown_block_keys_are_refused_with_the_key_named() -> None:
    with pytest.raises(ValidationError, match=r"unknown field 'timeout_second' \(did you mean 'timeout_seconds'\?\)"):
        OpenAICompatibleTarget(target_name="a", base_url="http://x", model="m", timeout_second=5)
    with pytest.raises(ValidationError, match="'strategy_option'"):
        RouterSettings(targets=["a/b"], strategy_option={})
    with pytest.raises(ValidationError, match="'lock_timeout'"):
        DuckDBStore(lock_timeout=1)


def test_prefects_own_keys_still_load_a_block() -> None:
    block = OpenAICompatibleTarget(target_name="a", base_url="http://x", model="m", timeout_seconds=5)
    data = block.model_dump() | {"_block_document_name": "n", "_is_anonymous": False}
    assert OpenAICompatibleTarget.model_validate(data).timeout_seconds == 5


def test_a_block_error_does_not_echo_the_key_it_was_given() -> None:
    with pytest.raises(ValidationError) as caught:
        OpenAICompatibleTarget(target_name="a", base_url="http://x", model="m", api_key="sk-live-SECRET123456", bad=1)
    assert "SECRET123456" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Incorrect API key provided: sk-proj-abcDEF1234567890xyz", "sk-proj-abcDEF1234567890xyz"),
        ("header was Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9.payload.sig"),
        ("GET /v1?api_key=hunter2hunter2&x=1 failed", "hunter2hunter2"),
        ("token 0123456789abcdef0123456789abcdef0123 rejected", "0123456789abcdef0123456789abcdef0123"),
        ("bad key gsk_1234567890abcdefghijkl", "gsk_1234567890abcdefghijkl"),
        ("bad key AIzaSyA1234567890abcdefghijklmnopq", "AIzaSyA1234567890abcdefghijklmnopq"),
    ],
)
def test_key_shaped_text_is_redacted(text: str, secret: str) -> None:
    redacted = redact(text)
    assert secret not in redacted and REDACTED in redacted


def test_the_targets_own_key_is_redacted_even_when_not_key_shaped() -> None:
    assert redact("you sent 'plainpw42' which is wrong", ["plainpw42"]) == f"you sent '{REDACTED}' which is wrong"
    assert redact("HTTP 500: upstream timed out after 30 s") == "HTTP 500: upstream timed out after 30 s"


def test_a_target_blocks_failure_text_loses_its_key() -> None:
    block = OpenAICompatibleTarget(target_name="a", base_url="http://x", model="m", api_key="plain-key-42")
    result = block.failure(0.0, "auth", "HTTP 401: key plain-key-42 is not valid")
    assert "plain-key-42" not in result.error_message


def test_fleet_files_that_are_not_utf8_or_not_finite_fail_with_the_file_named(tmp_path: Path) -> None:
    latin = tmp_path / "latin.toml"
    latin.write_bytes("seed = 1 # caf\xe9\n".encode("latin-1"))
    with pytest.raises(FleetConfigError, match="latin.toml: not UTF-8"):
        load_fleet_config(latin)
    infinite = tmp_path / "inf.toml"
    infinite.write_text('[[models]]\nname = "m"\nlatency = { median_ms = 10, sigma = inf }\n')
    with pytest.raises(FleetConfigError, match=r"inf.toml: models.m.latency.sigma: Input should be a finite number"):
        load_fleet_config(infinite)


def test_paths_and_urls_survive_redaction_while_tokens_do_not() -> None:
    from routing.calls.redaction import redact

    path = "/tmp/pytest-of-root/pytest-53/test_missing_documents_folder0/nowhere is not a folder"
    assert redact(path) == path
    url = "http://127.0.0.1:8700/v1/chat/completions returned 503"
    assert redact(url) == url
    token = "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1ub3A"
    assert redact(f"rejected credential {token} here") == "rejected credential [redacted] here"
