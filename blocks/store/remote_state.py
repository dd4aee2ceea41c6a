"""Published documents on any fsspec URL, for routers on machines that do not share the store's disk.

Two documents are published beside the store and shipped to the store's `published_url`: the learned
state (`state.json`, after each recalculation) and the live policies (`live.json`, the policy in
force and the running experiments, after each change). `ship_published` uploads a file under a hidden
name, then renames it: readers never see half a document. `RemotePublishedReader` is `PublishedReader`
for a URL: a background thread (blocks/store/lookout.py) asks for the object's ETag or mtime every
`interval` seconds and downloads the document only when that changed; `changed()` takes what the
thread fetched and never touches the network, so a hanging URL never holds a routed call. A URL it
cannot reach (an outage, expired credentials) is logged once and routing goes on with the document it
has; an invalid document is logged and skipped until it is replaced.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from blocks.store.lookout import Lookout
from blocks.store.remote_spool import display_url
from routing.published import PublishedState
from routing.validation import describe

STATE_FILE = "state.json"
DEFAULT_INTERVAL = 5.0
FIRST_LOOK_TIMEOUT = 5.0
"""How long a new router's first refresh waits for its first looks at a published URL (see
`await_first_looks`): without them its first requests, or a whole route-batch run, would route with
neither the learned state nor the live policies; bounded, so a hanging URL only delays the start."""

logger = logging.getLogger("adaptive_router")


def filesystem(url: str, storage_options: dict[str, Any] | None) -> tuple[Any, str]:
    """The fsspec filesystem and root path of `url` (a plain path is fsspec's local "file" protocol);
    fsspec is imported only here, when a location is used."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(url.rstrip("/"), **(storage_options or {}))
    return fs, root.rstrip("/")


class RemoteDirectory:
    """A directory-like fsspec URL whose filesystem is made again in a forked child: fsspec's async
    filesystems (s3fs, gcsfs, adlfs) refuse to run in a child of the process that made them."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url
        self._options = storage_options
        self._fs, self.root = filesystem(url, storage_options)
        self._pid = os.getpid()

    @property
    def fs(self) -> Any:
        if self._pid != os.getpid():
            self._fs, _ = filesystem(self.url, self._options)
            self._pid = os.getpid()
        return self._fs


def ship_published(
    path: Path, url: str, storage_options: dict[str, Any] | None = None, name: str = STATE_FILE
) -> str:
    """Copy the published document at `path` to `<url>/<name>`; returns its URL. The hidden upload is
    named per call, so two publishers never overwrite each other's half-uploaded copy."""
    fs, root = filesystem(url, storage_options)
    fs.makedirs(root, exist_ok=True)
    part, final = f"{root}/.{name}.{uuid.uuid4().hex}.part", f"{root}/{name}"
    fs.put_file(str(path), part)
    fs.mv(part, final)
    return f"{url.rstrip('/')}/{name}"


def shipped_state_exists(url: str, storage_options: dict[str, Any] | None = None) -> bool:
    """Whether a state was shipped to `url` already (a recalculation with nothing new ships one then)."""
    fs, root = filesystem(url, storage_options)
    return fs.exists(f"{root}/{STATE_FILE}")


def shipped_copy_matches(
    path: Path, url: str, name: str, storage_options: dict[str, Any] | None = None
) -> bool:
    """Whether `<url>/<name>` holds exactly the file at `path` (for a small document: one download)."""
    fs, root = filesystem(url, storage_options)
    try:
        return fs.cat_file(f"{root}/{name}") == Path(path).read_bytes()
    except FileNotFoundError:
        return False


class RemotePublishedReader:
    """Loads the document `name` published at `url` (a `model`, the learned state by default) only
    when it changed; a background thread looks every `interval` s, `changed()` only takes its finds."""

    def __init__(
        self,
        url: str,
        interval: float = DEFAULT_INTERVAL,
        storage_options: dict[str, Any] | None = None,
        name: str = STATE_FILE,
        model: type[BaseModel] = PublishedState,
    ) -> None:
        self.url = url
        self.remote = RemoteDirectory(url, storage_options)
        self.path = f"{self.remote.root}/{name}"
        self.model = model
        self.lookout = Lookout(self._look, interval, f"published {name} at {display_url(url)}")
        self._stamp: tuple | None = None
        self._fetched: tuple[int, BaseModel | None] = (0, None)  # (version, document): swapped whole
        self._taken = 0

    def changed(self) -> Any:
        """The document if the thread fetched a new one since the last call, else None (no I/O)."""
        self.lookout.start()
        version, document = self._fetched
        if version == self._taken:
            return None
        self._taken = version
        return document

    def first_look(self, timeout: float) -> bool:
        """Wait up to `timeout` for the thread's first look (see Lookout.first_look)."""
        return self.lookout.first_look(timeout)

    def look_now(self, timeout: float | None = None) -> bool:
        """Look at once and wait for it (see Lookout.look_now); the next `changed()` has its find."""
        return self.lookout.look_now(timeout)

    def close(self) -> None:
        self.lookout.close()

    def _look(self) -> None:
        """On the lookout's thread: download the document if its stamp changed; raises what the
        filesystem raises when the URL cannot be reached (a missing document is not published yet)."""
        fs = self.remote.fs
        try:
            info = fs.info(self.path)
        except FileNotFoundError:
            return
        stamp = (info.get("ETag") or info.get("etag"), info.get("mtime") or info.get("LastModified"), info.get("size"))
        if stamp == self._stamp:
            return
        text = fs.cat_file(self.path)
        self._stamp = stamp  # an invalid document is not fetched again until it is replaced
        try:
            document = self.model.model_validate_json(text)
        except ValidationError as exc:
            logger.error("%s is invalid, keeping the last one: %s", self.lookout.what, describe(exc, True, "document"))
            return
        self._fetched = (self._fetched[0] + 1, document)


def await_first_looks(readers: Iterable[Any], timeout: float | None = None) -> None:
    """Wait, together and at most `timeout` seconds (default FIRST_LOOK_TIMEOUT), for the first look of each remote reader among
    `readers` (others read their file when asked); a URL that does not answer in time is logged and
    its looks go on in the background."""
    timeout = FIRST_LOOK_TIMEOUT if timeout is None else timeout
    remote = [r for r in readers if isinstance(r, RemotePublishedReader)]
    for reader in remote:
        reader.lookout.start()  # all look at once: the wait is the slowest look, not their sum
    deadline = time.monotonic() + timeout
    for reader in remote:
        if not reader.first_look(max(0.0, deadline - time.monotonic())):
            logger.warning("%s did not answer within %.0f s: routing starts without it and takes it in "
                           "when it arrives", reader.lookout.what, timeout)  # fmt: skip
