"""The DuckDB store without Prefect: schema migrations, idempotent ingestion of the spool, and reads.

Never holds a connection for a whole run: DuckDB lets one process at a time open the file, so every
operation opens, works and closes, retrying while another process holds the lock. Routed calls write
only to the spool (see `spool.py`); `ingest()` moves spooled records into the tables in one
transaction per segment, keyed by their ids (an anti join on the id, not a primary-key index), so
running it twice or from two processes duplicates nothing, and a segment is deleted only after its
rows are committed. No record can block it: what the tables refuse is kept aside with the reason
(`_ingest_segment`). Reads go through `read()`, which never waits on a writer (see `integrity.py`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import duckdb
from pydantic import BaseModel, Field, PrivateAttr, ValidationError, field_validator

from blocks.events import events_reachable
from blocks.store import bulk
from blocks.store.integrity import (
    StoreCheck,
    check_path,
    check_store,
    is_lock_error,
    open_failure,
    open_for_reading,
)
from blocks.store.ledger import prefect_ledger_options
from blocks.store.migrations import COMPACT_AFTER, EMBEDDING_DIMENSIONS, HEAD, MIGRATIONS
from blocks.store.remote_spool import check_url
from blocks.store.spool import SpoolWriter, claimable_segments
from blocks.validation import StrictBlock
from routing.errors import StoreError, StoreLockedError
from routing.models import Decision, ExecutionRecord, QueuedTask
from routing.validation import describe

logger = logging.getLogger("adaptive_router.store")
DEFAULT_DATABASE = Path(".adaptive-router") / "router.duckdb"
DATABASE_ENV = "ADAPTIVE_ROUTER_DB"
SPOOL_URL_ENV = "ADAPTIVE_ROUTER_SPOOL_URL"
PUBLISHED_URL_ENV = "ADAPTIVE_ROUTER_PUBLISHED_URL"
BUDGET_LEDGER_ENV = "ADAPTIVE_ROUTER_BUDGET_LEDGER"
_INGESTING: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
"""One ingest or compaction at a time per database file in this process: connections of one process
share the database, and two loads checking the same ids in parallel would both insert them."""


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
    locked: bool = Field(default=False, description="Another process held the store; nothing was ingested.")


class Store(StrictBlock):
    """The store without Prefect: `DuckDBStore` (blocks/store/block.py) is this as a Prefect block.

    Commands that only read a local file use it directly, so they never import Prefect (most of a
    read command's start). It never holds a database connection (each operation opens and closes its
    own); what it does hold is this process's spool writer, an open segment file under an exclusive
    lock. `close()`, or leaving a `with` block, seals that segment so any ingester may take it; the
    store stays usable and opens a new segment on the next record.
    """

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
    spool_url: str | None = Field(
        default=None,
        description=f"fsspec URL (s3://bucket/spool, a shared directory) where workers on other machines ship "
        f"spool segments for ingest-outcomes to fetch. Default: ${SPOOL_URL_ENV}, else none.",
    )
    published_url: str | None = Field(
        default=None,
        description=f"fsspec URL where the recalculation ships the published state and routers read it. "
        f"Default: ${PUBLISHED_URL_ENV}, else the file beside the store.",
    )

    budget_ledger: str | None = Field(
        default=None,
        description=f"Where budgets are reserved, for them to hold across processes: 'prefect' (the Prefect "
        f"server's global concurrency limits, across machines; 'prefect?unit=0.0001' for budgets above "
        f"$2,147) or a SQLite file on a filesystem they share. Default: ${BUDGET_LEDGER_ENV}, else each "
        f"process on its own.",
    )

    @field_validator("budget_ledger")
    @classmethod
    def _ledger_location(cls, location: str | None) -> str | None:
        if location is not None and not location.strip():
            raise ValueError("budget_ledger must be 'prefect[?unit=...&namespace=...]' or a file path, got ''")
        if location is not None:
            prefect_ledger_options(location)
        return location

    @field_validator("spool_url", "published_url")
    @classmethod
    def _fsspec_url(cls, url: str | None, info) -> str | None:
        return None if url is None else check_url(info.field_name, url)

    _writer: SpoolWriter | None = PrivateAttr(default=None)
    _schema_ready: bool = PrivateAttr(default=False)

    # -- lifecycle ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Seal this process's open spool segment, if any, so that any ingester may take it."""
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def path(self) -> Path:
        return Path(self.database or os.environ.get(DATABASE_ENV) or DEFAULT_DATABASE).expanduser()

    @property
    def spool_path(self) -> Path:
        return Path(self.spool_directory).expanduser() if self.spool_directory else self.path.parent / "spool"

    @property
    def remote_spool_url(self) -> str | None:
        """Where segments from other machines wait: the field, else $ADAPTIVE_ROUTER_SPOOL_URL."""
        return _url(self.spool_url, SPOOL_URL_ENV)

    @property
    def remote_published_url(self) -> str | None:
        """Where routers read the published state: the field, else $ADAPTIVE_ROUTER_PUBLISHED_URL."""
        return _url(self.published_url, PUBLISHED_URL_ENV)

    @property
    def budget_ledger_location(self) -> str | None:
        """Where budgets are reserved (see `blocks.store.ledger.open_ledger`): the field, else the env."""
        return self.budget_ledger or os.environ.get(BUDGET_LEDGER_ENV) or None

    # -- connections -------------------------------------------------------------------------------

    @contextmanager
    def connect(self, read_only: bool = False, wait: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection, waiting up to `lock_timeout_seconds` for another process's lock
        (not at all with `wait=False`). Reads should use `read()`, which never waits."""
        path = self.path
        if not read_only:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the store directory {path.parent}: {exc.strerror}") from exc
        check_path(path)
        deadline = time.monotonic() + (self.lock_timeout_seconds if wait else 0.0)
        delay = 0.01
        while True:
            try:
                con = duckdb.connect(str(path), read_only=read_only)
                break
            except duckdb.IOException as exc:
                if is_lock_error(exc):
                    if time.monotonic() >= deadline:
                        raise StoreLockedError(
                            f"store {path} stayed locked by another process for "
                            f"{self.lock_timeout_seconds:g} s; its outcomes stay in the spool until then"
                        ) from exc
                    time.sleep(delay)
                    delay = min(delay * 2, 0.5)
                    continue
                raise open_failure(path, exc) from exc
            except (duckdb.Error, OSError) as exc:
                raise open_failure(path, exc) from exc
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
            applied = _apply(con, target)
        if COMPACT_AFTER.intersection(applied):
            self.compact()
        return applied

    def compact(self) -> int:
        """Rewrite the file without the blocks that dropped tables and deleted rows freed; returns the
        bytes given back. DuckDB reuses freed blocks for new rows but never shortens its file.

        The copy is written beside the file and renamed over it while this process still holds the
        store's lock, so other processes wait as they do for an ingest and none can write to the old
        file meanwhile. Needs free disk space for the copy; run it where nothing else in this process
        holds the store open (`db upgrade` does, after a migration that rebuilds a large table).
        """
        path = self.path
        if not path.exists():
            return 0
        before = path.stat().st_size
        fresh = path.with_name(f".{path.name}.compacting")
        for leftover in (fresh, Path(f"{fresh}.wal")):
            leftover.unlink(missing_ok=True)
        try:
            with _INGESTING[str(path.resolve())], self.connect() as con:
                con.execute("CHECKPOINT")
                (name,) = con.execute("SELECT current_database()").fetchone()
                con.execute("ATTACH '{}' AS compacted".format(str(fresh).replace("'", "''")))
                con.execute('COPY FROM DATABASE "{}" TO compacted'.format(name.replace('"', '""')))
                con.execute("DETACH compacted")
                os.replace(fresh, path)
        except (duckdb.Error, OSError) as exc:
            fresh.unlink(missing_ok=True)
            raise StoreError(f"cannot compact {path}: {str(exc).strip().splitlines()[0]}; the store is unchanged") from exc
        return before - path.stat().st_size

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
        """This process's spool writer (one per block instance); it never raises into a routed call."""
        if self._writer is None:
            self._writer = SpoolWriter(self.spool_path, fsync=self.fsync, on_trouble=self._outcomes_at_risk)
        return self._writer

    def _outcomes_at_risk(self, message: str) -> None:
        """A Prefect event (for automations) when the spool cannot be written; the writer logs it."""
        from prefect.events import emit_event

        if not events_reachable():
            return
        emit_event(
            event="adaptive-router.spool.at-risk" if "at risk" in message else "adaptive-router.spool.recovered",
            resource={"prefect.resource.id": f"adaptive-router.spool.{self.spool_path}"},
            payload={"message": message, "pending": self._writer.pending if self._writer else 0},
        )

    def record_execution(self, record: ExecutionRecord) -> None:
        self.writer().append("execution", record)

    def record_decision(self, decision: Decision) -> None:
        self.writer().append("decision", decision)

    def record_queued(self, queued: QueuedTask) -> None:
        self.writer().append("queued_task", queued)

    def ingest(self, seal: bool = True, wait: bool = True) -> IngestReport:
        """Move every claimable spool segment into the tables; idempotent and safe to run concurrently.

        No record can stop it: lines that fail validation, and rows DuckDB refuses, are kept aside in
        `spool/rejected/` with the reason while the rest commit. With `wait=False` (read paths), a
        store another process holds is left alone: the report says `locked` and the segments wait.
        """
        if seal and self._writer is not None:
            self._writer.close()
        report = IngestReport()
        try:
            segments = list(claimable_segments(self.spool_path))
        except OSError as exc:
            raise StoreError(f"cannot list the spool {self.spool_path}: {exc.strerror or exc}") from exc
        if not segments:
            return report
        try:
            with _INGESTING[str(self.path.resolve())], self.connect(wait=wait) as con:
                for segment in segments:
                    _ingest_segment(con, self.path, segment, self.spool_path / "rejected", report)
        except StoreLockedError:
            if wait:
                raise
            report.locked = True
        return report

    # -- reads -------------------------------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection that never waits on a writer's lock (see `reads.py`)."""
        with open_for_reading(self) as con:
            yield con

    def query(self, sql: str, parameters: list[Any] | None = None) -> list[dict[str, Any]]:
        """Run a query and return rows as dicts. Reads never wait on an ingest (read-only or snapshot);
        a statement that writes is re-run on a read-write connection."""
        try:
            with self.read() as con:
                return _rows(con, sql, parameters)
        except duckdb.InvalidInputException as exc:
            if "read-only" not in str(exc):
                raise
        except (duckdb.IOException, duckdb.FatalException, duckdb.InternalException) as exc:
            raise open_failure(self.path, exc) from exc
        with self.connect() as con:
            return _rows(con, sql, parameters)

    def check(self) -> StoreCheck:
        """Integrity check: the file opens and every table scans end to end (`adaptive-router db check`)."""
        return check_store(self.path)


# -- helpers -------------------------------------------------------------------------------------------


def _url(field: str | None, env: str) -> str | None:
    if field:
        return field
    value = os.environ.get(env)
    return check_url(f"${env}", value) if value else None


def _rows(con: duckdb.DuckDBPyConnection, sql: str, parameters: list[Any] | None) -> list[dict[str, Any]]:
    cursor = con.execute(sql, parameters or [])
    if cursor.description is None:
        return []
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]




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


# spool record kind -> a statement run in the same transaction over the same rows, as the table
# holds them ({rows}: the staged file on the per-line path, the guarded lines on the bulk path)
_DERIVED: dict[str, str] = {
    # A successful attempt's answer is a solution (seed 002), with its prompt embedding so that similar
    # past solutions can be found; keyed by the execution id, so re-ingesting adds nothing.
    "execution": """INSERT OR IGNORE INTO solutions BY NAME
        SELECT CAST(execution_id AS VARCHAR) AS solution_id, task_id, task_type, category, target,
               solution_summary AS summary, quality_score, embedding, timestamp AS created_at
        FROM {rows} AS staged
        WHERE success AND solution_summary IS NOT NULL""",
}


def _ingest_segment(
    con: duckdb.DuckDBPyConnection, database: Path, segment: Path, rejected_dir: Path, report: IngestReport
) -> None:
    """Load a segment (DuckDB reads it, see `bulk.py`), set aside what cannot be loaded, then unlink.

    Kinds whose every line the SQL guard vouches for are inserted by DuckDB straight from the file,
    in one transaction; lines of other kinds (and every line, when the guard doubts one or DuckDB
    raises) take the per-line path: Python validation, then `_Loader`. Every load inserts only ids
    the table lacks (an anti join inside the load's transaction; executions have no primary-key
    index since schema 10, which cost ~70 bytes a row), so a crash half way re-ingests without
    duplicates. DuckDB's file lock keeps other processes out for the whole ingest and `_INGESTING`
    keeps other threads of this one out, so no two loads check the same ids at once. A failure of the
    environment (disk full, I/O) stops the ingest and keeps the segment spooled.
    """
    if not segment.exists():  # another ingester took it
        return
    rest = _bulk_load(con, database, segment, report)
    if rest is None or rest:
        bad = _load_lines(con, database, segment, report, rest)
        if bad is None:
            return
        if bad:
            _set_aside(segment, rejected_dir, sorted(bad), report)
    segment.unlink(missing_ok=True)
    report.segments += 1


def _bulk_load(con: duckdb.DuckDBPyConnection, database: Path, segment: Path, report: IngestReport) -> set[str] | None:
    """Insert with DuckDB alone every kind the guard vouches for; returns the kinds present that it
    could not check (for the per-line path), or None when the segment must take the per-line path
    whole (nothing was committed)."""
    added: dict[str, tuple[int, int]] = {}
    present: dict[str | None, int] = {}
    try:
        bulk.read_segment(con, str(segment))
        try:
            present = bulk.kinds_present(con)
            if not set(present) <= set(_KINDS):
                return None  # an unknown kind: the per-line path names it
            with _transaction(con):
                for kind, count in present.items():
                    model, table, key, _ = _KINDS[kind]
                    try:
                        predicate = bulk.guard(model, _embedding_size(table))
                    except bulk.Unsupported:
                        continue
                    if not bulk.unique_ids(con, kind, key):
                        raise bulk.Doubt
                    added[kind] = (bulk.insert(con, kind, table, key, model, predicate), count)
                    if kind in _DERIVED:
                        con.execute(_DERIVED[kind].format(rows=bulk.rows(con, model, table)), {"kind": kind})
        finally:
            bulk.drop(con)
    except bulk.Doubt:
        return None
    except _ENVIRONMENT_ERRORS as exc:
        raise _environment_failure(database, exc) from exc
    except (duckdb.BinderException, duckdb.ParserException, duckdb.CatalogException) as exc:
        logger.warning("bulk load of %s fell back to the per-line path: %s", segment.name, exc)  # ours, not the data's
        return None
    except duckdb.Error:  # the data: DuckDB's reader or the table refused a line
        return None
    for kind, (rows, count) in added.items():
        _count(report, kind, rows, count)
    return set(present) - set(added)


def _embedding_size(table: str) -> int | None:
    return EMBEDDING_DIMENSIONS if table == "executions" else None


def _load_lines(
    con: duckdb.DuckDBPyConnection, database: Path, segment: Path, report: IngestReport, kinds: set[str] | None
) -> list[tuple[int, str, str]] | None:
    """The per-line path over the lines of `kinds` (all lines when None; a line of an unknown kind
    counts as any): validate each in Python, bulk-load the valid ones, bisecting on failure. Returns
    the (line, raw, reason) of what must be set aside, or None when the segment has gone."""
    rows: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in _KINDS}
    raw: dict[tuple[str, str], tuple[int, str]] = {}
    bad: list[tuple[int, str, str]] = []
    try:
        text = segment.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:  # another ingester took it
        return None
    except OSError as exc:
        raise StoreError(f"cannot read spool segment {segment}: {exc.strerror or exc}") from exc
    for number, line in enumerate(text.split("\n"), start=1):  # JSON lines end in \n only, not \u2028
        if not line.strip():
            continue
        try:
            envelope = json.loads(line)
            kind = envelope["kind"]
            if kinds is not None and kind not in kinds and kind in _KINDS:
                continue  # loaded by DuckDB already
            model_cls, _, key, to_row = _KINDS[kind]
            row = to_row(model_cls.model_validate(envelope["data"]))
        except (ValueError, KeyError, TypeError) as exc:
            bad.append((number, line, _rejection_reason(exc)))
            continue
        rows[envelope["kind"]][row[key]] = row
        raw[(envelope["kind"], row[key])] = (number, line)
    with tempfile.TemporaryDirectory() as staging:
        loader = _Loader(con, database, Path(staging), report)
        for kind, by_id in rows.items():
            if by_id:
                for row_id, reason in loader.load(kind, list(by_id.values())):
                    number, line = raw[(kind, row_id)]
                    bad.append((number, line, reason))
    return bad


def _count(report: IngestReport, kind: str, added: int, rows: int) -> None:
    setattr(report, f"{kind}s", getattr(report, f"{kind}s") + added)
    report.duplicates += rows - added


# DuckDB's errors of the environment, not of a row: never a reason to set a row aside
_ENVIRONMENT_ERRORS = (duckdb.OperationalError, duckdb.FatalException, duckdb.InterruptException, duckdb.InternalError)


class _Loader:
    """Bulk loads of one kind of row, bisecting on failure to find the rows DuckDB refuses."""

    def __init__(self, con: duckdb.DuckDBPyConnection, database: Path, staging: Path, report: IngestReport) -> None:
        self.con, self.database, self.staging, self.report = con, database, staging, report

    def load(self, kind: str, rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
        """Load `rows`; returns (id, reason) of each row that failed on its own."""
        try:
            self._commit(kind, rows)
            return []
        except _ENVIRONMENT_ERRORS as exc:
            raise _environment_failure(self.database, exc) from exc
        except duckdb.Error as exc:
            if len(rows) == 1:
                _, _, key, _ = _KINDS[kind]
                why = re.sub(r' in file "[^"]*"', "", str(exc).strip().splitlines()[0])  # the staging copy's name
                return [(rows[0][key], f"refused by the store: {why}")]
        middle = len(rows) // 2
        return self.load(kind, rows[:middle]) + self.load(kind, rows[middle:])

    def _commit(self, kind: str, rows: list[dict[str, Any]]) -> None:
        _, table, key, _ = _KINDS[kind]
        staged = self.staging / f"{kind}.jsonl"
        staged.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        with _transaction(self.con):
            columns = dict(self.con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {table})").fetchall())
            before = self.con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            self.con.execute(  # the anti join builds on the segment and probes the table's key column once
                f"INSERT INTO {table} BY NAME SELECT staged.* "
                "FROM read_json(?, format='newline_delimited', columns=?) AS staged "
                f"ANTI JOIN {table} AS stored ON stored.{key} = staged.{key}",
                [str(staged), columns],
            )
            if kind in _DERIVED:
                rows_sql = "read_json(?, format='newline_delimited', columns=?)"
                self.con.execute(_DERIVED[kind].format(rows=rows_sql), [str(staged), columns])
            added = self.con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] - before
        _count(self.report, kind, added, len(rows))


def _environment_failure(path: Path, exc: duckdb.Error) -> StoreError:
    message = str(exc).strip().splitlines()[0]
    if "no space left" in message.lower() or "disk" in message.lower():
        return StoreError(f"ingest into {path} stopped: disk full ({message}); outcomes stay spooled, free space and re-run `adaptive-router db ingest`")
    return StoreError(f"ingest into {path} stopped: {message}; outcomes stay spooled, re-run `adaptive-router db ingest`")


def _set_aside(segment: Path, rejected_dir: Path, bad: list[tuple[int, str, str]], report: IngestReport) -> None:
    try:
        rejected_dir.mkdir(parents=True, exist_ok=True)
        with open(rejected_dir / (segment.stem + ".rejected.jsonl"), "a", encoding="utf-8", errors="surrogateescape") as out:
            for number, line, reason in bad:
                out.write(json.dumps({"segment": segment.name, "line": number, "reason": reason, "raw": line}) + "\n")
                report.rejected.append(RejectedLine(segment=segment.name, line=number, reason=reason))
    except OSError as exc:  # keep the segment: nothing may be dropped without being kept aside
        raise StoreError(f"cannot keep rejected lines of {segment} in {rejected_dir}: {exc.strerror or exc}") from exc


def _rejection_reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return describe(exc, first_only=True)
    if isinstance(exc, KeyError):
        return f"missing or unknown key {exc}"
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON ({exc.msg})"
    return str(exc)
