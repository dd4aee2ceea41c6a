"""Breaker gossip beside the published state: each process writes the targets its breakers hold open,
every process reads the others', so a target one worker found dead is avoided by all of them.

One small JSON file per process (`<location>/<host>-<pid>.json`: target -> retry time, epoch seconds),
written whole (under a hidden name, then renamed: readers never see half a file); no locks, no database.
The location is a local directory beside the store or, when the store has a published URL, the
`breakers/` folder under it on any fsspec URL (S3, a shared filesystem), so workers on other machines
see each other's breakers: one fsspec filesystem and root serve both (fsspec's "file" protocol here).

All I/O runs on a background thread (blocks/store/lookout.py), also for a local directory (its look
is a listing plus a read of every peer's file, and one code path serves both): a breaker that changes
state wakes it to write this process's file, and every `interval` seconds it reads the peers (one
listing, then one batched `cat`) and swaps what they hold open into the board. A dead target found
anywhere is thus avoided everywhere within about `interval` plus one write and one read, and no routed
call ever waits on the location; peers stop avoiding it at the retry time its breaker set, and the
breaker that tripped probes it as usual. A location that cannot be reached is logged once per outage,
looks back off, and the board keeps what it adopted last; a write that failed is retried.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from blocks.store.lookout import Lookout
from blocks.store.remote_spool import display_url
from blocks.store.remote_state import RemoteDirectory
from routing.calls.breaker import BreakerBoard

DEFAULT_INTERVAL = 2.0


class BreakerGossip:
    """Publishes one board's open breakers and feeds it those of every other process at `location`
    (a local directory or an fsspec URL), from a background thread."""

    def __init__(
        self,
        location: str | Path,
        board: BreakerBoard,
        interval: float = DEFAULT_INTERVAL,
        storage_options: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        self.location = str(location)
        self.remote = RemoteDirectory(self.location, storage_options)
        self.board = board
        self._name = name
        self.lookout = Lookout(self._look, interval, f"breaker gossip at {display_url(self.location)}")
        self._unwritten = False  # a breaker changed since this process's file was last written
        self._upload = uuid.uuid4().hex  # two gossips in one process never share a half-written upload

    @property
    def name(self) -> str:
        """This process's file: `<host>-<pid>.json` unless named (a forked child writes its own)."""
        return self._name or f"{socket.gethostname()}-{os.getpid()}.json"

    def publish(self) -> None:
        """Have this process's open breakers written at once (by the thread: never blocks a call)."""
        self._unwritten = True
        self.lookout.wake()

    def watch(self) -> None:
        """Start reading the peers in the background (an attribute read once it runs)."""
        self.lookout.start()

    def close(self) -> None:
        self.lookout.close()

    def _look(self) -> None:
        """On the lookout's thread: write this process's file if a breaker changed, then adopt the
        peers' even if that write failed (read-only credentials still learn what others found);
        raises what the filesystem raised, for backoff and logging (a failed write is retried)."""
        refused: Exception | None = None
        if self._unwritten:
            self._unwritten = False  # before reading the board: a change from now on is written next time
            try:
                self.write()
            except Exception as exc:  # noqa: BLE001 -- fsspec backends raise their own errors
                self._unwritten, refused = True, exc
        self.board.adopt_peers(self.peers())
        if refused is not None:
            raise refused

    def write(self) -> None:
        """Write this process's open breakers (a peer never lists the hidden upload: not *.json)."""
        fs, root = self.remote.fs, self.remote.root
        mine, part = f"{root}/{self.name}", f"{root}/.{self.name}.{self._upload}.part"
        fs.makedirs(root, exist_ok=True)
        fs.pipe_file(part, json.dumps(self.board.open_until()).encode())
        fs.mv(part, mine)

    def peers(self) -> Mapping[str, float]:
        """Every other process's open breakers, merged (the latest retry time per target); raises what
        the filesystem raises when the location cannot be listed (a missing one has no peers)."""
        fs, root = self.remote.fs, self.remote.root
        fs.invalidate_cache(root)  # s3fs & co. cache listings: peers come and go
        try:
            listed = fs.ls(root, detail=False)
        except FileNotFoundError:
            return {}
        mine = self.name
        paths = [p for p in listed if p.endswith(".json") and p.rsplit("/", 1)[-1] != mine]
        merged: dict[str, float] = {}
        if not paths:
            return merged
        for body in fs.cat(paths, on_error="return").values():
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
