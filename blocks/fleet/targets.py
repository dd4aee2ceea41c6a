"""The local fleet as target blocks: one OpenAI-compatible target per model at the fleet's prices, and
an Agno team and a LlamaIndex engine over the shipped documents, both served by the fleet."""

from __future__ import annotations

from blocks.fleet.config import FleetConfig
from blocks.store import DuckDBStore
from blocks.targets import AgnoMember, AgnoTarget, LlamaIndexTarget, OpenAICompatibleTarget, TargetBlock
from routing.models import Price


def fleet_targets(config: FleetConfig, base_url: str, timeout_seconds: float = 10.0) -> list[OpenAICompatibleTarget]:
    """One HTTP target per fleet model, priced as the fleet prices it."""
    return [
        OpenAICompatibleTarget(
            target_name=model.name,
            tier=model.tier,
            base_url=base_url,
            model=model.name,
            timeout_seconds=timeout_seconds,
            price=Price(
                input_per_1k_tokens=model.price.input_per_1k_tokens,
                output_per_1k_tokens=model.price.output_per_1k_tokens,
            ),
        )
        for model in config.models
    ]


def framework_targets(config: FleetConfig, base_url: str, store: DuckDBStore) -> list[TargetBlock]:
    """An Agno team and a LlamaIndex engine over the shipped documents, both served by the fleet."""
    mid = config.model("mid") or config.models[0]
    price = Price(input_per_1k_tokens=mid.price.input_per_1k_tokens, output_per_1k_tokens=mid.price.output_per_1k_tokens)
    team = AgnoTarget(
        target_name="agno-team",
        tier="agents",
        base_url=base_url,
        model=mid.name,
        mode="team",
        members=[
            AgnoMember(name="planner", role="Breaks the work into steps."),
            AgnoMember(name="reviewer", role="Checks the plan for risks."),
        ],
        price=price,
        timeout_seconds=30,
    )
    docs = LlamaIndexTarget(
        target_name="docs-rag",
        tier="rag",
        base_url=base_url,
        model=mid.name,
        embedding_base_url=base_url,
        persist_dir=str(store.path.parent / "indexes" / "docs-rag"),
        price=price,
        timeout_seconds=30,
    )
    return [team, docs]
