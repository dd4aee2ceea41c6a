"""Experiments, their variants, and which variant a task belongs to.

Assignment is a pure function of (experiment id, task type, unit id), the unit being the task's
session when it has one (a conversation stays in one variant) and else the task itself. Hashing the
task type in makes each task type its own stratum: every stratum is split by the configured weights
independently, so a variant cannot end up with most of one kind of work by chance of the mix.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from routing.errors import ConfigError
from routing.experiments.policy import Policy
from routing.models import Task, new_id, utcnow


class Status(StrEnum):
    RUNNING = "running"
    CONCLUDED = "concluded"  # a verdict was reached (ship_treatment, keep_control, futile)
    ROLLED_BACK = "rolled_back"  # a regression: traffic went back to control, policies restored
    STOPPED = "stopped"  # stopped by hand


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    policy: Policy
    weight: float = Field(gt=0, le=1, description="Share of traffic.")


class ExperimentConfig(BaseModel):
    """How an experiment is judged; see analysis.analyze for the rule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: Literal["success", "reward"] = "success"
    min_samples: int = Field(default=100, ge=2, description="Per variant, before the primary metric decides.")
    max_samples: int | None = Field(default=None, ge=2, description="Per variant; reached without a verdict: keep control.")
    alpha: float = Field(default=0.05, gt=0, lt=1)
    srm_alpha: float = Field(default=0.001, gt=0, lt=1)
    mde: float | None = Field(default=None, gt=0, description="Smallest effect worth having; default 0.02 (success) or 0.02 L (reward).")
    tau_sd: float = Field(default=0.25, gt=0, description="Mixture scale of the sequential test, in pooled sds.")
    willingness_to_pay: float = Field(default=0.01, gt=0, description="L in the reward L x success - cost.")
    guardrail_min_samples: int = Field(default=20, ge=2)
    cost_margin: float = Field(default=0.10, ge=0, description="Tolerated rise in mean cost, relative to control.")
    latency_margin: float = Field(default=0.05, ge=0, description="Tolerated rise in the share of tasks slower than control's p95.")
    error_margin: float = Field(default=0.02, ge=0, description="Tolerated rise in the error rate (absolute).")

    @property
    def effect_floor(self) -> float:
        if self.mde is not None:
            return self.mde
        return 0.02 if self.metric == "success" else 0.02 * self.willingness_to_pay


class Experiment(BaseModel):
    """Variants[0] is the control. `snapshot_id` is the policy snapshot taken when it started."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=new_id)
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    variants: tuple[Variant, ...]
    config: ExperimentConfig = ExperimentConfig()
    status: Status = Status.RUNNING
    decision: str | None = None
    snapshot_id: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    stopped_at: datetime | None = None

    @model_validator(mode="after")
    def _variants(self) -> Experiment:
        if len(self.variants) < 2:
            raise ValueError("an experiment needs a control and at least one treatment")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must differ, got {names}")
        total = sum(v.weight for v in self.variants)
        if abs(total - 1) > 1e-6:
            raise ValueError(f"variant weights must sum to 1, got {total:g}")
        return self

    @property
    def control(self) -> Variant:
        return self.variants[0]

    @property
    def weights(self) -> list[float]:
        return [v.weight for v in self.variants]

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        from routing.errors import UnknownNameError

        raise UnknownNameError("variant", name, [v.name for v in self.variants], f"in experiment {self.name!r}")


def new_experiment(
    name: str, control: Policy, treatments: list[Policy], traffic: float = 0.5, config: ExperimentConfig | None = None
) -> Experiment:
    """Control keeps 1 - `traffic`; the treatments share `traffic` equally."""
    if not 0 < traffic < 1:
        raise ConfigError(f"traffic must be strictly between 0 and 1, got {traffic}")
    if not treatments:
        raise ConfigError("an experiment needs at least one treatment")
    share = traffic / len(treatments)
    names = ["treatment"] if len(treatments) == 1 else [f"treatment-{i + 1}" for i in range(len(treatments))]
    variants = [Variant(name="control", policy=control, weight=1 - traffic)]
    variants += [Variant(name=n, policy=p, weight=share) for n, p in zip(names, treatments)]
    return Experiment(name=name, variants=tuple(variants), config=config or ExperimentConfig())


def unit_of(task: Task) -> str:
    return task.session_id or task.id


def bucket(experiment_id: str, stratum: str, unit: str) -> float:
    """A uniform number in [0, 1) fixed by its inputs (BLAKE2b, so stable across processes and versions)."""
    digest = hashlib.blake2b(f"{experiment_id}\x1f{stratum}\x1f{unit}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def assign(experiment: Experiment, task: Task) -> Variant:
    """The variant `task` belongs to: deterministic, stratified by task type."""
    point = bucket(experiment.id, task.task_type, unit_of(task))
    edge = 0.0
    for variant in experiment.variants:
        edge += variant.weight
        if point < edge:
            return variant
    return experiment.variants[-1]
