"""The local provider fleet: simulated models behind an OpenAI-compatible HTTP server on loopback."""

from blocks.fleet.config import (
    DEFAULT_FLEET_PATH,
    STABLE_FLEET_PATH,
    FleetConfig,
    FleetConfigError,
    Latency,
    ModelSpec,
    Outage,
    TokenPrice,
    load_fleet_config,
)
from blocks.fleet.knowledge import BankEntry, generate_tasks, load_bank, lookup
from blocks.fleet.launcher import FleetServer, serve
from blocks.fleet.server import create_app

__all__ = [
    "DEFAULT_FLEET_PATH",
    "STABLE_FLEET_PATH",
    "BankEntry",
    "FleetConfig",
    "FleetConfigError",
    "FleetServer",
    "Latency",
    "ModelSpec",
    "Outage",
    "TokenPrice",
    "create_app",
    "generate_tasks",
    "load_bank",
    "load_fleet_config",
    "lookup",
    "serve",
]
