"""The router's settings as a block: which targets, which store, which strategy."""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block
from pydantic import Field

from blocks.meta import BLOCKS_DOCUMENTATION_URL, logo
from blocks.validation import StrictBlock
from routing.calls.sampling import DetailSampling, Rate


class RouterSettings(Block, StrictBlock):
    """Everything a routing flow needs to assemble its router; edit it in the Prefect UI.

    Holds names only (of target and store blocks), never connections: `flows.runtime` loads the
    blocks it names when a flow asks for the runtime of the same name.

    Attributes:
        targets: Target blocks as 'block-type-slug/block-name', in default order (best first).
        store: Name of an adaptive-router-duckdb-store block; default: the local file.
        strategy: Ranking strategy, e.g. weighted, statistical, thompson.
        strategy_options: Options of the strategy, e.g. {'min_samples': 100} for weighted.
        seed: Seed for reproducible exploration.
        detail_sample_rate: Share of routed tasks whose decision and attempt rows are stored, in (0, 1].
        detail_sample_rates: That share per task type, overriding `detail_sample_rate`.
        emit_events: Emit a Prefect event per stored decision and attempt (sampled like the rows).

    Example:
        Load saved settings and route a task with the runtime of the same name:
        ```python
        from blocks.settings import RouterSettings
        from flows.route import route
        from routing import Task

        settings = RouterSettings.load("BLOCK_NAME")
        print(settings.targets, settings.strategy)
        result = route(Task(task_type="qa", payload="Hello"), runtime="BLOCK_NAME")
        ```
    """

    _block_type_name = "Adaptive Router Settings"
    _block_type_slug = "adaptive-router-settings"
    _logo_url = logo("PrefectHQ")
    _documentation_url = BLOCKS_DOCUMENTATION_URL
    _description = "Targets, store and strategy of an adaptive router."

    targets: list[str] = Field(
        min_length=1,
        description="Target blocks as 'block-type-slug/block-name', in default order (best first).",
    )
    store: str | None = Field(
        default=None, description="Name of an adaptive-router-duckdb-store block; default: the local file."
    )
    strategy: str = Field(default="thompson", description="Ranking strategy, e.g. weighted, statistical, thompson.")
    strategy_options: dict[str, Any] = Field(
        default_factory=dict, description="Options of the strategy, e.g. {'min_samples': 100} for weighted."
    )
    seed: int | None = Field(default=None, description="Seed for reproducible exploration.")
    detail_sample_rate: Rate = Field(
        default=1.0,
        description="Share of routed tasks whose decision and attempt rows are stored, in (0, 1]; every "
        "outcome still reaches the learners and budgets, and kept rows carry weight 1/rate.",
    )
    detail_sample_rates: dict[str, Rate] = Field(
        default_factory=dict, description="Share kept per task type, e.g. {'qa': 0.01}; others use the default."
    )
    emit_events: bool = Field(
        default=False,
        description="Emit adaptive-router.routing.decision and adaptive-router.execution.recorded events for "
        "the stored (sampled) decisions and attempts.",
    )

    def sampling(self) -> DetailSampling:
        """The sampling policy the runtime applies."""
        return DetailSampling(default_rate=self.detail_sample_rate, rates=self.detail_sample_rates)
