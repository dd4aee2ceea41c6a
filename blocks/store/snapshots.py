"""Publishing the router's learned state as a JSON file beside the DuckDB file.

Routers load `<store dir>/published/state.json` and never wait on DuckDB's file lock. The file is a
pure function of the store's tables (target_stats, target_priors, capability_scores), so any flow may
republish it at any time: the recalculation after new statistics, the benchmark after new capability
scores. It is written to a temporary file and renamed over the old one (a reader sees the old state or
the new, never half of one), under an exclusive lock so two publishers cannot interleave reading the
tables and writing the file. Each publication is also recorded in the published_states table.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from blocks.store.store import Store, utc_naive
from routing.evaluation.capability import CapabilityTable
from routing.models import Category
from routing.published import BanditPrior, PublishedState
from routing.stats.snapshot import StatsEntry, StatsSnapshot
from routing.validation import describe

STATE_FILE = Path("published") / "state.json"


@dataclass(frozen=True)
class Publication:
    state_id: str
    path: Path
    created_at: datetime
    stats_entries: int
    priors: int
    capabilities: int


def published_path(store: Store) -> Path:
    """Where `store`'s published state lives."""
    return store.path.parent / STATE_FILE


def load_published(path: Path) -> PublishedState | None:
    """The state published at `path`, or None if nothing was published yet."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return PublishedState.model_validate_json(text)
    except ValidationError as exc:
        raise ValueError(f"published state {path} is invalid: {describe(exc, True, 'document')}") from exc


class PublishedReader:
    """Loads the published state only when the file changed since the last look: a long-lived router
    calls `changed()` before routing and pays one `stat` when nothing was republished."""

    def __init__(self, path: Path, load: Callable[[Path], Any] = load_published) -> None:
        self.path = Path(path)
        self.load = load  # another published file (e.g. the live policies) brings its own loader
        self._stamp: tuple[int, int, int] | None = None

    def changed(self) -> PublishedState | None:
        """The state if it was (re)published since the last call, else None."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return None
        stamp = (
            info.st_ino,
            info.st_mtime_ns,
            info.st_size,
        )  # os.replace gives every publication a new inode
        if stamp == self._stamp:
            return None
        state = self.load(self.path)
        self._stamp = stamp
        return state

    def close(self) -> None:
        """Nothing to stop: a local file is looked at by the caller (see RemotePublishedReader)."""


def publish(store: Store, reason: str) -> Publication:
    """Build the state from the store's tables and publish it atomically; `reason` is recorded."""
    path = published_path(store)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(path.with_name(".lock")), store.connect() as con:
        state = build_state(con)
        text = state.model_dump_json(indent=1)
        _replace(path, text)
        publication = Publication(
            state_id=uuid.uuid4().hex,
            path=path,
            created_at=state.created_at,
            stats_entries=len(state.snapshot.entries),
            priors=len(state.priors),
            capabilities=len(state.capability_table()),
        )
        con.execute(
            "INSERT INTO published_states VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                publication.state_id, utc_naive(state.created_at), reason, str(path), publication.stats_entries,
                publication.priors, publication.capabilities, hashlib.sha256(text.encode()).hexdigest(),
            ],
        )  # fmt: skip
    return publication


def build_state(con) -> PublishedState:
    """The state the store's tables describe now."""
    now = datetime.now(UTC)
    entries = tuple(
        StatsEntry(
            target=r[0],
            task_type=r[1],
            n=r[2],
            successes=r[3],
            p50_latency_ms=r[4],
            p95_latency_ms=r[5],
            p99_latency_ms=r[6],
            mean_latency_ms=r[7],
            latency_sd_ms=r[8],
            mean_cost=r[9],
            updated_at=r[10].replace(tzinfo=UTC),
        )
        for r in con.execute(
            "SELECT target, task_type, n, successes, p50_latency_ms, p95_latency_ms, p99_latency_ms, "
            "mean_latency_ms, latency_sd_ms, mean_cost, computed_at FROM target_stats ORDER BY task_type, target"
        ).fetchall()
    )
    priors = tuple(
        BanditPrior(target=r[0], task_type=r[1], category=Category(r[2]), successes=r[3], failures=r[4])
        for r in con.execute(
            "SELECT target, task_type, category, successes, failures FROM target_priors "
            "ORDER BY target, task_type, category"
        ).fetchall()
    )
    scores = {
        (r[0], Category(r[1])): r[2]
        for r in con.execute("SELECT target, category, score FROM capability_scores").fetchall()
    }
    return PublishedState(
        created_at=now,
        snapshot=StatsSnapshot(entries=entries, created_at=now),
        priors=priors,
        capabilities=CapabilityTable(scores).to_dict(),
    )


def _replace(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".state-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


