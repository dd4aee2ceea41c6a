"""The local fleet as target blocks: one OpenAI-compatible target per model, at the fleet's prices."""

from __future__ import annotations

from blocks.fleet.config import FleetConfig
from blocks.targets import OpenAICompatibleTarget
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
