"""The published state on any fsspec URL, for routers on machines that do not share the store's disk.

The recalculation flow publishes locally as before (`publish`), then `ship_published` copies the file
to `<url>/state.json` (upload under a hidden name, then a rename: readers never see half a state).
`RemotePublishedReader` is `PublishedReader` for a URL: it asks for the object's ETag or mtime at most
every `interval` seconds and downloads the state only when that changed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import fsspec
from pydantic import ValidationError

from routing.published import PublishedState
from routing.validation import describe

STATE_FILE = "state.json"


def ship_published(path: Path, url: str, storage_options: dict[str, Any] | None = None) -> str:
    """Copy the published state at `path` to `url` (a directory-like URL); returns the remote path."""
    fs, root = fsspec.core.url_to_fs(url.rstrip("/"), **(storage_options or {}))
    fs.makedirs(root, exist_ok=True)
    part, final = f"{root}/.{STATE_FILE}.part", f"{root}/{STATE_FILE}"
    fs.put_file(str(path), part)
    fs.mv(part, final)
    return final


class RemotePublishedReader:
    """Loads the state published at `url` only when it changed, looking at most every `interval` s."""

    def __init__(self, url: str, interval: float = 5.0, storage_options: dict[str, Any] | None = None) -> None:
        self.fs, root = fsspec.core.url_to_fs(url.rstrip("/"), **(storage_options or {}))
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
        except FileNotFoundError:
            return None
        stamp = (info.get("ETag") or info.get("etag"), info.get("mtime") or info.get("LastModified"), info.get("size"))
        if stamp == self._stamp:
            return None
        try:
            state = PublishedState.model_validate_json(self.fs.cat_file(self.path))
        except ValidationError as exc:
            raise ValueError(f"published state {self.path} is invalid: {describe(exc, True, 'document')}") from exc
        self._stamp = stamp
        return state
