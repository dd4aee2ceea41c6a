"""The DuckDB store block: schema migrations, idempotent ingestion of the spool, and reads.

Never holds a connection for a whole run: DuckDB lets one process at a time open the file, so every
operation opens, works and closes, retrying while another process holds the lock. Routed calls write
only to the spool (see `spool.py`); `ingest()` moves spooled records into the tables in one
transaction per segment, keyed by their ids, so running it twice or from two processes duplicates
nothing, and a segment is deleted only after its rows are committed.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
from prefect.blocks.core import Block
from pydantic import BaseModel, Field, PrivateAttr, ValidationError

from blocks.store.migrations import EMBEDDING_DIMENSIONS, HEAD, MIGRATIONS
from blocks.store.spool import SpoolWriter, claimable_segments
from routing.errors import StoreError, StoreLockedError
from routing.models import Decision, ExecutionRecord, QueuedTask

DEFAULT_DATABASE = Path(".adaptive-router") / "router.duckdb"
DATABASE_ENV = "ADAPTIVE_ROUTER_DB"


class RejectedLine(BaseModel):
    segment: str
    line: int
    reason: str


class IngestReport(BaseModel):
    """What one ingestion did; `rejected` lines were moved aside to `spool/rejected/`, not dropped."""

    segments: int = 0
    executions: int = 0
    decisions: int = 0
    queued_tasks: int = 0
    duplicates: int = 0
    rejected: list[RejectedLine] = Field(default_factory=list)


class DuckDBStore(Block):
    """Outcomes, decisions, statistics and policies of the adaptive router, in one DuckDB file."""

    _block_type_name = "Adaptive Router DuckDB Store"
    _block_type_slug = "adaptive-router-duckdb-store"
    _logo_url = "https://duckdb.org/images/logo-dl/DuckDB_Logo-stacked.png"
    _description = "DuckDB file holding the router's executions, decisions, statistics and policies."

    database: str | None = Field(
        default=None,
        description=f"Path of the DuckDB file. Default: ${DATABASE_ENV}, else {DEFAULT_DATABASE}.",
    )
    spool_directory: str | None = Field(
        default=None, description="Where routed calls spool outcomes. Default: 'spool' beside the file."
    )
    lock_timeout_seconds: float = Field(default=30.0, gt=0, description="How long to wait for the lock.")
    fsync: bool = Field(default=False, description="fsync every spooled record (survives power loss).")
    auto_migrate: bool = Field(
        default=True, description="Bring the schema to the latest version on first use (else: `db upgrade`)."
    )

    _writer: SpoolWriter | None = PrivateAttr(default=None)
    _schema_ready: bool = PrivateAttr(default=False)

    @property
    def path(self) -> Path:
        return Path(self.database or os.environ.get(DATABASE_ENV) or DEFAULT_DATABASE).expanduser()

    @property
    def spool_path(self) -> Path:
        return Path(self.spool_directory).expanduser() if self.spool_directory else self.path.parent / "spool"

    # -- connections -------------------------------------------------------------------------------

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection, waiting up to `lock_timeout_seconds` for another process's lock."""
        path = self.path
        if not read_only:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the store directory {path.parent}: {exc.strerror}") from exc
        if path.is_dir():
            raise StoreError(f"store path {path} is a directory, not a DuckDB file")
        deadline = time.monotonic() + self.lock_timeout_seconds
        delay = 0.01
        while True:
            try:
                con = duckdb.connect(str(path), read_only=read_only)
                break
            except duckdb.IOException as exc:
                message = str(exc)
                if "lock" in message.lower():
                    if time.monotonic() >= deadline:
                        raise StoreLockedError(
                            f"store {path} stayed locked by another process for "
                            f"{self.lock_timeout_seconds:g} s; its outcomes stay in the spool until then"
                        ) from exc
                    time.sleep(delay)
                    delay = min(delay * 2, 0.5)
                    continue
                raise StoreError(_describe_open_failure(path, message)) from exc
            except (duckdb.Error, OSError) as exc:
                raise StoreError(_describe_open_failure(path, str(exc))) from exc
        try:
            if self.auto_migrate and not read_only and not self._schema_ready:
                self._schema_ready = True
                _apply(con, HEAD)
            yield con
        finally:
            con.close()

    # -- migrations --------------------------------------------------------------------------------

    def current_version(self) -> int:
        with self.connect() as con:
            return _version(con)

    def upgrade(self, to: int | None = None) -> list[int]:
        """Apply pending migrations up to `to` (default: the latest); returns the versions applied."""
        target = HEAD if to is None else to
        _check_version(target)
        with self.connect() as con:
            return _apply(con, target)

    def downgrade(self, to: int) -> list[int]:
        """Revert migrations above `to` (0 empties the schema); returns the versions reverted."""
        _check_version(to)
        reverted = []
        with self.connect() as con:
            current = _version(con)
            for migration in reversed(MIGRATIONS):
                if to < migration.version <= current:
                    with _transaction(con):
                        for statement in migration.down:
                            con.execute(statement)
                        con.execute("DELETE FROM schema_migrations WHERE version = ?", [migration.version])
                    reverted.append(migration.version)
        return reverted

    # -- writing through the spool -----------------------------------------------------------------

    def writer(self) -> SpoolWriter:
        """This process's spool writer (one per block instance)."""
        if self._writer is None:
            self._writer = SpoolWriter(self.spool_path, fsync=self.fsync)
        return self._writer

    def record_execution(self, record: ExecutionRecord) -> None:
        self.writer().append("execution", record)

    def record_decision(self, decision: Decision) -> None:
        self.writer().append("decision", decision)

    def record_queued(self, queued: QueuedTask) -> None:
        self.writer().append("queued_task", queued)

    def ingest(self, seal: bool = True) -> IngestReport:
        """Move every claimable spool segment into the tables; idempotent and safe to run concurrently."""
        if seal and self._writer is not None:
            self._writer.close()
        report = IngestReport()
        segments = list(claimable_segments(self.spool_path))
        if not segments:
            return report
        with self.connect() as con:
            for segment in segments:
                _ingest_segment(con, segment, self.spool_path / "rejected", report)
        return report

    # -- reads -------------------------------------------------------------------------------------

    def query(self, sql: str, parameters: list[Any] | None = None) -> list[dict[str, Any]]:
        """Run a read query and return rows as dicts."""
        with self.connect() as con:
            cursor = con.execute(sql, parameters or [])
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]


# -- helpers -------------------------------------------------------------------------------------------


def _describe_open_failure(path: Path, message: str) -> str:
    if "not a valid DuckDB database" in message or "database file" in message.lower():
        return f"{path} is not a DuckDB database (or is corrupt): {message}"
    if "Permission denied" in message or "Read-only" in message:
        return f"cannot write the store file {path}: permission denied"
    return f"cannot open the store {path}: {message}"


def _apply(con: duckdb.DuckDBPyConnection, target: int) -> list[int]:
    """Apply, each in its own transaction, the migrations above the current version up to `target`."""
    applied = []
    current = _version(con)
    for migration in MIGRATIONS:
        if current < migration.version <= target:
            with _transaction(con):
                for statement in migration.up:
                    con.execute(statement)
                con.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    [migration.version, migration.name, utc_naive()],
                )
            applied.append(migration.version)
    return applied


def _check_version(version: int) -> None:
    if not 0 <= version <= HEAD:
        raise StoreError(f"schema version {version} does not exist; versions run from 0 to {HEAD}")


def _version(con: duckdb.DuckDBPyConnection) -> int:
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
    )
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def utc_naive(moment: datetime | None = None) -> datetime:
    """`moment` (default now) as the naive UTC the store's TIMESTAMP columns hold; naive input is UTC."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _execution_row(record: ExecutionRecord) -> dict[str, Any]:
    row = {**record.model_dump(mode="json"), "timestamp": utc_naive(record.timestamp).isoformat()}
    embedding = row.get("embedding")
    if embedding is not None and (
        len(embedding) != EMBEDDING_DIMENSIONS or not all(isinstance(x, float) and math.isfinite(x) for x in embedding)
    ):
        row["embedding"] = None  # another embedder's size, or NaN/inf: not searchable, and must not block the load
    return row


def _decision_row(decision: Decision) -> dict[str, Any]:
    row = decision.model_dump(mode="json")
    row["decision_id"] = row.pop("id")
    row["timestamp"] = utc_naive(decision.timestamp).isoformat()
    return row


def _queued_row(queued: QueuedTask) -> dict[str, Any]:
    return {
        "task_id": queued.task.id,
        "task": queued.task.model_dump(mode="json"),
        "reason": queued.reason,
        "queued_at": utc_naive(queued.queued_at).isoformat(),
        "not_before": utc_naive(queued.not_before).isoformat() if queued.not_before else None,
        "status": "queued",
    }


# spool record kind -> (model, table, primary key, row builder)
_KINDS: dict[str, tuple[type[BaseModel], str, str, Callable[[Any], dict[str, Any]]]] = {
    "execution": (ExecutionRecord, "executions", "execution_id", _execution_row),
    "decision": (Decision, "routing_decisions", "decision_id", _decision_row),
    "queued_task": (QueuedTask, "queued_tasks", "task_id", _queued_row),
}


def _ingest_segment(
    con: duckdb.DuckDBPyConnection, segment: Path, rejected_dir: Path, report: IngestReport
) -> None:
    rows: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in _KINDS}
    bad: list[tuple[int, str, str]] = []
    try:
        text = segment.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:  # another ingester took it
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            envelope = json.loads(line)
            model_cls, _, key, to_row = _KINDS[envelope["kind"]]
            row = to_row(model_cls.model_validate(envelope["data"]))
        except (ValueError, KeyError, TypeError) as exc:
            bad.append((number, line, _rejection_reason(exc)))
            continue
        rows[envelope["kind"]][row[key]] = row
    with tempfile.TemporaryDirectory() as staging, _transaction(con):
        for kind, by_id in rows.items():
            if not by_id:
                continue
            _, table, _, _ = _KINDS[kind]
            staged = Path(staging) / f"{kind}.jsonl"
            staged.write_text("".join(json.dumps(r) + "\n" for r in by_id.values()), encoding="utf-8")
            columns = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {table})").fetchall())
            before = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            con.execute(
                f"INSERT OR IGNORE INTO {table} BY NAME "
                "SELECT * FROM read_json(?, format='newline_delimited', columns=?)",
                [str(staged), columns],
            )
            added = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] - before
            setattr(report, f"{kind}s", getattr(report, f"{kind}s") + added)
            report.duplicates += len(by_id) - added
    if bad:
        rejected_dir.mkdir(parents=True, exist_ok=True)
        with open(rejected_dir / (segment.stem + ".rejected.jsonl"), "a", encoding="utf-8") as out:
            for number, line, reason in bad:
                out.write(json.dumps({"segment": segment.name, "line": number, "reason": reason, "raw": line}) + "\n")
                report.rejected.append(RejectedLine(segment=segment.name, line=number, reason=reason))
    segment.unlink(missing_ok=True)
    report.segments += 1


def _rejection_reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "record"
        return f"{where}: {first['msg']}"
    if isinstance(exc, KeyError):
        return f"missing or unknown key {exc}"
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON ({exc.msg})"
    return str(exc)
