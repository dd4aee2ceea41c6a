"""The fleet's configuration: which simulated models exist and how each one behaves.

Loaded from TOML and validated strictly (unknown keys are errors) so that a typo in a fleet file fails
at load time with the file and field named, instead of silently giving a model default behaviour.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from routing.errors import FleetConfigError
from routing.models import FINITE, Category

DEFAULT_FLEET_PATH = Path(__file__).with_name("default.toml")
STABLE_FLEET_PATH = Path(__file__).with_name("stable.toml")

Probability = Annotated[float, Field(ge=0, le=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, **FINITE)  # `sigma = inf` would hang a model


class Latency(_Strict):
    """Lognormal response time: half the calls are faster than `median_ms`; `sigma` sets the tail."""

    median_ms: PositiveFloat = Field(le=3_600_000)
    sigma: NonNegativeFloat = Field(default=0.3, le=5, description="Above ~5 the tail runs to days.")


class TokenPrice(_Strict):
    """What the model would cost; informational, published in /v1/models for the router to read."""

    input_per_1k_tokens: NonNegativeFloat = 0.0
    output_per_1k_tokens: NonNegativeFloat = 0.0


class Outage(_Strict):
    """A failure window counted in requests to one model (the first request is number 0)."""

    start_request: NonNegativeInt
    end_request: NonNegativeInt | None = Field(default=None, description="Exclusive; None lasts forever.")
    mode: Literal["error", "hang", "malformed", "rate_limit"] = "error"

    @model_validator(mode="after")
    def _window_not_empty(self) -> Outage:
        if self.end_request is not None and self.end_request <= self.start_request:
            raise PydanticCustomError(
                "empty_window",
                "end_request ({end}) must be greater than start_request ({start})",
                {"end": self.end_request, "start": self.start_request},
            )
        return self

    def covers(self, request_number: int) -> bool:
        return self.start_request <= request_number and (
            self.end_request is None or request_number < self.end_request
        )


class ModelSpec(_Strict):
    """One simulated model: how often it is right per category, how fast, how reliable, how dear."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:\-]+$")
    tier: str | None = None
    quality: dict[Category, Probability] = Field(default_factory=dict)
    default_quality: Probability = 0.5
    latency: Latency
    error_rate: Probability = 0.0
    rate_limit_rate: Probability = 0.0
    retry_after_seconds: NonNegativeInt = Field(default=1, le=86_400)
    price: TokenPrice = TokenPrice()
    verbosity: NonNegativeInt = Field(default=0, le=1_000_000, description="Extra completion tokens billed per reply.")
    outages: tuple[Outage, ...] = ()

    @model_validator(mode="after")
    def _failure_rates_fit(self) -> ModelSpec:
        if self.error_rate + self.rate_limit_rate > 1:
            raise PydanticCustomError(
                "rates_sum", "error_rate + rate_limit_rate must not exceed 1, got {total}",
                {"total": self.error_rate + self.rate_limit_rate},
            )
        return self

    def quality_for(self, category: Category) -> float:
        return self.quality.get(category, self.default_quality)

    def outage_at(self, request_number: int) -> Outage | None:
        return next((o for o in self.outages if o.covers(request_number)), None)


class FleetConfig(_Strict):
    """The whole fleet; `seed` makes single-threaded runs reproducible."""

    seed: int = Field(default=0, ge=0, lt=2**63)
    hang_seconds: PositiveFloat = Field(default=30.0, le=86_400, description="How long a 'hang' outage stalls a call.")
    models: tuple[ModelSpec, ...] = Field(min_length=1)

    @field_validator("models")
    @classmethod
    def _unique_names(cls, models: tuple[ModelSpec, ...]) -> tuple[ModelSpec, ...]:
        seen: set[str] = set()
        for model in models:
            if model.name in seen:
                raise PydanticCustomError(
                    "duplicate_name", "duplicate model name '{name}'", {"name": model.name}
                )
            seen.add(model.name)
        return models

    def model(self, name: str) -> ModelSpec | None:
        return next((m for m in self.models if m.name == name), None)


def load_fleet_config(path: str | Path = DEFAULT_FLEET_PATH) -> FleetConfig:
    """Read and validate a fleet TOML file, raising FleetConfigError with file and field named."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FleetConfigError(f"{path}: cannot read fleet file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise FleetConfigError(f"{path}: not UTF-8 text (byte {exc.start}); TOML files must be UTF-8") from exc
    except tomllib.TOMLDecodeError as exc:
        raise FleetConfigError(f"{path}: invalid TOML: {exc}") from exc
    try:
        return FleetConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{_field_path(err['loc'], raw)}: {err['msg']}" for err in exc.errors())
        raise FleetConfigError(f"{path}: {problems}") from exc


def _field_path(loc: tuple[int | str, ...], raw: dict[str, Any]) -> str:
    """Dotted path of a field, naming a model by its `name` rather than its index when it has one."""
    parts = [str(part) for part in loc]
    if len(loc) >= 2 and loc[0] == "models" and isinstance(loc[1], int):
        models = raw.get("models")
        entry = models[loc[1]] if isinstance(models, list) and loc[1] < len(models) else None
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            parts[1] = entry["name"]
    return ".".join(parts) or "(top level)"
