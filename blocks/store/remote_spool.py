"""The spool on any fsspec URL (s3://, gs://, az://, a shared directory): many machines, one ingester.

Object stores have no append and no locks, so writers keep spooling locally (the `SpoolWriter`:
durable before the call returns, one segment per process) and *ship* sealed segments to the URL: an
upload under a hidden `.part` name, then a rename to `<name>.jsonl`, so a reader never sees half a
segment (an S3 PUT is atomic as it is; the rename makes a plain directory behave the same). The single
ingester (the `ingest-outcomes` deployment, concurrency 1) *fetches* every shipped segment into its own
local spool, ingests as usual (rows keyed by id: a segment ingested twice adds nothing), and deletes a
shipped segment only after its rows committed. A crash at any point leaves the segment to be fetched
again; nothing is lost and nothing is stored twice.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from blocks.store.spool import SEALED_SUFFIX, claimable_segments
from routing.errors import ConfigError, UnknownNameError

OUTBOX_ENV = "ADAPTIVE_ROUTER_OUTBOX"
DEFAULT_OUTBOX = Path("~/.adaptive-router/outbox")


def outbox(url: str) -> Path:
    """The local directory where this machine's writers spool segments bound for `url`: the same for
    every process and across restarts, so a segment a dead process left is shipped by the next one
    (a temporary directory per process would strand it). $ADAPTIVE_ROUTER_OUTBOX moves it."""
    root = Path(os.environ.get(OUTBOX_ENV) or DEFAULT_OUTBOX).expanduser()
    return root / hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]


def check_url(field: str, url: str) -> str:
    """`url` if it is an fsspec URL whose protocol fsspec knows (its package may still be missing, e.g.
    s3fs for s3://: fsspec names it on first use); imports fsspec (~0.1 s) only when a URL is set."""
    from fsspec.core import split_protocol
    from fsspec.registry import known_implementations, registry

    protocol, _ = split_protocol(url)
    if protocol is None:
        raise ConfigError(f"{field} must be an fsspec URL such as s3://bucket/spool or file:///shared/spool, got {url!r}")
    if protocol not in known_implementations and protocol not in registry:
        raise UnknownNameError("fsspec protocol", protocol, sorted(known_implementations), f"in {field}")
    return url


def display_url(url: str) -> str:
    """`url` without any user:password part, for logs and run names."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


class RemoteSpool:
    """Sealed segments on an fsspec URL; `storage_options` go to fsspec (endpoint, credentials)."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        from blocks.store.remote_state import RemoteDirectory  # which imports this module's display_url

        self.url = url.rstrip("/")
        self._directory = RemoteDirectory(self.url, storage_options)
        self.root = self._directory.root

    @property
    def fs(self) -> Any:
        """The URL's filesystem, made again in a forked child (see RemoteDirectory)."""
        return self._directory.fs

    def ship(self, local: Path) -> list[str]:
        """Upload every claimable local segment (sealed, or left open by a dead writer), then delete the
        local copy; returns the shipped names. Processes sharing `local` may ship the same segment at
        once: it lands under one name (the ingester stores its rows once) and the loser skips it."""
        self.fs.makedirs(self.root, exist_ok=True)
        shipped = []
        for segment in list(claimable_segments(Path(local))):
            name = segment.with_suffix(SEALED_SUFFIX).name
            part = f"{self.root}/.{name}.{os.getpid()}.part"
            try:
                self.fs.put_file(str(segment), part)
            except FileNotFoundError:  # shipped by another process meanwhile
                continue
            self.fs.mv(part, f"{self.root}/{name}")
            segment.unlink(missing_ok=True)
            shipped.append(name)
        return shipped

    def shipped(self) -> list[str]:
        """Full paths of the segments waiting on the URL."""
        try:
            return sorted(self.fs.glob(f"{self.root}/*{SEALED_SUFFIX}"))
        except FileNotFoundError:
            return []

    def fetch(self, local: Path) -> dict[str, Path]:
        """Download every shipped segment into `local` (as a sealed segment); remote path -> local copy."""
        local = Path(local)
        local.mkdir(parents=True, exist_ok=True)
        fetched = {}
        for remote in self.shipped():
            copy = local / Path(remote).name
            part = copy.with_name(f".{copy.name}.part")
            self.fs.get_file(remote, str(part))
            part.rename(copy)
            fetched[remote] = copy
        return fetched

    def delete(self, remotes: list[str]) -> None:
        for remote in remotes:
            self.fs.rm_file(remote)


def ingest_shipped(store, spool: RemoteSpool, seal: bool = True):
    """Fetch the shipped segments into `store`'s spool, ingest (with the local spool's own segments),
    then delete those whose rows committed (a segment the ingestion consumed is gone from the local
    spool); returns the store's IngestReport. `seal` as in `DuckDBStore.ingest`."""
    fetched = spool.fetch(store.spool_path)
    report = store.ingest(seal=seal)
    spool.delete([remote for remote, copy in fetched.items() if not copy.exists()])
    return report
