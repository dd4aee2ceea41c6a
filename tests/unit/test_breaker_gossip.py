"""Breaker gossip: a target one process's breaker opened is avoided by another within the read interval."""

from __future__ import annotations

from blocks.store.gossip import BreakerGossip
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
    gossips = []

    def publish(_transition) -> None:
        gossips[0].publish()

    finder = BreakerBoard(config, clock=clock, on_transition=publish)
    other = BreakerBoard(config, clock=clock)
    gossips += [BreakerGossip(tmp_path, finder, interval=2.0), BreakerGossip(tmp_path, other, interval=2.0)]
    gossips[1].name = "other-host-1.json"  # a second process on the same directory

    assert gossips[1].maybe_read(now=0.0) and other.available("dead")
    finder.record(failure("dead"))
    finder.record(failure("dead"))  # opens: published at once
    assert not finder.available("dead")
    assert not gossips[1].maybe_read(now=1.0) and other.available("dead")  # within the interval: not yet
    assert gossips[1].maybe_read(now=2.0) and not other.available("dead")  # the bound: one interval
    assert other.available("alive")
    clock.now += 30  # the finder's retry time: peers stop avoiding it, the finder probes it
    assert other.available("dead")


def test_unreadable_or_foreign_gossip_files_are_skipped(tmp_path) -> None:
    board = BreakerBoard()
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "mixed.json").write_text('{"a": 5.0, "b": "soon"}')
    assert BreakerGossip(tmp_path, board).peers() == {"a": 5.0}
