"""Breaker gossip beside the published state: each process writes the targets its breakers hold open,
every process reads the others', so a target one worker found dead is avoided by all of them.

One small JSON file per process (`<location>/<host>-<pid>.json`: target -> retry time, epoch seconds),
written whole (under a hidden name, then renamed: readers never see half a file); no locks, no database.
The location is a local directory beside the store or, when the store has a published URL, the
`breakers/` folder under it on any fsspec URL (S3, a shared filesystem), so workers on other machines
see each other's breakers: one fsspec filesystem and root serve both (fsspec's "file" protocol here).

A process publishes when one of its breakers changes state and reads its peers (one listing, then one
batched `cat`) at most every `interval` seconds, so a dead target found anywhere is avoided everywhere
within `interval` plus one routed call (the time until the reader next looks); peers stop avoiding it
at the retry time its breaker set, and the breaker that tripped probes it as usual. A location that
cannot be reached is logged once per outage and never fails a routed call: the board keeps what it
adopted last.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from blocks.store.remote_spool import display_url
from blocks.store.remote_state import filesystem
from routing.calls.breaker import BreakerBoard

DEFAULT_INTERVAL = 2.0
MAX_BACKOFF_DOUBLINGS = 7
"""After failed looks the next waits interval x 2^failures, at most 2^7 intervals (~4 min at 2 s): a look
runs inside a routed call, and a location that hangs must not hold one call in every interval."""

logger = logging.getLogger("adaptive_router")


class BreakerGossip:
    """Publishes one board's open breakers and feeds it those of every other process at `location`
    (a local directory or an fsspec URL)."""

    def __init__(
        self,
        location: str | Path,
        board: BreakerBoard,
        interval: float = DEFAULT_INTERVAL,
        storage_options: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        self.location = str(location)
        self.fs, self.root = filesystem(self.location, storage_options)
        self.board = board
        self.interval = interval
        self.name = name or f"{socket.gethostname()}-{os.getpid()}.json"
        self._last_read = float("-inf")
        self._lock = threading.Lock()
        self._failing = False
        self._failed_reads = 0

    def publish(self) -> bool:
        """Write this process's open breakers; False (logged once) if the location cannot be written."""
        mine = f"{self.root}/{self.name}"
        part = f"{self.root}/.{self.name}.{threading.get_ident()}.part"  # no peer lists it: not *.json
        try:
            self.fs.makedirs(self.root, exist_ok=True)
            self.fs.pipe_file(part, json.dumps(self.board.open_until()).encode())
            self.fs.mv(part, mine)
        except Exception as exc:  # noqa: BLE001 -- fsspec backends raise their own errors; routing goes on
            self._unreachable("written", exc)
            return False
        self._reachable()
        return True

    def maybe_read(self, now: float | None = None) -> bool:
        """Adopt the peers' open breakers if `interval` has passed since the last look; True if it looked
        (a look that failed keeps what was adopted before)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if now - self._last_read < self.interval:
                return False
            self._last_read = now
        try:
            peers = self.peers()
        except Exception as exc:  # noqa: BLE001 -- as in publish
            self._unreachable("read", exc)
            self._failed_reads += 1
            with self._lock:  # the next look waits longer: see MAX_BACKOFF_DOUBLINGS
                self._last_read = now + self.interval * (2 ** min(self._failed_reads, MAX_BACKOFF_DOUBLINGS) - 1)
            return True
        self._reachable()
        self._failed_reads = 0
        self.board.adopt_peers(peers)
        return True

    def peers(self) -> Mapping[str, float]:
        """Every other process's open breakers, merged (the latest retry time per target); raises what
        the filesystem raises when the location cannot be listed (a missing one has no peers)."""
        self.fs.invalidate_cache(self.root)  # s3fs & co. cache listings: peers come and go
        try:
            listed = self.fs.ls(self.root, detail=False)
        except FileNotFoundError:
            return {}
        paths = [p for p in listed if p.endswith(".json") and p.rsplit("/", 1)[-1] != self.name]
        merged: dict[str, float] = {}
        if not paths:
            return merged
        for body in self.fs.cat(paths, on_error="return").values():
            try:
                if isinstance(body, Exception):  # a peer gone since the listing: next look
                    continue
                entries = json.loads(body)
            except ValueError:  # not JSON (a foreign file): skipped
                continue
            if not isinstance(entries, dict):
                continue
            for target, until in entries.items():
                if isinstance(target, str) and isinstance(until, int | float):
                    merged[target] = max(until, merged.get(target, until))
        return merged

    def _unreachable(self, verb: str, exc: Exception) -> None:
        if not self._failing:
            logger.warning(
                "breaker gossip at %s cannot be %s, routing on what this process knows: %s",
                display_url(self.location), verb, exc,
            )
        self._failing = True

    def _reachable(self) -> None:
        if self._failing:
            logger.info("breaker gossip at %s reachable again", display_url(self.location))
        self._failing = False
