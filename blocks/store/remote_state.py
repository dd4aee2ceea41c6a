"""The published state on any fsspec URL, for routers on machines that do not share the store's disk.

The recalculation flow publishes locally as before (`publish`), then `ship_published` copies the file
to `<url>/state.json` (upload under a hidden name, then a rename: readers never see half a state).
`RemotePublishedReader` is `PublishedReader` for a URL: it asks for the object's ETag or mtime at most
every `interval` seconds and downloads the state only when that changed. A URL it cannot reach (an
outage, expired credentials) is logged and routing goes on with the state it has; it looks again after
`interval`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from blocks.store.remote_spool import display_url
from routing.published import PublishedState
from routing.validation import describe

STATE_FILE = "state.json"

logger = logging.getLogger("adaptive_router")


def filesystem(url: str, storage_options: dict[str, Any] | None) -> tuple[Any, str]:
    """The fsspec filesystem and root path of `url` (a plain path is fsspec's local "file" protocol);
    fsspec is imported only here, when a location is used."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(url.rstrip("/"), **(storage_options or {}))
    return fs, root.rstrip("/")


def ship_published(path: Path, url: str, storage_options: dict[str, Any] | None = None) -> str:
    """Copy the published state at `path` to `url` (a directory-like URL); returns the state's URL."""
    fs, root = filesystem(url, storage_options)
    fs.makedirs(root, exist_ok=True)
    part, final = f"{root}/.{STATE_FILE}.part", f"{root}/{STATE_FILE}"
    fs.put_file(str(path), part)
    fs.mv(part, final)
    return f"{url.rstrip('/')}/{STATE_FILE}"


def shipped_state_exists(url: str, storage_options: dict[str, Any] | None = None) -> bool:
    """Whether a state was shipped to `url` already (a recalculation with nothing new ships one then)."""
    fs, root = filesystem(url, storage_options)
    return fs.exists(f"{root}/{STATE_FILE}")


class RemotePublishedReader:
    """Loads the state published at `url` only when it changed, looking at most every `interval` s."""

    def __init__(self, url: str, interval: float = 5.0, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.fs, root = filesystem(url, storage_options)
        self.path = f"{root}/{STATE_FILE}"
        self.interval = interval
        self._stamp: tuple | None = None
        self._looked = float("-inf")

    def changed(self) -> PublishedState | None:
        now = time.monotonic()
        if now - self._looked < self.interval:
            return None
        self._looked = now
        try:
            info = self.fs.info(self.path)
            stamp = (info.get("ETag") or info.get("etag"), info.get("mtime") or info.get("LastModified"), info.get("size"))
            if stamp == self._stamp:
                return None
            text = self.fs.cat_file(self.path)
        except FileNotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001 -- fsspec backends raise their own errors; routing goes on
            logger.warning("published state at %s unreadable, keeping the last one: %s", display_url(self.url), exc)
            return None
        try:
            state = PublishedState.model_validate_json(text)
        except ValidationError as exc:
            raise ValueError(f"published state {self.path} is invalid: {describe(exc, True, 'document')}") from exc
        self._stamp = stamp
        return state
