"""The blocks a fresh server needs before any deployment can route: a store, targets, a `default` runtime.

`adaptive-router up` runs this against its server. With provider keys in the environment the targets
are the discovered providers at their list prices, their keys referenced by environment variable name
(never copied into a block); without, they are the local fleet's models at the fleet's prices. Saving
again overwrites, so `up` can be re-run.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from blocks.fleet.config import load_fleet_config
from blocks.fleet.targets import fleet_targets
from blocks.settings import RouterSettings
from blocks.store import DuckDBStore
from blocks.targets.discovery import discover_targets

DEFAULT_NAME = "default"
_UNSAFE = re.compile(r"[^a-z0-9-]+")


class Provisioned(BaseModel):
    settings: str
    store: str
    targets: list[str]
    source: str  # "providers" or "local fleet"


def block_name(target_name: str) -> str:
    """A block document name (lowercase letters, digits, dashes) for a target name like `openai:gpt-4o`."""
    return _UNSAFE.sub("-", target_name.lower()).strip("-") or "target"


def provision(database: Path, fleet_url: str, fleet_config: Path | None = None, strategy: str = "thompson") -> Provisioned:
    """Save the store, target and settings blocks named `default` (targets by their own names)."""
    store = DuckDBStore(database=str(database.resolve()))
    store.save(DEFAULT_NAME, overwrite=True)
    targets = discover_targets(reference_keys=True)
    source = "providers"
    if not targets:
        config = load_fleet_config(fleet_config) if fleet_config else load_fleet_config()
        targets, source = fleet_targets(config, fleet_url), "local fleet"
    slugs = []
    for target in targets:
        name = block_name(target.target_name)
        target.save(name, overwrite=True)
        slugs.append(f"{target.get_block_type_slug()}/{name}")
    RouterSettings(targets=slugs, store=DEFAULT_NAME, strategy=strategy).save(DEFAULT_NAME, overwrite=True)
    return Provisioned(settings=DEFAULT_NAME, store=DEFAULT_NAME, targets=slugs, source=source)


if __name__ == "__main__":  # `up` runs this in a subprocess that talks to its server
    import sys

    done = provision(Path(sys.argv[1]), sys.argv[2])
    print(done.model_dump_json())
