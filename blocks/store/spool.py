"""An append-only spool of outcome records, so a routed call never waits on DuckDB's file lock.

DuckDB admits one writing process per file. Each writer therefore appends JSON lines to a segment of
its own and hands the line to the OS before the call returns: a killed process loses nothing it
acknowledged (set `fsync=True` to survive power loss too). The store ingests segments in bulk and
idempotently later. A writer holds an exclusive `flock` on its open segment; a segment whose lock can
be taken belongs to a dead writer and is safe to ingest. Sealed segments are renamed to `*.jsonl`.

A segment is created under a hidden temporary name, locked, and only then renamed to `*.open`, so no
ingester can ever see an open segment before its writer holds the lock (it would judge the writer
dead, ingest and unlink the file, and every later append would go to an unlinked file).

A spool that cannot be written (disk full, read-only mount) never raises into the routed call: the
line is kept in memory, retried on the next append and on close, and `on_trouble` is told once per
episode that outcomes are at risk.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel

RecordKind = Literal["execution", "decision", "queued_task"]
OPEN_SUFFIX = ".open"
SEALED_SUFFIX = ".jsonl"
CREATING_SUFFIX = ".creating"
MAX_PENDING = 100_000
STALE_CREATING_SECONDS = 60.0

logger = logging.getLogger("adaptive_router.spool")


class SpoolWriter:
    """Appends records to one segment at a time; thread-safe; rotates every `max_records` lines."""

    def __init__(
        self,
        directory: Path,
        max_records: int = 10_000,
        fsync: bool = False,
        on_trouble: Callable[[str], None] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.max_records = max_records
        self.fsync = fsync
        self.on_trouble = on_trouble
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._path: Path | None = None
        self._count = 0
        self._size = 0
        self._pending: collections.deque[bytes] = collections.deque()
        self._dropped = 0
        self._in_trouble = False

    @property
    def pending(self) -> int:
        """Lines held in memory because the spool could not take them (retried on every append)."""
        return len(self._pending)

    def append(self, kind: RecordKind, record: BaseModel) -> None:
        """Spool one record; never raises: an unwritable spool keeps the line in memory instead."""
        line = json.dumps({"kind": kind, "data": record.model_dump(mode="json")}, separators=(",", ":"))
        with self._lock:
            if len(self._pending) >= MAX_PENDING:
                self._pending.popleft()
                self._dropped += 1
            self._pending.append(line.encode("utf-8", "surrogatepass") + b"\n")
            self._drain()

    def flush_pending(self) -> int:
        """Retry the lines held in memory; returns how many are still held."""
        with self._lock:
            self._drain()
            return len(self._pending)

    def close(self) -> None:
        """Seal the open segment so any ingester may take it (after one more try of held lines)."""
        with self._lock:
            self._drain()
            if self._fd is not None:
                try:
                    self._seal()
                except OSError as exc:
                    self._abandon(exc)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals (called with self._lock held) ----------------------------------------------------

    def _drain(self) -> None:
        while self._pending:
            try:
                if self._fd is None:
                    self._open()
                assert self._fd is not None
                _write_all(self._fd, self._pending[0])
                if self.fsync:
                    os.fsync(self._fd)
            except OSError as exc:
                self._cut_partial_line()
                self._abandon(exc)
                return
            self._size += len(self._pending.popleft())
            self._count += 1
            if self._count >= self.max_records:
                try:
                    self._seal()
                except OSError as exc:
                    self._abandon(exc)
                    return
        if self._in_trouble:
            self._in_trouble = False
            self._tell(f"spool {self.directory} writable again; held outcomes written"
                       + (f", {self._dropped} dropped over the memory cap" if self._dropped else ""))

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        creating = self.directory / f".{name}{CREATING_SUFFIX}"  # matches no ingester's glob
        fd = os.open(creating, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path = self.directory / (name + OPEN_SUFFIX)
            os.rename(creating, path)  # visible to ingesters only now, already locked
        except BaseException:
            os.close(fd)
            creating.unlink(missing_ok=True)
            raise
        self._fd, self._path, self._count, self._size = fd, path, 0, 0

    def _seal(self) -> None:
        assert self._fd is not None and self._path is not None
        os.fsync(self._fd)
        self._path.rename(self._path.with_suffix(SEALED_SUFFIX))
        os.close(self._fd)  # releases the flock only after the rename: no ingester sees a half state
        self._fd, self._path = None, None

    def _cut_partial_line(self) -> None:
        """Drop the part of a line a full disk cut short (shrinking needs no space): the whole line is
        retried in the next segment, so the abandoned one must not end in a torn copy of it."""
        if self._fd is not None:
            with contextlib.suppress(OSError):  # else the ingester keeps a torn last line aside
                os.ftruncate(self._fd, self._size)

    def _abandon(self, exc: OSError) -> None:
        """Give up the current segment (an ingester takes what it holds) and report the trouble once."""
        if self._fd is not None:
            if self._size == 0 and self._path is not None:  # nothing in it: leave no empty segments behind
                self._path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd, self._path = None, None
        if not self._in_trouble:
            self._in_trouble = True
            self._tell(
                f"outcomes at risk: spool {self.directory} cannot be written ({exc.strerror or exc}); "
                f"{len(self._pending)} held in memory and retried on the next call"
            )

    def _tell(self, message: str) -> None:
        logger.warning(message)
        if self.on_trouble is not None:
            try:
                self.on_trouble(message)
            except Exception:  # a failing notifier must not fail the routed call
                logger.exception("could not report spool trouble")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def claimable_segments(directory: Path) -> Iterator[Path]:
    """Sealed segments, then open segments whose writer has died (oldest first)."""
    directory = Path(directory)
    if not directory.is_dir():
        return
    for path in sorted(directory.glob("*" + SEALED_SUFFIX), key=_mtime):
        yield path
    for path in sorted(directory.glob("*" + OPEN_SUFFIX), key=_mtime):
        if _writer_is_dead(path):
            yield path
    for path in directory.glob(".*" + CREATING_SUFFIX):  # a writer killed while creating: always empty
        if time.time() - _mtime(path) > STALE_CREATING_SECONDS and _writer_is_dead(path):
            path.unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _writer_is_dead(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return True
    except FileNotFoundError:
        return False
