"""Breaker gossip: a target one process's breaker opened is avoided by another after its next look,
with the I/O on background threads (blocks/store/lookout.py)."""

from __future__ import annotations

import logging
import threading

from blocks.store.gossip import BreakerGossip
from blocks.store.lookout import MAX_BACKOFF_DOUBLINGS, Lookout
from routing.calls.breaker import BreakerBoard, BreakerConfig
from routing.models import AttemptResult, ErrorType


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def failure(target: str) -> AttemptResult:
    return AttemptResult(target=target, ok=False, duration_ms=1.0, error_type=ErrorType.CONNECTION)


def test_a_dead_target_found_by_one_process_is_avoided_by_another_until_its_retry_time(tmp_path) -> None:
    clock = Clock()
    config = BreakerConfig(failure_threshold=2, open_timeout_seconds=30)
    gossips: list[BreakerGossip] = []

    def publish(_transition) -> None:
        gossips[0].publish()

    finder = BreakerBoard(config, clock=clock, on_transition=publish)
    other = BreakerBoard(config, clock=clock)
    # a long interval: every look below is one the test asks for, none happens on its own schedule
    gossips += [BreakerGossip(tmp_path, finder, interval=600),
                BreakerGossip(tmp_path, other, interval=600, name="other-host-1.json")]  # a second process
    try:
        assert gossips[1].lookout.look_now(timeout=30) and other.available("dead")
        finder.record(failure("dead"))
        finder.record(failure("dead"))  # opens: the finder's thread is woken to write its file
        assert not finder.available("dead")
        assert gossips[0].lookout.look_now(timeout=30)  # that write is done by the time this look ends
        assert other.available("dead")  # the other process has not looked since
        assert gossips[1].lookout.look_now(timeout=30) and not other.available("dead")
        assert other.available("alive")
        clock.now += 30  # the finder's retry time: peers stop avoiding it, the finder probes it
        assert other.available("dead")
    finally:
        for gossip in gossips:
            gossip.close()


def test_unreadable_or_foreign_gossip_files_are_skipped(tmp_path) -> None:
    board = BreakerBoard()
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "mixed.json").write_text('{"a": 5.0, "b": "soon"}')
    assert BreakerGossip(tmp_path, board).peers() == {"a": 5.0}


class Flaky:
    """A look that fails while `down` is set: the owner of a lookout."""

    def __init__(self) -> None:
        self.down = True
        self.looks = 0
        self.lookout = Lookout(self.look, interval=2.0, what="flaky location")

    def look(self) -> None:
        self.looks += 1
        if self.down:
            raise OSError("connection refused")


def test_failed_looks_back_off_and_are_logged_once_per_outage(caplog) -> None:
    caplog.set_level(logging.INFO, logger="adaptive_router")
    flaky = Flaky()
    try:
        delays = []  # the first look ran when the thread started, then one per look_now
        for _ in range(MAX_BACKOFF_DOUBLINGS + 2):
            assert flaky.lookout.look_now(timeout=30)
            delays.append(flaky.lookout.delay)
        cap = 2.0 * 2**MAX_BACKOFF_DOUBLINGS
        assert delays[0] >= 4.0 and delays[-1] == cap
        assert all(later == min(2 * earlier, cap) for earlier, later in zip(delays, delays[1:], strict=False))
        flaky.down = False
        assert flaky.lookout.look_now(timeout=30) and flaky.lookout.delay == 2.0  # back to the interval
        flaky.down = True
        assert flaky.lookout.look_now(timeout=30) and flaky.lookout.delay == 4.0  # a new outage
    finally:
        flaky.lookout.close()
    messages = [r.getMessage() for r in caplog.records if "flaky location" in r.getMessage()]
    assert sum("cannot be reached" in m for m in messages) == 2  # once per outage, not per look
    assert sum("reachable again" in m for m in messages) == 1


def test_a_closed_lookout_stops_its_thread_and_looks_no_more() -> None:
    flaky = Flaky()
    assert flaky.lookout.look_now(timeout=30)
    thread = flaky.lookout._thread
    flaky.lookout.close(timeout=30)
    assert not thread.is_alive()
    looks = flaky.looks
    assert not flaky.lookout.look_now(timeout=0.1)
    flaky.lookout.start()
    assert flaky.lookout._thread is thread and flaky.looks == looks


def test_a_dropped_owner_ends_its_lookouts_thread() -> None:
    import gc

    flaky = Flaky()
    lookout = flaky.lookout
    assert lookout.look_now(timeout=30)
    thread = lookout._thread
    del flaky
    gc.collect()
    lookout.wake()  # the thread finds its owner gone at this wake
    thread.join(timeout=30)
    assert not thread.is_alive()


class Held:
    """A look that blocks until `gate` is set: a look in flight."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.lookout = Lookout(self.look, interval=600, what="held location")

    def look(self) -> None:
        self.gate.wait()


def test_closing_a_lookout_releases_whoever_waits_for_a_look() -> None:
    held = Held()
    answers: list[bool] = []
    held.lookout.start()  # its first look is in flight, held
    waiter = threading.Thread(target=lambda: answers.append(held.lookout.look_now()))  # no timeout
    waiter.start()
    try:
        held.lookout.close(timeout=0)
        waiter.join(timeout=60)  # a bound on a hang, not a timing: the wait ends at the close
        assert not waiter.is_alive() and answers == [False]
    finally:
        held.gate.set()


def test_a_write_the_location_refuses_still_reads_the_peers(tmp_path, caplog) -> None:
    (tmp_path / "peer-1.json").write_text('{"dead": 5000.0}')
    board = BreakerBoard(BreakerConfig(failure_threshold=1), clock=Clock())
    # a file in a folder that does not exist: the location refuses the write (as read-only credentials do)
    gossip = BreakerGossip(tmp_path, board, interval=600, name="no-such-folder/me.json")
    try:
        board.record(failure("mine"))  # opens: a write is asked for
        gossip.publish()
        assert gossip.lookout.look_now(timeout=30)
        assert not board.available("dead")  # the peer's breaker, learnt all the same
        assert gossip.lookout.failures >= 1 and gossip._unwritten  # counted for backoff, retried next look
        assert "breaker gossip" in caplog.text and "cannot be reached" in caplog.text
    finally:
        gossip.close()


def test_two_gossips_in_one_process_upload_under_different_names(tmp_path) -> None:
    one, two = BreakerGossip(tmp_path, BreakerBoard()), BreakerGossip(tmp_path, BreakerBoard())
    assert one.name == two.name and one._upload != two._upload
