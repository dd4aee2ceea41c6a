"""What a call to a target costs: price presets per target kind, an estimate before the call, the bill after.

A target's price lives on `Target.price` (per 1k input and output tokens, per second of run time, per
call). A target built without one is free, which is right for local targets; a block describing a cloud
target that states no price of its own should build it with `default_price(kind, cloud=True)`. Keeping
the price on the Target, rather than a separate cloud/local table here, means the estimate, the bill and
the strategies all read one number that the user can edit in the block.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType

from routing.models import Price, Target, TargetKind, Task

FREE = Price()

CLOUD_PRICES: Mapping[TargetKind, Price] = MappingProxyType(
    {
        # An OpenAI-compatible hosted model at gpt-3.5-turbo-class list prices; real endpoints set their own.
        TargetKind.HTTP: Price(input_per_1k_tokens=0.0005, output_per_1k_tokens=0.0015),
        TargetKind.PREFECT_DEPLOYMENT: Price(per_second=0.0001),  # per workflow second
        TargetKind.AGNO: Price(per_second=0.0002),  # per agent second
        TargetKind.LLAMAINDEX: Price(per_call=0.00005),  # per query
    }
)

# Used until a target has running averages of its own: a short answer taking about a second.
DEFAULT_OUTPUT_TOKENS = 256
DEFAULT_SECONDS = 1.0


def default_price(kind: TargetKind, cloud: bool) -> Price:
    """The preset price of a target of `kind`: the cloud rate above, or free when it runs locally."""
    return CLOUD_PRICES[kind] if cloud else FREE


def check_amount(name: str, value: float) -> None:
    """Reject a negative, infinite or NaN amount, naming the argument at fault."""
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def usd(amount: float) -> str:
    """Dollars for people: three significant digits for cents and below ($0.0025), cents above a dollar."""
    if abs(amount) >= 1:
        return f"${amount:,.2f}"
    return "$" + format(Decimal(f"{amount:.3g}"), "f")


def estimate_cost(
    target: Target,
    task: Task,
    expected_output_tokens: float | None = None,
    expected_seconds: float | None = None,
) -> float:
    """Dollars a call of `task` on `target` is expected to cost, known before the call.

    Input tokens come from `task.estimated_tokens`; pass the target's running averages (see
    `UsageAverages`) for output tokens and run time, else the documented defaults are used. A budget
    reserves this figure, so a caller that prefers fewer overshoots can pass a high quantile instead.
    """
    out = DEFAULT_OUTPUT_TOKENS if expected_output_tokens is None else expected_output_tokens
    seconds = DEFAULT_SECONDS if expected_seconds is None else expected_seconds
    check_amount("expected_output_tokens", out)
    check_amount("expected_seconds", seconds)
    return target.price.cost(task.estimated_tokens, out, seconds)


def actual_cost(target: Target, input_tokens: int, output_tokens: int, seconds: float) -> float:
    """Dollars a finished call cost, from what it used."""
    check_amount("input_tokens", input_tokens)
    check_amount("output_tokens", output_tokens)
    check_amount("seconds", seconds)
    return target.price.cost(input_tokens, output_tokens, seconds)


@dataclass
class _Usage:
    n: int = 0
    output_tokens: float = 0.0
    seconds: float = 0.0


class UsageAverages:
    """Running means of output tokens and run time per (target, task type), to feed `estimate_cost`."""

    def __init__(self) -> None:
        self._usage: dict[tuple[str, str], _Usage] = {}

    def observe(self, target: str, task_type: str, output_tokens: int, seconds: float) -> None:
        check_amount("output_tokens", output_tokens)
        check_amount("seconds", seconds)
        usage = self._usage.setdefault((target, task_type), _Usage())
        usage.n += 1
        usage.output_tokens += output_tokens
        usage.seconds += seconds

    def estimate(self, target: Target, task: Task) -> float:
        """`estimate_cost` with this target's means for the task type, or the defaults before any call."""
        usage = self._usage.get((target.name, task.task_type))
        if usage is None:
            return estimate_cost(target, task)
        return estimate_cost(target, task, usage.output_tokens / usage.n, usage.seconds / usage.n)
