"""Session continuity: stay on the target while the topic holds, re-route when it changes."""

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from routing.context.session import SessionConfig, SessionTracker, keywords
from routing.models import Candidate, Category, Decision, Target, Task
from routing.router import Router


class Clock:
    def __init__(self):
        self.now = datetime(2025, 1, 1, tzinfo=UTC)

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += timedelta(seconds=seconds)


class FakeStrategy:
    """Ranks `available` targets with `best` first, as a strategy whose preference has drifted."""

    def __init__(self, best="a", available=("a", "b", "c")):
        self.best = best
        self.available = available
        self.calls = 0

    def __call__(self, task):
        self.calls += 1
        order = [self.best] + [t for t in self.available if t != self.best]
        candidates = tuple(Candidate(target=t, score=-i) for i, t in enumerate(order))
        return Decision(task_id=task.id, task_type=task.task_type, strategy="fake", candidates=candidates,
                        pick=self.best, probability=0.9, reason="fake best")


def turn(text, session="s1", **fields):
    return Task(task_type="chat", payload=text, session_id=session, **fields)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def tracker(clock):
    return SessionTracker(clock=clock)


FIRST = "Write a Python function that parses CSV files with quoted fields into dictionaries"


def test_session_keeps_its_target_while_the_topic_holds(tracker):
    strategy = FakeStrategy(best="a")
    first = tracker.route(turn(FIRST), strategy)
    assert (first.pick, first.probability) == ("a", 0.9)
    strategy.best = "b"  # the strategy now prefers b, but the conversation goes on
    follow_ups = [
        "Now make the CSV parser skip empty rows and keep quoted fields intact",
        "Why?",
        "Can you add type hints to that function?",
    ]
    for i, text in enumerate(follow_ups, start=2):
        decision = tracker.route(turn(text), strategy)
        assert (decision.pick, decision.probability) == ("a", 1.0), text
        assert decision.fallback_order[0] == "a" and set(decision.fallback_order) == {"a", "b", "c"}
        assert f"turn {i}" in decision.reason
    assert tracker.get("s1").turns == 4


def test_category_change_reroutes(tracker):
    strategy = FakeStrategy(best="a")
    tracker.route(turn(FIRST), strategy)
    strategy.best = "b"
    decision = tracker.route(turn("What is 17 * 23 + 4?"), strategy)
    assert (decision.pick, decision.probability) == ("b", 0.9)
    assert "topic changed from coding to math" in decision.reason
    state = tracker.get("s1")
    assert (state.target, state.category, state.turns) == ("b", Category.MATH, 2)


def test_low_keyword_overlap_in_the_same_category_reroutes(tracker):
    strategy = FakeStrategy(best="a")
    tracker.route(turn(FIRST), strategy)
    strategy.best = "c"
    text = "Configure a Kubernetes ingress controller with TLS certificates in Docker"
    decision = tracker.route(turn(text), strategy)
    assert decision.pick == "c"
    assert "keyword overlap 0.00" in decision.reason
    assert tracker.get("s1").category == Category.CODING


def test_an_unavailable_target_reroutes(tracker):
    tracker.route(turn(FIRST), FakeStrategy(best="a"))
    without_a = FakeStrategy(best="b", available=("b", "c"))
    decision = tracker.route(turn("Now handle quoted CSV fields"), without_a)
    assert decision.pick == "b"
    assert "a is not available" in decision.reason
    assert tracker.get("s1").target == "b"


def test_general_chatter_inside_a_topic_continues(tracker):
    strategy = FakeStrategy(best="a")
    tracker.route(turn(FIRST), strategy)
    strategy.best = "b"
    assert tracker.route(turn("Thanks, that looks great!"), strategy).pick == "a"


def test_an_explicit_category_overrides_detection(tracker):
    strategy = FakeStrategy(best="a")
    tracker.route(turn(FIRST), strategy)
    strategy.best = "b"
    decision = tracker.route(turn("Now handle quoted CSV fields", category=Category.RESEARCH), strategy)
    assert decision.pick == "b"


def test_idle_sessions_expire(tracker, clock):
    strategy = FakeStrategy(best="a")
    tracker.route(turn(FIRST), strategy)
    tracker.route(turn(FIRST, session="s2"), strategy)
    clock.advance(1000)
    tracker.route(turn("and the quoted CSV fields?", session="s2"), strategy)  # s2 touched
    clock.advance(1000)  # s1 idle 2000 s > 1800 s, s2 idle 1000 s
    strategy.best = "b"
    assert tracker.get("s1") is None
    assert tracker.route(turn("Now handle quoted CSV fields"), strategy).pick == "b"
    assert tracker.get("s1").turns == 1
    clock.advance(1801)
    assert tracker.expire() == 2 and len(tracker) == 0


def test_tasks_without_a_session_pass_through(tracker):
    decision = tracker.route(Task(task_type="chat", payload=FIRST), FakeStrategy(best="c"))
    assert (decision.pick, decision.probability, decision.reason) == ("c", 0.9, "fake best")
    assert len(tracker) == 0


def test_set_target_after_a_fallback_sticks(tracker):
    strategy = FakeStrategy(best="a")
    tracker.route(turn(FIRST), strategy)
    tracker.set_target("s1", "c")
    assert tracker.route(turn("Now skip empty CSV rows too"), strategy).pick == "c"
    with pytest.raises(KeyError, match="unknown live session 'nope'"):
        tracker.set_target("nope", "a")


def test_rows_round_trip(tracker, clock):
    strategy = FakeStrategy(best="a")
    tracker.route(turn(FIRST), strategy)
    tracker.route(turn("What is 17 * 23?", session="s2"), strategy)
    rows = tracker.to_rows()
    assert {r["session_id"] for r in rows} == {"s1", "s2"}
    row = next(r for r in rows if r["session_id"] == "s1")
    assert set(row) == {"session_id", "target", "category", "keywords", "turns", "updated_at"}
    assert row["category"] == "coding" and isinstance(row["keywords"], list) and "csv" in row["keywords"]
    restored = SessionTracker.from_rows(rows, clock=clock)
    assert restored.to_rows() == rows
    strategy.best = "b"
    assert restored.route(turn("Now handle quoted CSV fields"), strategy).pick == "a"


def test_from_rows_drops_expired_and_rejects_bad_rows(clock):
    old = {"session_id": "s", "target": "a", "category": "math", "keywords": [], "turns": 1,
           "updated_at": clock.now - timedelta(hours=1)}
    assert len(SessionTracker.from_rows([old], clock=clock)) == 0
    with pytest.raises(ValidationError, match="turns"):
        SessionTracker.from_rows([{**old, "turns": 0}], clock=clock)
    with pytest.raises(ValidationError, match="category"):
        SessionTracker.from_rows([{**old, "category": "astrology"}], clock=clock)


def test_keywords_drop_stopwords_and_plurals():
    assert keywords("Please parse the CSV files and the CSV headers", limit=3) == ("csv", "parse", "file")
    assert keywords("why?") == ()


@pytest.mark.parametrize(("field", "value"), [("ttl_seconds", 0), ("min_overlap", 1.5), ("min_keywords", 0)])
def test_config_validation_names_the_field(field, value):
    with pytest.raises(ValidationError, match=field):
        SessionConfig(**{field: value})


def test_works_with_the_router(tracker):
    router = Router([Target(name="a"), Target(name="b")])
    decision = tracker.route(turn(FIRST), router.choose)
    assert decision.pick == "a" and decision.strategy == "weighted"
    assert tracker.route(turn("Now also handle quoted CSV fields"), router.choose).probability == 1.0
