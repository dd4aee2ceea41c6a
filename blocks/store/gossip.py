"""Breaker gossip beside the published state: each process writes the targets its breakers hold open,
every process reads the others', so a target one worker found dead is avoided by all of them.

One small JSON file per process (`<dir>/<host>-<pid>.json`: target -> retry time, epoch seconds),
replaced atomically; no locks, no database. A process publishes when one of its breakers changes
state and reads its peers at most every `interval` seconds, so a dead target found anywhere is avoided
everywhere within `interval` plus one routed call (the time until the reader next looks); peers stop
avoiding it at the retry time its breaker set, and the breaker that tripped probes it as usual.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from routing.calls.breaker import BreakerBoard

DEFAULT_INTERVAL = 2.0


class BreakerGossip:
    """Publishes one board's open breakers and feeds it those of every other process on `directory`."""

    def __init__(self, directory: Path, board: BreakerBoard, interval: float = DEFAULT_INTERVAL) -> None:
        self.directory = Path(directory)
        self.board = board
        self.interval = interval
        self.name = f"{socket.gethostname()}-{os.getpid()}.json"
        self._last_read = float("-inf")
        self._lock = threading.Lock()

    def publish(self) -> None:
        """Write this process's open breakers (tmp file, then an atomic rename)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        mine = self.directory / self.name
        tmp = mine.with_suffix(f".tmp{threading.get_ident()}")
        tmp.write_text(json.dumps(self.board.open_until()))
        os.replace(tmp, mine)

    def maybe_read(self, now: float | None = None) -> bool:
        """Adopt the peers' open breakers if `interval` has passed since the last look; True if it looked."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if now - self._last_read < self.interval:
                return False
            self._last_read = now
        self.board.adopt_peers(self.peers())
        return True

    def peers(self) -> Mapping[str, float]:
        """Every other process's open breakers, merged (the latest retry time per target)."""
        merged: dict[str, float] = {}
        if not self.directory.is_dir():
            return merged
        for path in self.directory.glob("*.json"):
            if path.name == self.name:
                continue
            try:
                entries = json.loads(path.read_text())
            except (OSError, ValueError):  # a peer mid-replace or gone: next look
                continue
            if not isinstance(entries, dict):
                continue
            for target, until in entries.items():
                if isinstance(target, str) and isinstance(until, int | float):
                    merged[target] = max(until, merged.get(target, until))
        return merged
