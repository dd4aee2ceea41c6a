"""A LlamaIndex query engine as a target: retrieval over a folder of documents, answered by an LLM.

The vector index is built once and persisted under `persist_dir` with a fingerprint of the documents
(their paths and contents) and of the settings that shape the vectors; a later start loads it when the
fingerprint matches and rebuilds it when anything changed. `refresh()` re-checks in a long-lived process.

Both the LLM and the embeddings go to OpenAI-compatible endpoints (the local fleet serves both). Nothing
is downloaded at run time. llama-index's defaults load a tiktoken vocabulary and NLTK's sentence model:
from copies it ships, but from the internet when TIKTOKEN_CACHE_DIR or NLTK_DATA point elsewhere. Some
of its code paths use the process-wide tokenizer even when handed another one, so unless the
application has set one, `estimate_tokens` becomes llama-index's global tokenizer; sentences are split
by a regex; and the OpenAILike LLM gets no tokenizer (so it infers no max_tokens).
Token usage is what the LLM endpoint reports, collected by the LLM subclass below around each call.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import json
import os
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, PrivateAttr, model_validator

from blocks.meta import logo
from blocks.targets.base import EndpointTarget, ExecutionStatus
from routing.errors import ConfigError
from routing.models import AttemptResult, Capability, ErrorType, TargetKind, Task

DOCUMENT_SUFFIXES = (".md", ".txt")
CHARS_PER_TOKEN = 3
_SENTENCE = r"[^.!?]+[.!?]*\s*|[.!?]+\s*"
FINGERPRINT_FILE = "fingerprint.json"
_KEPT_STATUSES = 1000
_LLM_CALLS: contextvars.ContextVar[_LLMCalls | None] = contextvars.ContextVar(
    "llamaindex_llm_calls", default=None
)

DOCUMENT_ROOTS_ENV = "ADAPTIVE_ROUTER_DOCUMENT_ROOTS"


@dataclass
class _LLMCalls:
    """What the LLM calls of one query reported: usage per answered call, exceptions of failed ones."""

    usage: list[tuple[int, int]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    @property
    def tokens(self) -> tuple[int, int]:
        return sum(u[0] for u in self.usage), sum(u[1] for u in self.usage)


def estimate_tokens(text: str) -> list[str]:
    """A tokenizer that needs no vocabulary: one token per 3 characters. BPE tokenizers give English
    about 4, so chunks and prompts sized with it fit the model's window whatever its real tokenizer."""
    return [text[i : i + CHARS_PER_TOKEN] for i in range(0, len(text), CHARS_PER_TOKEN)]


def packaged_documents() -> Path:
    """The documents shipped with the package (about the router itself), used when none are given."""
    return Path(str(files("blocks.targets") / "docs"))


class LlamaIndexTarget(EndpointTarget):
    """Answers a query from the documents most similar to it, through an OpenAI-compatible LLM.

    The index is loaded or built on first use (or by `initialize()`) and kept under `persist_dir`;
    `aclose()` drops the per-loop query engines. The settings every target shares (tier, price,
    timeout, capabilities) are described on TargetBlock.

    Attributes:
        target_name: Name the router knows this target by; also names the default index folder.
        base_url: API root of the OpenAI-compatible LLM endpoint.
        model: LLM model that writes the answers.
        api_key: Bearer key (a secret), or `api_key_env` naming the variable that holds it.
        embedding_base_url: Embeddings API root; defaults to `base_url`.
        embedding_model: Model of the embeddings API.
        documents_dir: Folder of .md/.txt documents; default: the package's own.
        persist_dir: Where the index is kept; default .adaptive-router/indexes/<target_name>.
        similarity_top_k: Chunks retrieved per query.
        chunk_size: Chunk length in estimated tokens.
        chunk_overlap: Estimated tokens shared by neighbouring chunks.
        context_window: The LLM's context window, in tokens.
        max_tokens: Longest answer, in tokens.

    Example:
        Load a saved target, build or load its index, and ask it a question:
        ```python
        import asyncio

        from blocks.targets import LlamaIndexTarget
        from routing import Task

        rag = LlamaIndexTarget.load("BLOCK_NAME")

        async def main():
            async with rag:
                await rag.initialize()
                result = await rag.execute(Task(task_type="rag", payload="How do breakers work?"))
            print(result.output, result.metadata["sources"])

        asyncio.run(main())
        ```
    """

    _block_type_name = "Adaptive Router LlamaIndex Target"
    _block_type_slug = "adaptive-router-llamaindex-target"
    _logo_url = logo("run-llama")
    _description = (
        "A LlamaIndex query engine over a folder of documents, with OpenAI-compatible LLM and embeddings."
    )

    kind: ClassVar[TargetKind] = TargetKind.LLAMAINDEX
    base_capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.CHAT, Capability.RETRIEVAL, Capability.BATCH_EXECUTION, Capability.MONITOR_EXECUTION}
    )

    embedding_base_url: str | None = Field(
        default=None, description="Embeddings API root; defaults to base_url."
    )
    embedding_model: str = Field(default="text-embedding-3-small", description="Model of the embeddings API.")
    documents_dir: str | None = Field(
        default=None, description="Folder of .md/.txt files; default: the package's."
    )
    persist_dir: str | None = Field(
        default=None, description="Where the index is kept; default .adaptive-router/indexes/<target_name>."
    )
    similarity_top_k: int = Field(default=3, ge=1, description="Chunks retrieved per query.")
    chunk_size: int = Field(default=512, ge=64, description="Chunk length in estimated tokens.")
    chunk_overlap: int = Field(
        default=64, ge=0, description="Estimated tokens shared by neighbouring chunks."
    )
    context_window: int = Field(default=8192, ge=256, description="The LLM's context window, in tokens.")
    max_tokens: int = Field(default=256, gt=0, description="Longest answer, in tokens.")

    _index: Any = PrivateAttr(default=None)
    _index_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _engines: weakref.WeakKeyDictionary = PrivateAttr(default_factory=weakref.WeakKeyDictionary)
    _statuses: OrderedDict = PrivateAttr(default_factory=OrderedDict)

    @model_validator(mode="after")
    def _overlap_below_size(self) -> LlamaIndexTarget:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_size ({self.chunk_size})"
            )
        return self

    @property
    def documents_path(self) -> Path:
        """The folder to index; a configured one must lie under a document root (see `document_roots`).

        A block is edited in the UI by whoever can reach the server, and the engine sends what it indexes
        to its LLM and embeddings endpoints: without this, `documents_dir="/home/me/.ssh"` would ship keys.
        """
        if not self.documents_dir:
            return packaged_documents()
        folder = Path(self.documents_dir).expanduser().resolve()
        roots = document_roots()
        if not any(folder.is_relative_to(root) for root in roots):
            raise ConfigError(
                f"documents_dir {folder} is outside the allowed document roots ({', '.join(map(str, roots))}); "
                f"add its folder to {DOCUMENT_ROOTS_ENV} (separated by '{os.pathsep}') on the machines that run it"
            )
        return folder

    @property
    def persist_path(self) -> Path:
        if self.persist_dir:
            return Path(self.persist_dir).expanduser()
        return Path(".adaptive-router") / "indexes" / self.target_name

    def cost_estimate(self, task: Task) -> float:
        """An upper bound: the question plus `similarity_top_k` retrieved chunks and the prompt
        template (~300 tokens) in, at most `max_tokens` out (embedding the question is not priced)."""
        input_tokens = task.estimated_tokens + self.similarity_top_k * self.chunk_size + 300
        return self.price.cost(input_tokens, self.max_tokens, self.timeout_seconds)

    # -- the index ------------------------------------------------------------------------------


    def _embedding(self) -> Any:
        from llama_index.embeddings.openai_like import OpenAILikeEmbedding

        return OpenAILikeEmbedding(
            model_name=self.embedding_model,
            api_base=self.embedding_base_url or self.base_url,
            api_key=self.api_key_value() or "not-provided",
            timeout=self.timeout_seconds,
            max_retries=0,
        )

    def _llm(self) -> Any:
        return _recording_llm_class()(
            model=self.model,
            api_base=self.base_url,
            api_key=self.api_key_value() or "not-provided",
            is_chat_model=True,
            context_window=self.context_window,
            max_tokens=self.max_tokens,
            temperature=0.0,
            timeout=self.timeout_seconds,
            max_retries=0,
        )

    def fingerprint(self) -> str:
        """Hash of the documents and of every setting that changes the stored vectors."""
        folder = self.documents_path
        digest = hashlib.sha256()
        settings = [
            self.embedding_model,
            self.embedding_base_url or self.base_url,
            self.chunk_size,
            self.chunk_overlap,
        ]
        digest.update(json.dumps(settings).encode())
        for path in _documents(folder):
            digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        return digest.hexdigest()

    def refresh(self) -> bool:
        """Load or (re)build the index as the documents now stand; True if it was rebuilt."""
        from llama_index.core import StorageContext, VectorStoreIndex, load_index_from_storage
        from llama_index.core.node_parser import SentenceSplitter
        from llama_index.core.node_parser.text.utils import split_by_regex
        from llama_index.core.schema import Document

        with self._index_lock:
            folder, store = self.documents_path, self.persist_path
            if not folder.is_dir():
                raise FileNotFoundError(f"documents_dir {folder} is not a folder")
            fingerprint = self.fingerprint()
            stamp = store / FINGERPRINT_FILE
            if stamp.is_file() and _read_stamp(stamp) == fingerprint:
                if self._index is None:
                    context = StorageContext.from_defaults(persist_dir=str(store))
                    self._index = load_index_from_storage(context, embed_model=self._embedding())
                    self._engines.clear()
                return False
            names = {path: path.relative_to(folder).as_posix() for path in _documents(folder)}
            documents = [
                Document(text=path.read_text(encoding="utf-8"), id_=name, metadata={"file_name": name})
                for path, name in names.items()
            ]
            if not documents:
                raise FileNotFoundError(
                    f"documents_dir {folder} holds no {'/'.join(DOCUMENT_SUFFIXES)} files"
                )
            _use_offline_tokenizer()
            index = VectorStoreIndex.from_documents(
                documents,
                embed_model=self._embedding(),
                transformations=[
                    SentenceSplitter(
                        chunk_size=self.chunk_size,
                        chunk_overlap=self.chunk_overlap,
                        chunking_tokenizer_fn=split_by_regex(_SENTENCE),
                    )
                ],
            )
            store.mkdir(parents=True, exist_ok=True)
            stamp.unlink(missing_ok=True)  # a crash while persisting must not leave a stale stamp behind
            index.storage_context.persist(persist_dir=str(store))
            stamp.write_text(json.dumps({"fingerprint": fingerprint, "documents": len(documents)}))
            self._index = index
            self._engines.clear()
            return True

    async def initialize(self) -> None:
        """Load or build the index (off the event loop: building calls the embeddings endpoint)."""
        await asyncio.to_thread(self.refresh)

    def _engine(self) -> Any:
        """A query engine for the running loop: its LLM and embedding clients must not cross loops."""
        from llama_index.core.indices.vector_store.retrievers import VectorIndexRetriever
        from llama_index.core.query_engine import RetrieverQueryEngine

        loop = asyncio.get_running_loop()
        engine = self._engines.get(loop)
        if engine is None:
            retriever = VectorIndexRetriever(
                self._index, similarity_top_k=self.similarity_top_k, embed_model=self._embedding()
            )
            _use_offline_tokenizer()
            engine = self._engines[loop] = RetrieverQueryEngine.from_args(retriever, llm=self._llm())
        return engine

    # -- execution ------------------------------------------------------------------------------

    async def execute(self, task: Task) -> AttemptResult:
        """Query the index with `task.payload`; the execution id for status() is `task.id`."""
        started = time.perf_counter()
        self._set_status(task.id, "RUNNING")
        calls = _LLMCalls()
        token = _LLM_CALLS.set(calls)
        try:
            if self._index is None:
                await self.initialize()
            response = await asyncio.wait_for(self._engine().aquery(task.payload), self.timeout_seconds)
        except TimeoutError:
            error, message, extra = ErrorType.TIMEOUT, f"no answer within {self.timeout_seconds:g} s", {}
        except Exception as exc:  # noqa: BLE001 -- any failure of the endpoints or engine is an outcome
            error, message, extra = _classify(exc)
        else:
            # llama-index's synthesizers swallow some LLM errors (a ValueError) and answer "Empty Response".
            if not calls.errors:
                return self._answered(task.id, started, response, calls)
            error, message, extra = _classify(calls.errors[-1])
        finally:
            _LLM_CALLS.reset(token)
        self._set_status(task.id, "FAILED", message)
        input_tokens, output_tokens = calls.tokens
        return self.failure(
            started, error, message, input_tokens=input_tokens, output_tokens=output_tokens,
            execution_id=task.id, **extra,
        )

    def _answered(self, run_id: str, started: float, response: Any, calls: _LLMCalls) -> AttemptResult:
        input_tokens, output_tokens = calls.tokens
        duration_ms = (time.perf_counter() - started) * 1000
        sources = [
            {"file": node.node.metadata.get("file_name"), "score": node.score}
            for node in response.source_nodes
        ]
        self._set_status(run_id, "COMPLETED")
        return AttemptResult(
            target=self.target_name,
            ok=True,
            output=str(response),
            duration_ms=duration_ms,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost=self.price.cost(input_tokens, output_tokens, duration_ms / 1000),
            metadata={"execution_id": run_id, "sources": sources},
        )


    def _set_status(self, execution_id: str, state: str, detail: str = "") -> None:
        self._statuses[execution_id] = ExecutionStatus(execution_id=execution_id, state=state, detail=detail)
        self._statuses.move_to_end(execution_id)
        while len(self._statuses) > _KEPT_STATUSES:
            self._statuses.popitem(last=False)

    async def status(self, execution_id: str) -> ExecutionStatus:
        known = self._statuses.get(execution_id)
        return known or ExecutionStatus(
            execution_id=execution_id, state="UNKNOWN", detail="no such query on this target"
        )

    # -- closing --------------------------------------------------------------------------------

    async def aclose(self) -> None:
        self._engines.clear()


def document_roots() -> list[Path]:
    """Folders a documents_dir may lie under: $ADAPTIVE_ROUTER_DOCUMENT_ROOTS, else the working directory."""
    configured = [part for part in os.environ.get(DOCUMENT_ROOTS_ENV, "").split(os.pathsep) if part.strip()]
    return [Path(part).expanduser().resolve() for part in configured] or [Path.cwd().resolve()]


def _documents(folder: Path) -> list[Path]:
    """The folder's .md/.txt files, skipping hidden ones and links that lead out of the folder."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in DOCUMENT_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and p.resolve().is_relative_to(folder)
    )


def _read_stamp(stamp: Path) -> str | None:
    try:
        return json.loads(stamp.read_text())["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _use_offline_tokenizer() -> None:
    import llama_index.core

    if llama_index.core.global_tokenizer is None:
        llama_index.core.set_global_tokenizer(estimate_tokens)


def _classify(exc: BaseException) -> tuple[ErrorType, str, dict[str, Any]]:
    from blocks.targets.openai_errors import classify

    return classify(exc)


@functools.cache
def _recording_llm_class() -> type:
    """OpenAILike that reports each chat call's usage, or its exception, to the query in progress."""
    from llama_index.llms.openai_like import OpenAILike

    class RecordingOpenAILike(OpenAILike):
        async def achat(self, messages: Any, **kwargs: Any) -> Any:
            calls = _LLM_CALLS.get()
            try:
                response = await super().achat(messages, **kwargs)
            except Exception as exc:
                if calls is not None:
                    calls.errors.append(exc)
                raise
            if calls is not None:
                counts = response.additional_kwargs
                calls.usage.append(
                    (int(counts.get("prompt_tokens", 0)), int(counts.get("completion_tokens", 0)))
                )
            return response

    return RecordingOpenAILike
