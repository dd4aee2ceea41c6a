"""StatisticalScore: noise keeps the default order, real differences reorder, the order is cached."""

import statistics
from collections import Counter
from datetime import UTC, datetime

import numpy as np
import pytest
from pydantic import ValidationError

from routing.models import Outcome, Target, Task
from routing.router import Router
from routing.stats.book import StatsBook
from routing.stats.significance import wilson_interval
from routing.stats.snapshot import StatsEntry, StatsSnapshot
from routing.strategies.statistical import StatisticalScore, StatisticalScoreConfig

T0 = datetime(2025, 1, 1, tzinfo=UTC)
TASK = Task(task_type="qa", payload="hello")


def entry(target, n, successes, mean=100.0, sd=20.0, task_type="qa", **extra):
    return StatsEntry(
        target=target,
        task_type=task_type,
        n=n,
        successes=successes,
        p50_latency_ms=extra.pop("p50", mean),
        p95_latency_ms=mean + 2 * sd,
        p99_latency_ms=mean + 3 * sd,
        mean_latency_ms=mean,
        latency_sd_ms=sd,
        updated_at=T0,
        **extra,
    )


def targets(*names):
    return [Target(name=n) for n in names]


def rank(entries, names, **config):
    strategy = StatisticalScore(StatisticalScoreConfig(**config))
    strategy.publish(StatsSnapshot(entries=tuple(entries), created_at=T0))
    return strategy.choose(TASK, targets(*names), StatsBook())


def order(choice):
    return [c.target for c in choice.candidates]


# --- the ordering rule ------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "a_wins", "b_wins"), [(50, 45, 46), (100, 90, 91)])
def test_a_small_success_difference_keeps_the_default_order(n, a_wins, b_wins):
    choice = rank([entry("a", n, a_wins), entry("b", n, b_wins)], ["a", "b"], min_samples=50)
    by_name = {c.target: c for c in choice.candidates}
    assert by_name["b"].score > by_name["a"].score  # b looks better, but it is noise
    assert order(choice) == ["a", "b"]
    assert choice.pick == "a" and choice.probability == 1.0
    assert "default order" in choice.reason


def test_a_large_success_difference_reorders():
    choice = rank([entry("a", 200, 120), entry("b", 200, 190)], ["a", "b"])
    assert order(choice) == ["b", "a"]
    assert choice.pick == "b" and choice.probability == 1.0
    assert "b over a: more successful" in choice.reason


def test_nothing_moves_below_min_samples():
    choice = rank([entry("a", 99, 10), entry("b", 99, 99)], ["a", "b"])  # default min_samples=100
    assert order(choice) == ["a", "b"]
    assert choice.candidates[1].details["trusted"] == 0.0


def test_as_successful_and_significantly_faster_reorders():
    choice = rank([entry("a", 200, 180, mean=300, sd=50), entry("b", 200, 181, mean=150, sd=40)], ["a", "b"])
    assert order(choice) == ["b", "a"]
    assert "as successful and faster" in choice.reason


def test_faster_but_not_significantly_keeps_the_order():
    # 3 ms apart with sd 50 over 200 calls: Welch p ~ 0.55.
    choice = rank([entry("a", 200, 180, mean=103, sd=50), entry("b", 200, 180, mean=100, sd=50)], ["a", "b"])
    assert choice.candidates[1].score > choice.candidates[0].score
    assert order(choice) == ["a", "b"]


def test_significantly_less_successful_never_climbs_on_speed():
    slow_reliable = entry("a", 1000, 900, mean=1000, sd=100)
    fast_flaky = entry("b", 1000, 800, mean=100, sd=10)
    choice = rank([slow_reliable, fast_flaky], ["a", "b"])
    by_name = {c.target: c for c in choice.candidates}
    assert by_name["b"].score > by_name["a"].score
    assert order(choice) == ["a", "b"]


def test_significantly_more_successful_but_lower_score_stays_below():
    fast = entry("a", 1000, 900, mean=100, sd=10)
    slow_reliable = entry("b", 1000, 950, mean=1000, sd=100)
    choice = rank([fast, slow_reliable], ["a", "b"])
    assert choice.candidates[1].score < choice.candidates[0].score
    assert order(choice) == ["a", "b"]


def test_a_clearly_best_target_climbs_past_several():
    entries = [entry("a", 300, 150), entry("b", 300, 152), entry("c", 300, 290)]
    assert order(rank(entries, ["a", "b", "c"])) == ["c", "a", "b"]


def test_a_target_without_data_holds_its_place():
    entries = [entry("a", 300, 150), entry("c", 300, 290)]
    assert order(rank(entries, ["a", "new", "c"])) == ["a", "new", "c"]


def test_alpha_is_configurable():
    entries = [entry("a", 200, 160), entry("b", 200, 173)]  # two-proportion p ~ 0.08
    assert order(rank(entries, ["a", "b"])) == ["a", "b"]
    assert order(rank(entries, ["a", "b"], alpha=0.10)) == ["b", "a"]


def test_candidates_carry_score_interval_and_latency():
    entries = [entry("a", 200, 150, mean=200, p50=180), entry("b", 200, 190, mean=100, p50=90)]
    choice = rank(entries, ["a", "b"])
    b, a = choice.candidates
    assert b.details["speed_score"] == 1.0 and a.details["speed_score"] == pytest.approx(90 / 180)
    assert a.score == pytest.approx(0.75 * 0.7 + 0.5 * 0.3)
    assert (a.details["success_low"], a.details["success_high"]) == pytest.approx(wilson_interval(150, 200))
    assert a.p50_latency_ms == 180 and a.details["p99_latency_ms"] == 260 and a.samples == 200


# --- caching and publishing ---------------------------------------------------------------------------


def test_order_is_cached_until_new_statistics_are_published():
    strategy = StatisticalScore()
    strategy.publish(StatsSnapshot(entries=(entry("a", 200, 120), entry("b", 200, 190)), created_at=T0))
    first = strategy.choose(TASK, targets("a", "b"), StatsBook())
    assert strategy.choose(TASK, targets("a", "b"), StatsBook()).candidates is first.candidates

    same = StatsSnapshot(entries=(entry("a", 200, 120), entry("b", 200, 190)))  # later created_at
    assert strategy.publish(same) == set()
    assert strategy.choose(TASK, targets("a", "b"), StatsBook()).candidates is first.candidates

    flipped = StatsSnapshot(entries=(entry("a", 400, 390), entry("b", 400, 200)))
    assert strategy.publish(flipped) == {"qa"}
    assert order(strategy.choose(TASK, targets("a", "b"), StatsBook())) == ["a", "b"]


def test_publishing_one_task_type_keeps_the_others_cached():
    strategy = StatisticalScore()
    code = Task(task_type="code", payload="x")
    code_entries = (entry("a", 200, 100, task_type="code"), entry("b", 200, 190, task_type="code"))
    strategy.publish(StatsSnapshot(entries=code_entries))
    cached = strategy.choose(code, targets("a", "b"), StatsBook()).candidates
    changed = strategy.publish(
        StatsSnapshot(entries=strategy.snapshot.entries + (entry("a", 200, 199),))
    )
    assert changed == {"qa"}
    assert strategy.choose(code, targets("a", "b"), StatsBook()).candidates is cached


def test_without_a_snapshot_the_book_is_read_once_then_cached_until_invalidated():
    book = StatsBook()
    strategy = StatisticalScore(StatisticalScoreConfig(min_samples=20))
    for i in range(40):
        book.observe(Outcome(target="a", task_type="qa", success=i % 2 == 0, duration_ms=100))
        book.observe(Outcome(target="b", task_type="qa", success=True, duration_ms=100))
    assert order(strategy.choose(TASK, targets("a", "b"), book)) == ["b", "a"]
    for _ in range(400):
        book.observe(Outcome(target="a", task_type="qa", success=True, duration_ms=100))
    assert order(strategy.choose(TASK, targets("a", "b"), book)) == ["b", "a"]  # still cached
    strategy.invalidate("qa")
    assert order(strategy.choose(TASK, targets("a", "b"), book)) == ["a", "b"]  # 420/440 vs 40/40: equal


def test_the_order_is_over_the_targets_offered():
    strategy = StatisticalScore()
    entries = (entry("a", 200, 100), entry("b", 200, 150), entry("c", 200, 199))
    strategy.publish(StatsSnapshot(entries=entries))
    assert order(strategy.choose(TASK, targets("a", "b", "c"), StatsBook())) == ["c", "b", "a"]
    assert order(strategy.choose(TASK, targets("a", "b"), StatsBook())) == ["b", "a"]


# --- exploration and propensity -----------------------------------------------------------------------


def test_explore_rate_reports_true_propensities():
    strategy = StatisticalScore(StatisticalScoreConfig(explore_rate=0.3), seed=7)
    strategy.publish(StatsSnapshot(entries=(entry("a", 200, 100), entry("b", 200, 190))))
    picks = Counter()
    propensity = {}
    for _ in range(4000):
        choice = strategy.choose(TASK, targets("a", "b", "c"), StatsBook())
        picks[choice.pick] += 1
        propensity[choice.pick] = choice.probability
    assert propensity == pytest.approx({"b": 0.7 + 0.1, "a": 0.1, "c": 0.1})
    for name, p in propensity.items():
        assert picks[name] / 4000 == pytest.approx(p, abs=0.03)


def test_a_single_target_is_picked_with_certainty_even_when_exploring():
    strategy = StatisticalScore(StatisticalScoreConfig(explore_rate=0.5))
    choice = strategy.choose(TASK, targets("a"), StatsBook())
    assert (choice.pick, choice.probability) == ("a", 1.0)


# --- snapshot model -----------------------------------------------------------------------------------


def test_snapshot_json_round_trip():
    snapshot = StatsSnapshot(entries=(entry("a", 10, 7), entry("b", 20, 3, task_type="code", latency_n=15)))
    restored = StatsSnapshot.model_validate_json(snapshot.model_dump_json())
    assert restored == snapshot
    assert restored.get("b", "code").latency_samples == 15 and restored.get("a", "qa").latency_samples == 10
    assert restored.task_types == {"qa", "code"}


def test_snapshot_from_book():
    book = StatsBook()
    rng = np.random.default_rng(0)
    latencies = rng.gamma(2.0, 50.0, size=60)
    for i, ms in enumerate(latencies):
        outcome = Outcome(target="a", task_type="qa", success=i % 3 != 0, duration_ms=float(ms), cost=0.002)
        book.observe(outcome)
    snap = StatsSnapshot.from_book(book, updated_at=T0)
    e = snap.get("a", "qa")
    assert (e.n, e.successes, e.latency_samples, e.updated_at) == (60, 40, 60, T0)
    alpha = book.get("a", "qa").relative_accuracy  # a sketch: within its stated accuracy of numpy's
    assert e.p95_latency_ms == pytest.approx(np.percentile(latencies, 95), rel=alpha)
    assert e.mean_latency_ms == pytest.approx(latencies.mean())
    assert e.latency_sd_ms == pytest.approx(statistics.stdev(latencies))
    assert e.mean_cost == pytest.approx(0.002)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"successes": 11}, r"successes \(11\) must not exceed n \(10\)"),
        ({"latency_n": 11}, r"latency_n \(11\) must not exceed n"),
        ({"p95_latency_ms": 1.0}, "p50_latency_ms <= p95_latency_ms"),
        ({"n": 0}, "n"),
    ],
)
def test_entry_validation_names_the_field(change, message):
    fields = entry("a", 10, 5).model_dump()
    with pytest.raises(ValidationError, match=message):
        StatsEntry(**{**fields, **change})


def test_snapshot_rejects_duplicate_pairs():
    with pytest.raises(ValidationError, match="duplicate entry for target 'a', task type 'qa'"):
        StatsSnapshot(entries=(entry("a", 10, 5), entry("a", 20, 5)))


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"alpha": 0}, "alpha"), ({"alpha": 1}, "alpha"), ({"min_samples": 0}, "min_samples"),
     ({"success_weight": 0.9}, "success_weight \\+ speed_weight must be 1")],
)
def test_config_validation(fields, message):
    with pytest.raises(ValidationError, match=message):
        StatisticalScoreConfig(**fields)


def test_runs_inside_the_router():
    strategy = StatisticalScore()
    strategy.publish(StatsSnapshot(entries=(entry("a", 200, 120), entry("b", 200, 190))))
    decision = Router(targets("a", "b"), strategy=strategy).choose(TASK)
    assert (decision.strategy, decision.pick, decision.probability) == ("statistical", "b", 1.0)
    assert decision.fallback_order == ["b", "a"]
