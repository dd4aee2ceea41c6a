"""An append-only spool of outcome records, so a routed call never waits on DuckDB's file lock.

DuckDB admits one writing process per file. Each writer therefore appends JSON lines to a segment of
its own and hands the line to the OS before the call returns: a killed process loses nothing it
acknowledged (set `fsync=True` to survive power loss too). The store ingests segments in bulk and
idempotently later. A writer holds an exclusive `flock` on its open segment; a segment whose lock can
be taken belongs to a dead writer and is safe to ingest. Sealed segments are renamed to `*.jsonl`.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Literal

from pydantic import BaseModel

RecordKind = Literal["execution", "decision", "queued_task"]
OPEN_SUFFIX = ".open"
SEALED_SUFFIX = ".jsonl"


class SpoolWriter:
    """Appends records to one segment at a time; thread-safe; rotates every `max_records` lines."""

    def __init__(self, directory: Path, max_records: int = 10_000, fsync: bool = False) -> None:
        self.directory = Path(directory)
        self.max_records = max_records
        self.fsync = fsync
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self._path: Path | None = None
        self._count = 0

    def append(self, kind: RecordKind, record: BaseModel) -> None:
        line = json.dumps({"kind": kind, "data": record.model_dump(mode="json")}, separators=(",", ":"))
        with self._lock:
            if self._file is None:
                self._open()
            assert self._file is not None
            self._file.write(line + "\n")
            self._file.flush()
            if self.fsync:
                os.fsync(self._file.fileno())
            self._count += 1
            if self._count >= self.max_records:
                self._seal()

    def close(self) -> None:
        """Seal the open segment so any ingester may take it."""
        with self._lock:
            if self._file is not None:
                self._seal()

    def __enter__(self) -> SpoolWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._path = self.directory / (name + OPEN_SUFFIX)
        self._file = open(self._path, "a", encoding="utf-8")
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._count = 0

    def _seal(self) -> None:
        assert self._file is not None and self._path is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._path.rename(self._path.with_suffix(SEALED_SUFFIX))
        self._file.close()  # releases the flock only after the rename: no ingester sees a half state
        self._file = None
        self._path = None


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
