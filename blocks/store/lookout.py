"""Remote looks off the call path: a daemon thread per reader does the network I/O, callers only pick
up what it fetched.

A look at an object store or a shared filesystem can hang for the backend's whole timeout (a dead
endpoint, a stalled mount). Done inside a routed call, that call waits; done here, the call reads an
attribute the thread set and routing goes on with the last state while the look is pending.

The thread starts on first use (`start`, cheap once it runs), looks every `interval` seconds and,
after failed looks, waits interval x 2^failures (at most 2^7 intervals, ~4 min at 2 s) so a location
that keeps failing is not hammered; a failure is logged once per outage, the recovery once. It holds
its owner's `look` weakly, so dropping the owner ends the thread at its next wake; `close` ends it at
once (a look in flight finishes on its own: the thread is a daemon and never blocks exit). In a forked
child the thread does not exist: the child's lookouts forget it, with fresh locks, and start their own
on first use.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable

MAX_BACKOFF_DOUBLINGS = 7

logger = logging.getLogger("adaptive_router")

_lookouts: weakref.WeakSet[Lookout] = weakref.WeakSet()
_starting = threading.Lock()


class Lookout:
    """Runs `look` (a bound method) on a daemon thread every `interval` seconds, with backoff after
    failures; `what` names the location in logs (no credentials: see remote_spool.display_url)."""

    def __init__(self, look: Callable[[], None], interval: float, what: str) -> None:
        self._look = weakref.WeakMethod(look)
        self.interval = interval
        self.what = what
        self.failures = 0  # consecutive failed looks
        self._thread: threading.Thread | None = None
        self._closed = False
        self._fresh_primitives()
        _lookouts.add(self)

    def _fresh_primitives(self) -> None:
        self._wake = threading.Event()
        self._done = threading.Condition()
        self._started = self._finished = 0

    @property
    def delay(self) -> float:
        """The wait before the next look: `interval`, doubled per consecutive failure (bounded)."""
        return self.interval * 2 ** min(self.failures, MAX_BACKOFF_DOUBLINGS)

    def start(self) -> None:
        """Start the thread if it is not running (an attribute read when it is)."""
        if self._thread is not None or self._closed:
            return
        with _starting:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name=f"lookout: {self.what}", daemon=True)
                self._thread.start()

    def wake(self) -> None:
        """Look now rather than at the next interval (something waits to be written)."""
        self.start()
        self._wake.set()

    def look_now(self, timeout: float | None = None) -> bool:
        """Wake the thread and wait until a look that started after this call has ended (for a caller
        that must have the latest, never for a routed call); False if `timeout` passed first."""
        if self._closed:
            return False
        self.start()
        with self._done:
            wanted = self._started + 1
            self._wake.set()
            self._done.wait_for(lambda: self._closed or self._finished >= wanted, timeout)
            return self._finished >= wanted

    def first_look(self, timeout: float) -> bool:
        """Start the thread and wait until its first look has ended (one this process made already
        counts: no look is added); False if `timeout` passed first or the lookout was closed."""
        self.start()
        with self._done:
            self._done.wait_for(lambda: self._closed or self._finished >= 1, timeout)
            return self._finished >= 1

    def close(self, timeout: float = 1.0) -> None:
        """Stop the thread and release whoever waits for a look; waits up to `timeout` for a look in
        flight (it ends on its own after)."""
        with self._done:  # under the condition: a waiter checks `_closed` and sleeps atomically
            self._closed = True
            self._done.notify_all()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        delay = 0.0  # the first look at once
        while True:
            self._wake.wait(delay)
            self._wake.clear()
            look = self._look()
            if look is None or self._closed:  # the owner was dropped, or closed it
                return
            with self._done:
                self._started += 1
            try:
                look()
            except Exception as exc:  # noqa: BLE001 -- fsspec backends raise their own errors; routing goes on
                self._failed(exc)
            else:
                self._succeeded()
            del look  # hold the owner only while looking
            with self._done:
                self._finished += 1
                self._done.notify_all()
            delay = self.delay

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        if self.failures == 1:
            # the message, not the exception: a record must not keep its traceback (and the owner) alive
            logger.warning("%s cannot be reached, going on with what this process has (looking again with "
                           "backoff): %s", self.what, str(exc))  # fmt: skip

    def _succeeded(self) -> None:
        if self.failures:
            logger.info("%s reachable again", self.what)
        self.failures = 0

    def _forget_thread(self) -> None:
        self._thread = None
        self._fresh_primitives()


def _after_fork_in_child() -> None:
    """The parent's threads do not exist in a forked child and their locks may be held: start afresh."""
    global _starting
    _starting = threading.Lock()
    for lookout in list(_lookouts):
        lookout._forget_thread()


os.register_at_fork(after_in_child=_after_fork_in_child)
