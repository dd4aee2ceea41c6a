"""Running a target's coroutine from a sync test."""

from __future__ import annotations

import asyncio


def run(target, coroutine):
    """Run `coroutine` in a fresh loop and close the target's clients in that same loop."""

    async def go():
        try:
            return await coroutine
        finally:
            await target.aclose()

    return asyncio.run(go())
