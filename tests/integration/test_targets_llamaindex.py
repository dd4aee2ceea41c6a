"""The LlamaIndex target against the real fleet: a real vector index, real retrieval, real LLM calls."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import openai
import pytest
from pydantic import ValidationError
from targets_support import run

from blocks.targets.llamaindex import FINGERPRINT_FILE, LlamaIndexTarget, packaged_documents
from routing.models import Capability, ErrorType, Price, Task

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BREAKER_QUESTION = "How many trial calls does a half-open circuit breaker let through?"


@pytest.fixture
def docs(tmp_path: Path, monkeypatch) -> Path:
    folder = tmp_path / "docs"
    shutil.copytree(packaged_documents(), folder)
    monkeypatch.setenv("ADAPTIVE_ROUTER_DOCUMENT_ROOTS", str(tmp_path))
    return folder


@pytest.fixture
def embedding_calls(monkeypatch) -> list[int]:
    """How many texts each embeddings request carried (sync calls build the index, async ones query it)."""
    calls: list[int] = []
    for cls in (openai.resources.embeddings.Embeddings, openai.resources.embeddings.AsyncEmbeddings):
        original = cls.create

        def create(self, *args, _original=original, **kwargs):
            texts = kwargs["input"]
            calls.append(1 if isinstance(texts, str) else len(texts))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "create", create)
    return calls


def rag(fleet, docs: Path, tmp_path: Path, **kwargs) -> LlamaIndexTarget:
    settings = {"model": "small", "chunk_size": 128, "chunk_overlap": 16} | kwargs
    return LlamaIndexTarget(
        target_name="rag",
        base_url=fleet.base_url,
        documents_dir=str(docs),
        persist_dir=str(tmp_path / "index"),
        **settings,
    )



def test_retrieves_the_right_document_and_reports_usage(fleet, docs, tmp_path, monkeypatch) -> None:
    completions = []
    original = openai.resources.chat.completions.AsyncCompletions.create

    async def create(self, *args, **kwargs):
        completions.append(await original(self, *args, **kwargs))
        return completions[-1]

    monkeypatch.setattr(openai.resources.chat.completions.AsyncCompletions, "create", create)
    target = rag(fleet, docs, tmp_path, price=Price(input_per_1k_tokens=1.0, output_per_1k_tokens=2.0))
    assert {Capability.RETRIEVAL, Capability.BATCH_EXECUTION} <= target.capabilities
    task = Task(task_type="rag", payload=BREAKER_QUESTION)

    result = run(target, target.execute(task))

    assert result.ok, result.error_message
    assert result.output and result.output != "Empty Response"
    assert result.metadata["sources"][0]["file"] == "resilience.md"
    assert len(result.metadata["sources"]) == 3
    assert len(completions) == 1
    usage = completions[0].usage
    assert (result.input_tokens, result.output_tokens) == (usage.prompt_tokens, usage.completion_tokens)
    assert result.cost == pytest.approx(usage.prompt_tokens / 1000 + usage.completion_tokens / 1000 * 2)
    assert run(target, target.status(task.id)).state == "COMPLETED"


def test_index_is_persisted_reused_and_rebuilt_on_change(fleet, docs, tmp_path, embedding_calls) -> None:
    first = rag(fleet, docs, tmp_path)
    assert first.refresh() is True
    built_with = sum(embedding_calls)
    stamp = json.loads((tmp_path / "index" / FINGERPRINT_FILE).read_text())
    assert stamp == {"fingerprint": first.fingerprint(), "documents": 3}
    assert built_with > 3  # several chunks per document

    second = rag(fleet, docs, tmp_path)
    assert second.refresh() is False  # loaded from disk: no document was embedded again
    assert sum(embedding_calls) == built_with
    result = run(second, second.execute(Task(task_type="rag", payload="Which targets can be cancelled?")))
    assert result.ok and sum(embedding_calls) == built_with + 1  # only the query

    (docs / "ducks.md").write_text("Mallard ducks migrate south in autumn and quack loudly.")
    assert second.refresh() is True
    result = run(second, second.execute(Task(task_type="rag", payload="When do mallard ducks migrate?")))
    assert result.metadata["sources"][0]["file"] == "ducks.md"

    assert rag(fleet, docs, tmp_path, chunk_size=256).fingerprint() != second.fingerprint()


def test_concurrent_queries_on_one_target_answer_in_order(fleet, docs, tmp_path) -> None:
    target = rag(fleet, docs, tmp_path)
    questions = [
        BREAKER_QUESTION,
        "Which targets can be cancelled?",
        "Does choosing a target do any I/O?",
    ] * 2

    async def all_at_once():
        return await asyncio.gather(*(target.execute(Task(task_type="rag", payload=q)) for q in questions))

    results = run(target, all_at_once())
    assert all(r.ok for r in results)
    assert [r.metadata["sources"][0]["file"] for r in results] == [
        "resilience.md",
        "targets.md",
        "overview.md",
    ] * 2


def test_unknown_model_is_a_client_error(fleet, docs, tmp_path) -> None:
    target = rag(fleet, docs, tmp_path, model="no-such-model")
    result = run(target, target.execute(Task(task_type="rag", payload=BREAKER_QUESTION)))
    assert not result.ok and result.error_type is ErrorType.CLIENT_ERROR
    assert result.metadata["status_code"] == 404 and "no-such-model" in result.error_message


def test_unreachable_endpoints_are_connection_errors(docs, tmp_path) -> None:
    target = LlamaIndexTarget(
        target_name="rag",
        base_url="http://127.0.0.1:9/v1",
        model="m",
        documents_dir=str(docs),
        persist_dir=str(tmp_path / "index"),
    )
    result = run(target, target.execute(Task(task_type="rag", payload="anything")))
    assert result.error_type is ErrorType.CONNECTION
    assert not run(target, target.health()).healthy


def test_missing_documents_folder_is_a_target_error(fleet, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ADAPTIVE_ROUTER_DOCUMENT_ROOTS", str(tmp_path))
    target = rag(fleet, tmp_path / "nowhere", tmp_path)
    result = run(target, target.execute(Task(task_type="rag", payload="anything")))
    assert result.error_type is ErrorType.TARGET_ERROR and "nowhere is not a folder" in result.error_message


def test_chunk_overlap_must_be_below_chunk_size() -> None:
    with pytest.raises(ValidationError, match=r"chunk_overlap \(64\) must be smaller than chunk_size \(64\)"):
        LlamaIndexTarget(target_name="r", base_url="http://x/v1", model="m", chunk_size=64, chunk_overlap=64)


OFFLINE_SCRIPT = textwrap.dedent(
    """
    import asyncio, socket, sys
    real_connect = socket.socket.connect
    def loopback_only(self, address):
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1"):
            raise AssertionError(f"network call to {address}")
        return real_connect(self, address)
    socket.socket.connect = loopback_only

    import llama_index.core
    from blocks.targets.llamaindex import LlamaIndexTarget, estimate_tokens
    from routing.models import Task

    async def main():
        base_url, index = sys.argv[1:3]
        target = LlamaIndexTarget(target_name="rag", base_url=base_url, model="small", persist_dir=index)
        result = await target.execute(Task(task_type="rag", payload="What does a half-open breaker allow?"))
        assert result.ok, result.error_message
        assert llama_index.core.global_tokenizer is estimate_tokens
        print("offline ok", result.metadata["sources"][0]["file"])

    asyncio.run(main())
    """
)


def test_builds_and_queries_with_no_vocabulary_download(fleet, tmp_path) -> None:
    """In a fresh interpreter whose tiktoken and NLTK caches point at empty folders and whose sockets only
    reach loopback, the packaged documents are indexed and queried: nothing is fetched from anywhere."""
    env = {
        **os.environ,
        "TIKTOKEN_CACHE_DIR": str(tmp_path / "empty-tiktoken"),
        "NLTK_DATA": str(tmp_path / "empty-nltk"),
        "PYTHONPATH": str(REPO),
    }
    done = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT, fleet.base_url, str(tmp_path / "index")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "offline ok resilience.md" in done.stdout
    assert not (tmp_path / "empty-tiktoken").exists() and not (tmp_path / "empty-nltk").exists()


def test_a_documents_dir_outside_the_document_roots_is_refused_before_anything_is_read(
    fleet, tmp_path, monkeypatch, embedding_calls
) -> None:
    secrets = tmp_path / "home" / ".ssh"
    secrets.mkdir(parents=True)
    (secrets / "notes.md").write_text("private key material")
    monkeypatch.setenv("ADAPTIVE_ROUTER_DOCUMENT_ROOTS", str(tmp_path / "allowed"))
    target = rag(fleet, secrets, tmp_path)
    result = run(target, target.execute(Task(task_type="rag", payload="what is in the notes?")))
    assert not result.ok and "outside the allowed document roots" in result.error_message
    assert "ADAPTIVE_ROUTER_DOCUMENT_ROOTS" in result.error_message
    assert embedding_calls == []  # nothing was embedded, so nothing was sent


def test_hidden_files_and_links_out_of_the_folder_are_not_indexed(tmp_path) -> None:
    from blocks.targets.llamaindex import _documents

    folder = tmp_path / "docs"
    (folder / ".git").mkdir(parents=True)
    (folder / "guide.md").write_text("the guide")
    (folder / ".git" / "notes.md").write_text("hidden")
    (folder / ".env.txt").write_text("API_KEY=x")
    outside = tmp_path / "outside.md"
    outside.write_text("not in the folder")
    (folder / "link.md").symlink_to(outside)
    assert [p.name for p in _documents(folder)] == ["guide.md"]
