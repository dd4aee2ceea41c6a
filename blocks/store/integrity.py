"""Opening the store safely: read-only reads that never wait on a writer, one-line errors, `db check`.

DuckDB lets one process hold a file read-write, and while it does, every other process fails to open
it at all, read-only included. Reads (stats, health, summaries) therefore open read-only and, when an
ingest holds the lock, read a snapshot: a copy of the file and its WAL taken without the lock. A torn
copy is detected by DuckDB's checksums and reported as locked, never read as data. A truncated or
overwritten file becomes `StoreCorruptError` naming the file and what to do, not an IOException
traceback.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
from pydantic import BaseModel, Field

from routing.errors import StoreCorruptError, StoreError, StoreLockedError

if TYPE_CHECKING:
    from blocks.store.store import Store

MAX_PATH_CHARS = 4096
_CORRUPT_SIGNS = (
    "not a valid duckdb database",
    "could not read enough bytes",
    "corrupt",
    "checksum",
    "invalid block",
    "failed to read",
    "serialization error",
    "deserializ",
)
_RESTORE = "restore it from a backup or move it aside (a new store is created), then run `adaptive-router db check`"


def is_lock_error(exc: BaseException) -> bool:
    return "lock" in str(exc).lower()


def check_path(path: Path) -> None:
    if len(str(path)) > MAX_PATH_CHARS or any(len(part) > 255 for part in path.parts):
        raise StoreError(f"store path is too long ({len(str(path))} characters): {str(path)[:80]}...")
    if "\x00" in str(path):
        raise StoreError("store path contains a NUL character")
    if path.is_dir():
        raise StoreError(f"store path {path} is a directory, not a DuckDB file")


def open_failure(path: Path, exc: BaseException) -> StoreError:
    """The one-line error for a store that cannot be opened or read: which file, what, what to do."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    lowered = message.lower()
    if isinstance(exc, OSError) and exc.strerror:
        message = exc.strerror
    if is_lock_error(exc):
        return StoreLockedError(
            f"store {path} is locked by another process; its outcomes stay in the spool: try again when it ends"
        )
    if any(sign in lowered for sign in _CORRUPT_SIGNS):
        detail = _without_path(message, path)
        return StoreCorruptError(f"{path} is not a DuckDB database, or is corrupt or truncated ({detail}); {_RESTORE}")
    if "no space left" in lowered:
        return StoreError(f"store {path}: disk full ({message}); free space, then run `adaptive-router db ingest`")
    if "permission denied" in lowered or "read-only" in lowered:
        return StoreError(f"store {path}: permission denied ({message}); check the file's owner and mode")
    return StoreError(f"cannot open the store {path}: {message}")


def _without_path(message: str, path: Path) -> str:
    """DuckDB's message without the path the one-line error names already."""
    return message.replace(f' file "{path}"', "").replace(f'"{path}"', "the file").removeprefix("IO Error: ")


def _schema_version(con: duckdb.DuckDBPyConnection) -> int:
    try:
        return con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]
    except duckdb.CatalogException:
        return 0


@contextmanager
def open_for_reading(store: Store) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to `store`, or to a snapshot of it when a writer holds the lock.

    Falls back to the store's read-write connection where reading cannot work without one: a file
    that does not exist yet, a schema that auto-migration must first bring up to date, or a file this
    process already holds open read-write (DuckDB refuses a second configuration in one process).
    """
    from blocks.store.migrations import HEAD

    path = store.path
    check_path(path)
    if path.exists():
        with ExitStack() as opened:  # closed before any read-write connection: one configuration per process
            try:
                con, snapshot = opened.enter_context(_read_only(path))
            except StoreError as exc:
                if not isinstance(exc.__cause__, duckdb.ConnectionException):  # open read-write in this process
                    raise
            else:
                try:
                    outdated = store.auto_migrate and not snapshot and _schema_version(con) < HEAD
                except duckdb.Error as exc:
                    raise open_failure(path, exc) from exc
                if not outdated:
                    yield con
                    return
    with store.connect() as con:
        yield con


@contextmanager
def _read_only(path: Path) -> Iterator[tuple[duckdb.DuckDBPyConnection, bool]]:
    """A read-only connection to `path` and False, or, while a writer holds its lock, one to a snapshot
    and True: a copy of the file and its WAL taken without the lock, refused as locked when torn."""
    try:
        con = duckdb.connect(str(path), read_only=True)
    except (duckdb.Error, OSError) as exc:
        failure = open_failure(path, exc)
        if not isinstance(failure, StoreLockedError):
            raise failure from exc
    else:
        try:
            yield con, False
        finally:
            con.close()
        return
    with tempfile.TemporaryDirectory(prefix="adaptive-router-snapshot-") as directory:
        copy = Path(directory) / path.name
        try:
            shutil.copyfile(path, copy)
            wal = path.with_name(path.name + ".wal")
            if wal.exists():
                shutil.copyfile(wal, copy.with_name(copy.name + ".wal"))
            con = duckdb.connect(str(copy), read_only=True)
        except (duckdb.Error, OSError) as exc:
            raise StoreLockedError(
                f"store {path} is locked by another process (an ingest or a migration) and a snapshot of it "
                "could not be read; try again when it ends"
            ) from exc
        try:
            yield con, True
        finally:
            con.close()


class TableCheck(BaseModel):
    table: str
    rows: int | None = None
    error: str | None = None


class StoreCheck(BaseModel):
    """What `check_store` found: `ok` when the file opens and every table scans end to end."""

    path: str
    ok: bool
    schema_version: int | None = None
    tables: list[TableCheck] = Field(default_factory=list)
    error: str | None = None

    def lines(self) -> list[str]:
        """The report as a few lines for a terminal."""
        if self.error:
            return [self.error]
        head = f"{self.path}: {'ok' if self.ok else 'DAMAGED'}, schema version {self.schema_version}, {len(self.tables)} tables"
        bad = [f"  {t.table}: {t.error}" for t in self.tables if t.error]
        return [head, *bad] + ([f"  {_RESTORE}"] if bad else [])


def check_store(path: str | Path) -> StoreCheck:
    """Open `path` read-only (a snapshot if locked) and scan every column of every table."""
    path = Path(path).expanduser()
    try:
        check_path(path)
        if not path.exists():
            raise StoreError(f"store {path} does not exist")
        with _read_only(path) as (con, _):
            version = _schema_version(con)
            tables = [t for (t,) in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
            checks = [_scan(con, table, path) for table in tables]
    except StoreError as exc:
        return StoreCheck(path=str(path), ok=False, error=str(exc))
    except duckdb.Error as exc:
        return StoreCheck(path=str(path), ok=False, error=str(open_failure(path, exc)))
    return StoreCheck(path=str(path), ok=all(c.error is None for c in checks), schema_version=version, tables=checks)


def _scan(con: duckdb.DuckDBPyConnection, table: str, path: Path) -> TableCheck:
    """Reads every value of every column (hashing forces each block to be read and checksummed)."""
    try:
        columns = [c for (c,) in con.execute(f'SELECT column_name FROM (DESCRIBE "{table}")').fetchall()]
        probes = ", ".join(f'bit_xor(hash("{c}"))' for c in columns) or "1"
        rows = con.execute(f'SELECT count(*), {probes} FROM "{table}"').fetchone()[0]
    except duckdb.Error as exc:
        return TableCheck(table=table, error=_without_path(str(exc).strip().splitlines()[0], path))
    return TableCheck(table=table, rows=rows)
