"""What every block of the project shares: where its documentation lives, its logo, and how it pickles.

Prefect shows `_documentation_url` and `_logo_url` in the UI's block catalogue and its
BlockStandardTestSuite requires both. The documentation is the project's README, one section per
block; the logos are the GitHub avatars of the projects behind each block (square, served at a fixed
size), so nothing has to be hosted by us.
"""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block

PROJECT_URL = "https://github.com/prefect-adaptive-router/prefect-adaptive-router"
BLOCKS_DOCUMENTATION_URL = f"{PROJECT_URL}#blocks"


def logo(github_owner: str) -> str:
    """The 400-pixel square avatar of a GitHub user or organisation."""
    return f"https://github.com/{github_owner}.png?size=400"


def _runtime_attributes(block: Block) -> list[str]:
    """The private attributes this project declares on `block`'s class (Prefect's own are not ours)."""
    return [name for name in type(block).__private_attributes__ if name not in Block.__private_attributes__]


def without_runtime_state(block: Block, state: dict[str, Any]) -> dict[str, Any]:
    """`state` (pydantic's `__getstate__` of `block`) without the private attributes we declare.

    Those hold runtime state only: locks, HTTP clients, per-event-loop runners, open spool writers,
    caches. None of it can cross a process (most of it cannot even be pickled), and a copy rebuilds it
    on first use. Prefect's own private attributes (the saved document's id and name) are kept.
    """
    ours = set(_runtime_attributes(block))
    private = {k: v for k, v in (state.get("__pydantic_private__") or {}).items() if k not in ours}
    return {**state, "__pydantic_private__": private}


def restore_runtime_state(block: Block) -> None:
    """After unpickling: our private attributes back at their defaults (fresh locks, empty caches)."""
    private = block.__pydantic_private__
    for name in _runtime_attributes(block):
        if name not in private:
            private[name] = type(block).__private_attributes__[name].get_default(call_default_factory=True)
