"""The embedded default runtime: the local fleet on loopback, a local DuckDB file, no keys.

The demo, `adaptive-router route` and the gateway route through it when no saved runtime is named:
the fleet's models as HTTP targets (plus, for the demo, an Agno team and a LlamaIndex engine served by
the same fleet), a strategy built by name, and the store's published state and learning state.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from blocks.fleet.config import load_fleet_config
from blocks.fleet.launcher import FleetServer
from blocks.fleet.targets import fleet_targets, framework_targets
from blocks.store import DuckDBStore
from blocks.targets import TargetBlock
from flows.runtime import RoutingRuntime, log_transition, register_runtime, unregister_runtime
from routing.calls.breaker import BreakerBoard, BreakerConfig
from routing.context.embedding import Embedder
from routing.spend.budgets import Budget
from routing.strategies.registry import build_strategy

LOCAL_RUNTIME = "local"


@contextmanager
def local_runtime(
    store: DuckDBStore,
    *,
    strategy: str = "thompson",
    seed: int | None = None,
    willingness_to_pay: float | None = 0.01,
    budgets: Sequence[Budget] = (),
    fleet_config: Path | None = None,
    frameworks: bool = False,
    breaker: BreakerConfig | None = None,
    name: str = LOCAL_RUNTIME,
    embedder: Embedder | None = None,
) -> Iterator[RoutingRuntime]:
    """Start the fleet, register a runtime `name` over it, and tear both down on exit.

    With `willingness_to_pay` L the strategy maximises L * success - cost; `frameworks` adds the Agno
    team and LlamaIndex engine the fleet serves.
    """
    config = load_fleet_config(fleet_config) if fleet_config else load_fleet_config()
    with FleetServer(config) as fleet:
        targets: list[TargetBlock] = list(fleet_targets(config, fleet.base_url))
        if frameworks:
            targets += framework_targets(config, fleet.base_url, store)
        names = [t.target_name for t in targets]
        options = {"willingness_to_pay": willingness_to_pay} if willingness_to_pay else {}
        runtime = RoutingRuntime.build(
            targets, store, build_strategy(strategy, names, seed=seed, **options), budgets=budgets,
            breakers=BreakerBoard(breaker, on_transition=log_transition),
        )
        runtime.embedder = embedder
        register_runtime(name, runtime)
        try:
            yield runtime
        finally:
            unregister_runtime(name)
