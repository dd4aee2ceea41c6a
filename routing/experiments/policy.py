"""A routing policy: a strategy with its options (or a fixed order of targets), for all task types or one.

Spec strings are what the CLI takes: `thompson`, `thompson:discount=0.99`, `weighted:min_samples=20`,
`fixed:small,mid`, several options separated by commas (`thompson:discount=0.99,willingness_to_pay=0.01`).
A spec is checked when parsed (the strategy must exist, options must be `key=value`) and again when
built, where the strategy's own configuration names any option it does not know.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from routing.errors import ConfigError, UnknownNameError
from routing.strategies.base import Strategy
from routing.strategies.registry import STRATEGY_NAMES, build_strategy

OptionValue = bool | int | float | str


class Policy(BaseModel):
    """A named strategy with options; `order` is the target order of a `fixed` policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: str = Field(min_length=1)
    options: dict[str, OptionValue] = Field(default_factory=dict)
    order: tuple[str, ...] = ()
    task_type: str | None = Field(default=None, description="The task type it governs; None: all of them.")

    @property
    def spec(self) -> str:
        """The spec string that parses back to this policy."""
        if self.strategy == "fixed":
            return "fixed" + (":" + ",".join(self.order) if self.order else "")
        options = ",".join(f"{k}={_render(v)}" for k, v in sorted(self.options.items()))
        return self.strategy + (f":{options}" if options else "")

    def build(self, targets: Sequence[str], seed: int | None = None, **extra: Any) -> Strategy:
        """A fresh strategy for this policy over `targets`; `extra` options (e.g. objectives) go along."""
        if self.strategy == "fixed":
            return build_strategy("fixed", targets, seed, order=self.order)
        try:
            return build_strategy(self.strategy, targets, seed, **{**extra, **self.options})
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"policy {self.spec!r}: {exc}") from exc


def parse_policy(spec: str, task_type: str | None = None) -> Policy:
    """Parse `strategy[:key=value,...]` or `fixed[:target,...]`; raises ConfigError naming the fault."""
    text = spec.strip()
    name, _, rest = text.partition(":")
    name = name.strip()
    if name not in STRATEGY_NAMES:
        raise UnknownNameError("strategy", name, STRATEGY_NAMES, f"in policy spec {spec!r}")
    parts = [p.strip() for p in rest.split(",")] if rest.strip() else []
    if name == "fixed":
        if any("=" in p or not p for p in parts):
            raise ConfigError(f"policy spec {spec!r}: a fixed policy lists targets, e.g. fixed:small,mid")
        return Policy(strategy=name, order=tuple(parts), task_type=task_type)
    options: dict[str, OptionValue] = {}
    for part in parts:
        key, eq, value = part.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise ConfigError(f"policy spec {spec!r}: option {part!r} is not key=value")
        if key.strip() in options:
            raise ConfigError(f"policy spec {spec!r}: option {key.strip()!r} given twice")
        options[key.strip()] = _value(value.strip())
    return Policy(strategy=name, options=options, task_type=task_type)


def _value(text: str) -> OptionValue:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _render(value: OptionValue) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
