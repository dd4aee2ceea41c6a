"""The domain's nouns: what is routed, where it can go, what was decided and what happened.

Everything here is a pydantic model so that a malformed task, target or record fails at the edge with
an error naming the field at fault, long before it reaches a target or the store. Every model refuses
non-finite numbers (`FINITE`), and integers are bounded by the store's columns (`Int32`, `TokenCount`).
Text a target returns is never refused after the call was paid for: lone UTF-16 surrogates and NUL
(which DuckDB rejects) are replaced and the field is named in `metadata["sanitised"]`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PrivateAttr,
    WrapValidator,
    model_serializer,
    model_validator,
)

from routing.calls.redaction import redact

# Shared by every model here and by the blocks: inf and nan are refused wherever a float is read.
FINITE = ConfigDict(allow_inf_nan=False)
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
FLOAT32_MAX = 3.4028234663852886e38


def _not_blank(value: str) -> str:
    if not value.strip() or "\x00" in value or clean_text(value) != value:
        raise ValueError("must not be blank or contain NUL or a lone surrogate")
    return value


_ID_CHECK = AfterValidator(_not_blank)
NonBlank = Annotated[str, Field(min_length=1, max_length=512), _ID_CHECK]
"""An id or a name: refused (not cleaned) when blank or holding NUL or a lone surrogate."""


def id_fields(model: type[BaseModel]) -> frozenset[str]:
    """The model's `NonBlank` fields (the store's bulk load checks them in SQL)."""
    return frozenset(name for name, info in model.model_fields.items() if _ID_CHECK in info.metadata)
Int32 = Annotated[int, Field(ge=0, le=INT32_MAX)]
"""A non-negative count stored in an INTEGER column."""
TokenCount = Annotated[int, Field(ge=0, le=INT64_MAX)]
"""Token counts are stored as BIGINT (migration 6): a remote target reports them."""
Float32 = Annotated[float, Field(ge=-FLOAT32_MAX, le=FLOAT32_MAX)]
"""A value stored in a FLOAT column (embeddings)."""


def clean_text(value: str) -> str:
    """`value` with lone UTF-16 surrogates and NUL replaced by U+FFFD (both break DuckDB's reader)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value.replace("\x00", "\ufffd")


def _clean(value: Any, nested: bool = False) -> tuple[Any, bool]:
    """`value` with every string in it cleaned (dicts, lists and tuples walked); whether any changed.

    Inside free-form containers (metadata) a non-finite float becomes None; a typed field keeps it, so
    that its own validation refuses it rather than a None slipping into an optional field.
    """
    if isinstance(value, str):
        cleaned = clean_text(value)
        return cleaned, cleaned != value
    if nested and isinstance(value, float) and not math.isfinite(value):
        return None, True
    if isinstance(value, dict):
        changed = False
        out = {}
        for key, item in value.items():
            new_key, key_changed = _clean(key, True)
            out[new_key], item_changed = _clean(item, True)
            changed |= key_changed or item_changed
        return out, changed
    if isinstance(value, list | tuple):
        items = [_clean(item, True) for item in value]
        return type(value)(item for item, _ in items), any(c for _, c in items)
    return value, False


class _Clean(BaseModel):
    """Base of every model here: finite numbers only, strings cleaned on the way in and flagged."""

    model_config = FINITE

    @model_validator(mode="before")
    @classmethod
    def _sanitise(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out: dict[Any, Any] = {}
        changed: list[str] = []
        fields = cls.model_fields
        for key, value in data.items():
            field = fields.get(key) if isinstance(key, str) else None
            if field is not None and _ID_CHECK in field.metadata:  # ids are refused, not cleaned
                out[key] = value
                continue
            out[key], was_changed = _clean(value)
            if was_changed:
                changed.append(str(key))
        metadata = out.get("metadata", {})
        if changed and "metadata" in cls.model_fields and isinstance(metadata, dict):
            out["metadata"] = {**metadata, "sanitised": sorted(set(metadata.get("sanitised", ())) | set(changed))}
        return out


def utcnow() -> datetime:
    return datetime.now(UTC)


IDS_AHEAD = 16
"""Random 128-bit numbers fetched per `os.urandom` call: a system call per id costs ~3 µs on a decision's
path (its kernel paths cold after the outcome's work), one per 16 ids ~5 µs in all."""
_UUID4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))  # the variant and version bits, as uuid.UUID sets them
_UUID4_SET = (0x8000 << 48) | (4 << 76)
_ahead: list[int] = []  # list.pop is atomic: threads need no lock


def _forget_ids() -> None:
    """A forked child must not hand out its parent's ids."""
    _ahead.clear()


os.register_at_fork(after_in_child=_forget_ids)


def new_id() -> str:
    """A random (version 4) UUID as 32 hex digits, from `os.urandom` (ids reach clients, so they must
    not be guessable); ~4x cheaper than `uuid.uuid4().hex` on the hot path."""
    try:
        bits = _ahead.pop()
    except IndexError:
        raw = os.urandom(16 * IDS_AHEAD)
        made = [int.from_bytes(raw[at : at + 16]) for at in range(0, len(raw), 16)]
        bits = made.pop()
        _ahead.extend(made)
    return "%032x" % (bits & _UUID4_CLEAR | _UUID4_SET)


class Category(StrEnum):
    """Broad kinds of work; capability scores and fleet quality are kept per category."""

    CODING = "coding"
    MATH = "math"
    RESEARCH = "research"
    LANGUAGE = "language"
    EMPATHY = "empathy"
    GENERAL = "general"


class Capability(StrEnum):
    """What a target can do beyond answering; a task requiring one only goes to targets that have it."""

    DEPLOY_FLOWS = "can_deploy_flows"
    MONITOR_EXECUTION = "can_monitor_execution"
    CANCEL = "can_cancel"
    BATCH_EXECUTION = "supports_batch_execution"
    MULTI_AGENT = "supports_multi_agent"
    CLOUD_UI = "has_cloud_ui"
    CHAT = "chat"
    RETRIEVAL = "retrieval"


class TargetKind(StrEnum):
    HTTP = "http"
    AGNO = "agno"
    LLAMAINDEX = "llamaindex"
    PREFECT_DEPLOYMENT = "prefect_deployment"


class _Strict(_Clean):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Expectation(_Strict):
    """How to judge an answer when the task knows what a good one looks like (0-100 quality)."""

    answer: str | None = None
    keywords: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    min_length: Int32 = 0


class Constraints(_Strict):
    """Per-task limits the router must respect when it picks a target."""

    max_cost: NonNegativeFloat | None = None
    max_latency_ms: NonNegativeFloat | None = None
    min_success_rate: float | None = Field(default=None, ge=0, le=1)


class Task(_Strict):
    """One unit of work to route."""

    id: NonBlank = Field(default_factory=new_id)
    task_type: NonBlank = Field(description="What kind of work, e.g. 'qa' or 'codegen'.")
    category: Category = Category.GENERAL
    payload: str = Field(min_length=1, description="The prompt or query sent to the target.")
    session_id: str | None = None
    required_capabilities: frozenset[Capability] = frozenset()
    constraints: Constraints = Constraints()
    expected: Expectation | None = None
    complexity: float | None = Field(default=None, ge=0, le=1)
    repo: str | None = None
    file_count: Int32 | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def estimated_tokens(self) -> int:
        """A cheap prompt-size estimate (about 4 characters a token, rounded up), known before any call."""
        return max(1, -(-len(self.payload) // 4))


class Price(_Strict):
    """What a call costs; every component defaults to free (local targets)."""

    input_per_1k_tokens: NonNegativeFloat = 0.0
    output_per_1k_tokens: NonNegativeFloat = 0.0
    per_second: NonNegativeFloat = 0.0
    per_call: NonNegativeFloat = 0.0

    def cost(self, input_tokens: int = 0, output_tokens: int = 0, seconds: float = 0.0) -> float:
        return (
            input_tokens / 1000 * self.input_per_1k_tokens
            + output_tokens / 1000 * self.output_per_1k_tokens
            + seconds * self.per_second
            + self.per_call
        )


class Target(_Strict):
    """Where work can go, as the router sees it: no connection details, only what ranking needs."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:\-]+$")
    kind: TargetKind = TargetKind.HTTP
    model: str | None = None
    tier: str | None = Field(default=None, description="A label such as 'small' or 'premium'.")
    capabilities: frozenset[Capability] = frozenset({Capability.CHAT})
    price: Price = Price()


@dataclass(frozen=True, slots=True, init=False)
class Candidate:
    """One target as ranked for one decision, with the numbers behind its place.

    A plain dataclass rather than a model: `choose` builds one per target per call, and a validated
    model costs ~4 µs each where this costs ~1 µs. Decision still validates it when parsed from JSON.
    Frozen (rankings are reused across decisions), but set through the slots in `__init__`: the
    dataclass's own frozen `__init__` goes through `object.__setattr__` per field, about twice as slow.
    """

    target: str
    score: float
    samples: int = 0
    success_rate: float | None = None
    p50_latency_ms: float | None = None
    details: dict[str, float] = field(default_factory=dict)

    def __init__(
        self,
        target: str,
        score: float,
        samples: int = 0,
        success_rate: float | None = None,
        p50_latency_ms: float | None = None,
        details: dict[str, float] | None = None,
    ) -> None:
        _set_target(self, target)
        _set_score(self, score)
        _set_samples(self, samples)
        _set_success_rate(self, success_rate)
        _set_p50_latency_ms(self, p50_latency_ms)
        _set_details(self, {} if details is None else details)


_set_target, _set_score, _set_samples, _set_success_rate, _set_p50_latency_ms, _set_details = (
    Candidate.__dict__[f.name].__set__ for f in fields(Candidate)
)


def _built_candidates(value: Any, handler):
    """Candidates a strategy built are taken as they are (~1 µs each saved on the hot path); anything
    else (JSON, dicts) is validated field by field."""
    if type(value) is tuple and all(type(c) is Candidate for c in value):
        return value
    return handler(value)


Candidates = Annotated[tuple[Candidate, ...], WrapValidator(_built_candidates)]


class Deferred:
    """A number computed on first use and kept: a propensity that costs more than the rest of a
    decision (an integral) is worked out when it is read, or by the learner before its state moves on."""

    __slots__ = ("_compute", "_value")

    def __init__(self, compute: Callable[[], float]) -> None:
        self._compute: Callable[[], float] | None = compute
        self._value = 0.0

    def __call__(self) -> float:
        compute = self._compute
        if compute is not None:
            self._value = float(compute())
            self._compute = None
        return self._value

    @property
    def resolved(self) -> bool:
        return self._compute is None

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its value (the computation may hold what cannot be pickled)."""
        return (_known, (self(),))


def _known(value: float) -> Deferred:
    deferred = Deferred(float)
    deferred._compute, deferred._value = None, value
    return deferred


def resolve(value: float | Deferred) -> float:
    """`value`, computed first when deferred."""
    return value() if type(value) is Deferred else value


_ONLY_CANDIDATES = frozenset({Candidate})
_DECISION_SET = frozenset({"task_id", "task_type", "strategy", "candidates", "pick", "probability", "reason"})


class Decision(_Strict):
    """What the router chose and why; logged so that any policy can be evaluated on it later.

    `built` makes one from parts that are already valid without validating them again, and may leave
    `probability` to be computed on first read (see `Deferred`): whatever reads, compares, copies,
    pickles or serialises the decision sees the same number.
    """

    id: NonBlank = Field(default_factory=new_id)
    task_id: NonBlank
    task_type: NonBlank
    timestamp: datetime = Field(default_factory=utcnow)
    strategy: str
    candidates: Candidates
    pick: str
    probability: float = Field(ge=0, le=1, description="Propensity of the pick under the policy in force.")
    reason: str
    experiment_id: str | None = Field(default=None, description="The running experiment that assigned the task.")
    variant: str | None = Field(default=None, description="Its variant, whose policy made this decision.")
    weight: float = Field(default=1.0, ge=1, description="1/sampling rate: how many decisions this row stands for.")

    _deferred: Deferred | None = PrivateAttr(default=None)

    @classmethod
    def built(
        cls,
        *,
        task_id: str,
        task_type: str,
        strategy: str,
        candidates: tuple[Candidate, ...],
        pick: str,
        probability: float | Deferred,
        reason: str,
    ) -> Decision:
        """A decision from a validated Task and a strategy's Choice, without validating them again
        (validation and string cleaning cost ~20 µs a decision); a `Deferred` probability is computed
        on first use and must lie in [0, 1] as the field requires."""
        deferred = probability if type(probability) is Deferred else None
        if type(candidates) is not tuple or not set(map(type, candidates)) <= _ONLY_CANDIDATES:
            return cls(task_id=task_id, task_type=task_type, strategy=strategy, candidates=candidates,
                       pick=pick, probability=resolve(probability), reason=reason)
        decision = cls.__new__(cls)
        values = {
            "id": new_id(), "task_id": task_id, "task_type": task_type, "timestamp": utcnow(),
            "strategy": strategy, "candidates": candidates, "pick": pick, "reason": reason,
            "experiment_id": None, "variant": None, "weight": 1.0,
        }
        if deferred is None:
            if not 0.0 <= probability <= 1.0:
                raise ValueError(f"probability must be in [0, 1], got {probability}")
            values["probability"] = float(probability)
        setter = object.__setattr__
        setter(decision, "__dict__", values)
        setter(decision, "__pydantic_fields_set__", set(_DECISION_SET))
        setter(decision, "__pydantic_extra__", None)
        setter(decision, "__pydantic_private__", {"_deferred": deferred})
        return decision

    def _resolve(self) -> None:
        """Compute a deferred probability now (a no-op once it is known)."""
        private = self.__pydantic_private__
        deferred = private.get("_deferred") if private else None
        if deferred is not None:
            self.__dict__["probability"] = deferred()
            private["_deferred"] = None

    def __getattr__(self, name: str) -> Any:
        if name == "probability" and "probability" not in self.__dict__:
            self._resolve()
            return self.__dict__["probability"]
        return super().__getattr__(name)

    @model_serializer(mode="wrap")
    def _serialise_resolved(self, handler):
        self._resolve()
        return handler(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Decision):
            self._resolve()
            other._resolve()
        return super().__eq__(other)

    def __hash__(self) -> int:
        self._resolve()
        return super().__hash__()

    def __repr_args__(self):
        self._resolve()
        return super().__repr_args__()

    def __getstate__(self) -> dict[Any, Any]:
        self._resolve()
        return super().__getstate__()

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Decision:
        self._resolve()
        return super().__deepcopy__(memo)

    @property
    def fallback_order(self) -> list[str]:
        """The pick first, then the rest of the ranking: the order attempts are made in."""
        return [self.pick] + [c.target for c in self.candidates if c.target != self.pick]


class ErrorType(StrEnum):
    """Why an attempt failed; decides whether it is worth retrying and how it is counted."""

    TIMEOUT = "timeout"
    CONNECTION = "connection"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    CLIENT_ERROR = "client_error"
    AUTH = "auth"
    MALFORMED_RESPONSE = "malformed_response"
    WRONG_ANSWER = "wrong_answer"
    CIRCUIT_OPEN = "circuit_open"
    BUDGET_EXCEEDED = "budget_exceeded"
    TARGET_ERROR = "target_error"
    INTERNAL = "internal"


class AttemptResult(_Strict):
    """What an adapter reports for one call, before the router judges it."""

    target: str
    ok: bool
    output: str | None = None
    duration_ms: NonNegativeFloat
    input_tokens: TokenCount = 0
    output_tokens: TokenCount = 0
    cost: NonNegativeFloat = 0.0
    error_type: ErrorType | None = None
    error_message: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _keep_what_was_paid_for(cls, data: Any) -> Any:
        """A target's token counts are clamped into range (and flagged), never refused; its error
        text loses anything key-shaped (blocks also remove the target's own key)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        clamped = []
        for name in ("input_tokens", "output_tokens"):
            value = data.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= INT64_MAX:
                data[name] = min(max(value, 0), INT64_MAX)
                clamped.append(name)
        if clamped and isinstance(data.get("metadata", {}), dict):
            data["metadata"] = {**data.get("metadata", {}), "clamped": clamped}
        if isinstance(data.get("error_message"), str):
            data["error_message"] = redact(data["error_message"])
        return data


class ExecutionRecord(_Clean):
    """One attempt, as stored in the executions table (one row per attempt, keyed by execution_id)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    execution_id: NonBlank = Field(default_factory=new_id)
    task_id: NonBlank
    decision_id: str | None = None
    attempt: int = Field(default=1, ge=1, le=INT32_MAX)
    timestamp: datetime = Field(default_factory=utcnow)
    task_type: NonBlank
    category: Category = Category.GENERAL
    session_id: str | None = None
    description: str | None = None
    repo: str | None = None
    file_count: Int32 | None = None
    estimated_tokens: TokenCount | None = None
    target: NonBlank
    model_tier: str | None = None
    pool_type: str | None = None
    strategy: str | None = None
    routing_confidence: float | None = Field(default=None, ge=0, le=1)
    complexity: float | None = Field(default=None, ge=0, le=1)
    success: bool
    duration_ms: NonNegativeFloat
    quality_score: float | None = Field(default=None, ge=0, le=100)
    input_tokens: TokenCount = 0
    output_tokens: TokenCount = 0
    cost_estimate: NonNegativeFloat | None = None
    actual_cost: NonNegativeFloat | None = None
    error_type: ErrorType | None = None
    error_message: str | None = None
    user_acceptance: bool | None = None
    user_rating: int | None = Field(default=None, ge=1, le=5)
    peak_memory_mb: NonNegativeFloat | None = None
    cpu_time_ms: NonNegativeFloat | None = None
    solution_summary: str | None = None
    embedding: list[Float32] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    weight: float = Field(default=1.0, ge=1, description="1/sampling rate: how many attempts this row stands for.")


class Outcome(_Strict):
    """What the router learns from after an attempt: the minimum the scorers need."""

    target: str
    task_type: str
    category: Category = Category.GENERAL
    success: bool
    duration_ms: NonNegativeFloat
    cost: NonNegativeFloat = 0.0
    quality_score: float | None = None
    embedding: tuple[float, ...] | None = Field(
        default=None, repr=False, description="The task's prompt embedding, for content-aware strategies."
    )

    @classmethod
    def from_record(cls, record: ExecutionRecord) -> Outcome:
        return cls(
            target=record.target,
            task_type=record.task_type,
            category=record.category,
            success=record.success,
            duration_ms=record.duration_ms,
            cost=record.actual_cost or 0.0,
            quality_score=record.quality_score,
            embedding=tuple(record.embedding) if record.embedding else None,
        )


class RoutedResult(_Strict):
    """What a routed task returns: the decision, every attempt made, and the answer if one succeeded."""

    task_id: str
    decision: Decision
    attempts: tuple[ExecutionRecord, ...]
    success: bool
    target: str | None = Field(default=None, description="The target whose attempt succeeded.")
    output: str | None = None
    failures: dict[str, str] = Field(default_factory=dict, description="Why each failed target failed.")
    queued_until: datetime | None = Field(default=None, description="Set when a budget queued the task.")

    @property
    def cost(self) -> float:
        return sum(a.actual_cost or 0.0 for a in self.attempts)


class QueuedTask(_Strict):
    """A task that no budget could afford now, kept until `not_before` (the budget's reset)."""

    task: Task
    reason: str
    queued_at: datetime = Field(default_factory=utcnow)
    not_before: datetime | None = None

    @property
    def timestamp(self) -> datetime:
        return self.queued_at
