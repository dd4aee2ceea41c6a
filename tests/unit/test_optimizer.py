import math
import random

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from scipy.stats import binomtest

from routing.errors import NoEligibleTargetError, UnknownTargetError
from routing.models import Constraints, Outcome, Target, Task
from routing.router import Router
from routing.stats.book import StatsBook
from routing.strategies.cost_aware import CostAwareConfig, CostAwareStrategy
from routing.strategies.objectives import PRESETS, Objective, Priority, StrategyWeights
from routing.strategies.optimizer import (
    InfeasibleConstraintsError,
    get_optimal_target,
    optimal_split,
    savings_hints,
    scores,
)
from routing.strategies.pareto import TargetPerformance, dominates


def perf(name: str, success: float, cost: float, p95: float) -> TargetPerformance:
    return TargetPerformance(target=name, success_rate=success, cost=cost, p95_latency_ms=p95)


X = perf("X", 0.97, 0.002, 800)
Y = perf("Y", 0.85, 0.001, 500)
# Neither meets {success >= 90%, cost <= $0.003} alone; 2/3 A + 1/3 B meets both exactly.
A = perf("A", 0.95, 0.004, 800)
B = perf("B", 0.80, 0.001, 300)
BOTH = Constraints(min_success_rate=0.9, max_cost=0.003)


# --- models ---------------------------------------------------------------------------------------


def test_weights_must_sum_to_one():
    with pytest.raises(ValidationError, match="must sum to 1, got 0.9"):
        StrategyWeights(success=0.5, cost=0.4)
    with pytest.raises(ValidationError, match="latency"):
        StrategyWeights(success=1.0, cost=0.5, latency=-0.5)


def test_objective_takes_its_priority_preset_unless_weights_are_given():
    assert Objective().weights == StrategyWeights(success=0.6, cost=0.4, latency=0.0)
    assert Objective(priority="interactive").weights == PRESETS[Priority.INTERACTIVE]
    assert PRESETS[Priority.INTERACTIVE].latency > max(PRESETS[Priority.INTERACTIVE].success, 0.1)
    assert PRESETS[Priority.BATCH].cost > PRESETS[Priority.BATCH].success
    assert PRESETS[Priority.CRITICAL].success >= 0.9
    custom = StrategyWeights(success=0.2, cost=0.8)
    assert Objective(priority="critical", weights=custom).weights == custom
    with pytest.raises(ValidationError, match="priority"):
        Objective(priority="urgent")


def test_scores_by_hand():
    # 0.6 success + 0.4 cost, cost normalised by the dearest ($0.002): X 0.6*.97 + 0, Y 0.6*.85 + 0.4*.5
    assert scores([X, Y], StrategyWeights()) == pytest.approx({"X": 0.582, "Y": 0.71})
    # Latency normalised by the slowest (800 ms): Y scores 1 - 500/800 on it.
    latency_only = StrategyWeights(success=0, cost=0, latency=1)
    assert scores([X, Y], latency_only) == pytest.approx({"X": 0, "Y": 0.375})
    free = [perf("a", 0.5, 0.0, 0.0), perf("b", 0.7, 0.0, 0.0)]
    assert scores(free, StrategyWeights()) == pytest.approx({"a": 0.7, "b": 0.82})


def test_perfs_must_be_distinct_and_present():
    with pytest.raises(ValueError, match="more than once: X"):
        get_optimal_target([X, X])
    with pytest.raises(ValueError, match="at least one"):
        get_optimal_target([])


# --- single-target choice and its reasoning -------------------------------------------------------


def test_reasoning_when_the_cheap_target_misses_the_success_floor():
    selection = get_optimal_target([X, Y], Constraints(min_success_rate=0.9))
    assert selection.target == "X" and selection.split is None
    assert selection.reasoning == (
        "chose X: 97% success, $0.002 per call, p95 800 ms; "
        "Y is cheaper and faster but misses the 90% success floor"
    )
    assert selection.sample(random.Random(0)) == ("X", 1.0)


def test_reasoning_without_constraints_compares_scores():
    selection = get_optimal_target([X, Y])
    assert selection.target == "Y"
    assert selection.reasoning == (
        "chose Y: 85% success, $0.001 per call, p95 500 ms; X is more reliable but scores 0.582 against 0.710"
    )


def test_reasoning_names_dominated_tied_and_every_missed_constraint():
    twin = perf("X2", 0.97, 0.002, 800)
    worse = perf("W", 0.90, 0.003, 900)
    flaky = perf("F", 0.50, 0.0005, 2000)
    limits = Constraints(min_success_rate=0.9, max_latency_ms=1500)
    selection = get_optimal_target([X, twin, worse, flaky], limits, Objective(priority="critical"))
    assert selection.target == "X"  # ties with X2; the default order decides
    assert selection.reasoning == (
        "chose X: 97% success, $0.002 per call, p95 800 ms; X2 is tied on every metric; W is dominated; "
        "F is cheaper but misses the 90% success floor and exceeds the 1,500 ms p95 SLA"
    )


def test_equal_scores_go_to_the_priority_first_metric():
    # 0.5*success + 0.5*cost_score: sure 0.5*1 + 0.5*0 = 0.5, thrifty 0.5*0.5 + 0.5*0.5 = 0.5.
    sure, thrifty = perf("sure", 1.0, 0.002, 500), perf("thrifty", 0.5, 0.001, 500)
    weights = StrategyWeights(success=0.5, cost=0.5)
    balanced, batch = Objective(weights=weights), Objective(priority="batch", weights=weights)
    assert get_optimal_target([thrifty, sure], objective=balanced).target == "sure"
    assert get_optimal_target([sure, thrifty], objective=batch).target == "thrifty"


@pytest.mark.parametrize(
    ("priority", "expected"), [("interactive", "fast"), ("batch", "cheap"), ("critical", "sure")]
)
def test_priorities_pick_by_their_first_concern(priority, expected):
    perfs = [
        perf("fast", 0.90, 0.004, 200),
        perf("cheap", 0.90, 0.0005, 1500),
        perf("sure", 0.99, 0.004, 1500),
    ]
    assert get_optimal_target(perfs, objective=Objective(priority=priority)).target == expected


# --- traffic splits, checked by hand --------------------------------------------------------------


def test_split_when_the_constraints_leave_a_single_mix():
    # share a on A: success 0.80 + 0.15a >= 0.90 -> a >= 2/3; cost 0.001 + 0.003a <= 0.003 -> a <= 2/3.
    selection = get_optimal_target([A, B], BOTH)
    assert selection.target is None
    split = selection.split
    assert split.shares == pytest.approx({"A": 2 / 3, "B": 1 / 3})
    assert split.expected_success == pytest.approx(0.9)
    assert split.expected_cost == pytest.approx(0.003)
    assert split.p95_latency_ms == 800
    assert selection.reasoning == (
        "no single target meets every constraint "
        "(A exceeds the $0.003 cost cap; B misses the 90% success floor); "
        "split 66.7% A / 33.3% B: expected 90% success, $0.003 per call, p95 at most 800 ms"
    )


@pytest.mark.parametrize(
    ("priority", "share_a", "success", "cost"),
    [
        # cap $0.0034 allows a in [2/3, 0.8]. Scores (cost normalised by $0.004):
        # balanced A 0.57, B 0.78 -> the least A, a = 2/3; critical A 0.9025, B 0.7975 -> the most A, a = 0.8.
        ("balanced", 2 / 3, 0.9, 0.003),
        ("critical", 0.8, 0.92, 0.0034),
    ],
)
def test_split_maximises_the_objective_within_the_constraints(priority, share_a, success, cost):
    limits = Constraints(min_success_rate=0.9, max_cost=0.0034)
    split = optimal_split([A, B], limits, Objective(priority=priority))
    assert split.shares["A"] == pytest.approx(share_a)
    assert split.shares["B"] == pytest.approx(1 - share_a)
    assert (split.expected_success, split.expected_cost) == pytest.approx((success, cost))
    weights = PRESETS[Priority(priority)]
    per_target = scores([A, B], weights)
    assert split.score == pytest.approx(share_a * per_target["A"] + (1 - share_a) * per_target["B"])


def test_split_leaves_out_targets_over_the_latency_sla():
    ideal_but_slow = perf("C", 0.99, 0.0005, 2000)
    limits = BOTH.model_copy(update={"max_latency_ms": 1000})
    selection = get_optimal_target([A, B, ideal_but_slow], limits)
    assert selection.split.shares == pytest.approx({"A": 2 / 3, "B": 1 / 3})
    assert "C exceeds the 1,000 ms p95 SLA" in selection.reasoning
    draws = [selection.sample(random.Random(seed)) for seed in range(300)]
    assert {name for name, _ in draws} == {"A", "B"}
    assert all(p == pytest.approx({"A": 2 / 3, "B": 1 / 3}[name]) for name, p in draws)


# --- infeasible constraints -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "names", "best", "text"),
    [
        (Constraints(max_latency_ms=100), ("max_latency_ms",), 300, "the fastest p95 is 300 ms, 200 ms over"),
        (Constraints(min_success_rate=0.99), ("min_success_rate",), 0.95, "4 points below the 99% floor"),
        (Constraints(max_cost=0.0005), ("max_cost",), 0.001, "costs $0.001, $0.0005 over the $0.0005 cap"),
        # Cheapest mix at 90% success is the 2/3 : 1/3 one, $0.003 a call.
        (
            Constraints(min_success_rate=0.9, max_cost=0.0025),
            ("max_cost", "min_success_rate"),
            0.003,
            "costs at least $0.003 per call, $0.0005 over the $0.0025 cap",
        ),
        # B is the only target fast enough, so its 80% is the best success rate on offer.
        (Constraints(min_success_rate=0.9, max_latency_ms=500), ("min_success_rate",), 0.8, "best is 80%"),
    ],
)
def test_infeasible_constraints_are_named_with_the_best_on_offer(limits, names, best, text):
    with pytest.raises(InfeasibleConstraintsError) as caught:
        get_optimal_target([A, B], limits)
    error = caught.value
    assert error.constraints == names
    assert error.failures[0].best == pytest.approx(best)
    assert text in str(error)
    assert isinstance(error, NoEligibleTargetError)


# --- properties -----------------------------------------------------------------------------------

problems = st.tuples(
    st.lists(
        st.tuples(st.integers(0, 100), st.integers(0, 10), st.integers(1, 20)), min_size=1, max_size=5
    ).map(lambda rows: [perf(f"t{i}", s / 100, c / 1000, ms * 100) for i, (s, c, ms) in enumerate(rows)]),
    st.builds(
        Constraints,
        min_success_rate=st.none() | st.integers(0, 100).map(lambda s: s / 100),
        max_cost=st.none() | st.integers(0, 10).map(lambda c: c / 1000),
        max_latency_ms=st.none() | st.integers(1, 20).map(lambda ms: ms * 100.0),
    ),
    st.sampled_from(list(Priority)),
)


def _cheapest_mix(pool: list[TargetPerformance], floor: float) -> float:
    """Least mean cost of a mix reaching `floor`: the optimum is a single target or a pair on the floor."""
    least = min((p.cost for p in pool if p.success_rate >= floor), default=math.inf)
    for lo in pool:
        for hi in pool:
            if lo.success_rate < floor <= hi.success_rate:
                share = (floor - lo.success_rate) / (hi.success_rate - lo.success_rate)
                least = min(least, lo.cost + share * (hi.cost - lo.cost))
    return least


def _meets(p: TargetPerformance, c: Constraints) -> bool:
    return (
        (c.min_success_rate is None or p.success_rate >= c.min_success_rate)
        and (c.max_cost is None or p.cost <= c.max_cost)
        and (c.max_latency_ms is None or p.p95_latency_ms <= c.max_latency_ms)
    )


@pytest.mark.slow  # property-based (hypothesis)
@settings(max_examples=300, deadline=None)
@given(problems)
def test_selection_meets_every_satisfiable_constraint_and_names_the_unsatisfiable(problem):
    perfs, c, priority = problem
    objective = Objective(priority=priority)
    fast = [p for p in perfs if c.max_latency_ms is None or p.p95_latency_ms <= c.max_latency_ms]
    least = _cheapest_mix(fast, c.min_success_rate or 0.0)
    cap = math.inf if c.max_cost is None else c.max_cost
    assume(not math.isclose(least, cap, rel_tol=0, abs_tol=1e-12))  # knife-edge: float rounding decides
    feasible = least < cap
    try:
        selection = get_optimal_target(perfs, c, objective)
    except InfeasibleConstraintsError as error:
        assert not feasible
        for failure in error.failures:
            if failure.constraints == ("max_latency_ms",):
                assert not fast
            elif failure.constraints == ("min_success_rate",):
                assert max(p.success_rate for p in (fast or perfs)) < c.min_success_rate
            elif failure.constraints == ("max_cost",):
                assert min(p.cost for p in (fast or perfs)) > c.max_cost
            else:
                assert failure.constraints == ("max_cost", "min_success_rate")
                assert failure.best == pytest.approx(least) and least > c.max_cost
        return
    assert feasible
    score = scores(perfs, objective.weights)
    singles = [p for p in perfs if _meets(p, c)]
    if selection.split is None:
        chosen = next(p for p in perfs if p.target == selection.target)
        assert _meets(chosen, c)
        assert score[chosen.target] == max(score[p.target] for p in singles)
        assert not any(dominates(p, chosen) for p in singles)
        return
    assert not singles
    split = selection.split
    by_name = {p.target: p for p in perfs}
    shares = np.array(list(split.shares.values()))
    used = [by_name[name] for name in split.shares]
    assert (shares > 0).all() and shares.sum() == pytest.approx(1.0)
    assert all(c.max_latency_ms is None or p.p95_latency_ms <= c.max_latency_ms for p in used)
    success = float(shares @ [p.success_rate for p in used])
    cost = float(shares @ [p.cost for p in used])
    assert (split.expected_success, split.expected_cost) == pytest.approx((success, cost), abs=1e-12)
    assert c.min_success_rate is None or success >= c.min_success_rate - 1e-9
    assert c.max_cost is None or cost <= c.max_cost + 1e-11
    # No random feasible mix of the fast targets scores better than the split.
    rng = np.random.default_rng(0)
    mixes = rng.dirichlet(np.ones(len(fast)), size=200)
    s = mixes @ [p.success_rate for p in fast]
    k = mixes @ [p.cost for p in fast]
    ok = (s >= (c.min_success_rate or 0)) & (k <= cap)
    assert (mixes[ok] @ [score[p.target] for p in fast] <= split.score + 1e-9).all()


# --- savings hints --------------------------------------------------------------------------------


def test_savings_hint_by_hand():
    near = perf("Z", 0.96, 0.001, 900)  # 1 point worse, 100 ms slower (12.5%), half the price
    hints = savings_hints([X, Y, near], calls_per_hour=3600, current="X")
    assert len(hints) == 1  # Y loses 12 points, over the 2-point tolerance
    [hint] = hints
    assert (hint.current, hint.alternative) == ("X", "Z")
    assert hint.dollars_per_hour == pytest.approx(3.6)  # $0.001 x 3600
    assert hint.minutes_per_hour == pytest.approx(6.0)  # 100 ms x 3600 / 60,000
    assert hint.success_points == pytest.approx(1.0)
    assert str(hint) == "Z instead of X: 50% cheaper (saves $3.60 an hour), 0.1 s slower at p95, 1 points less success"
    with_calls = savings_hints([X, Y, near], calls_per_hour=3600, current="X", calls={"X": 500, "Y": 9, "Z": 120})
    assert str(with_calls[0]).endswith(", from 120 calls")


def test_a_price_equal_but_for_rounding_is_no_saving():
    """Mean costs of two targets at one price differ in the last bits: no "0% cheaper" hint."""
    twin = perf("T", 0.97, 0.002 * (1 - 1e-14), 800)
    assert savings_hints([X, twin], calls_per_hour=3600) == []
    [hint] = savings_hints([X, perf("T", 0.97, 0.002 * 0.98, 800)], calls_per_hour=3600)
    assert hint.cheaper_share == pytest.approx(0.02)
    assert savings_hints([X, perf("T", 0.97, 0.002 * 0.98, 800)], 3600, min_saving=0.05) == []


def test_savings_hint_tolerances_are_configurable():
    perfs = [X, Y]
    assert savings_hints(perfs, 100) == []
    [hint] = savings_hints(perfs, 100, max_success_drop=0.15)
    assert (hint.current, hint.alternative, hint.minutes_per_hour) == ("X", "Y", pytest.approx(-0.5))
    slow = perf("S", 0.97, 0.001, 1200)  # 50% slower
    assert savings_hints([X, slow], 100) == []
    assert [h.alternative for h in savings_hints([X, slow], 100, max_latency_increase=0.5)] == ["S"]


def test_savings_hints_sort_by_dollars_and_validate():
    perfs = [perf("dear", 0.9, 0.010, 500), perf("mid", 0.9, 0.005, 500), perf("low", 0.9, 0.001, 500)]
    hints = savings_hints(perfs, 10)
    assert [h.dollars_per_hour for h in hints] == pytest.approx([0.09, 0.05, 0.04])
    with pytest.raises(UnknownTargetError, match="nope"):
        savings_hints(perfs, 10, current="nope")
    with pytest.raises(ValueError, match="calls_per_hour"):
        savings_hints(perfs, -1)


# --- the strategy ---------------------------------------------------------------------------------

FAST, CHEAP = Target(name="fast"), Target(name="cheap")


def _feed(router: Router, target: str, task_type: str, n: int, ok: int, cost: float, ms: float) -> None:
    """`n` outcomes of which the first `ok` succeed, all at the same cost and latency."""
    for i in range(n):
        router.observe(Outcome(target=target, task_type=task_type, success=i < ok, duration_ms=ms, cost=cost))


def test_strategy_keeps_the_default_order_below_min_samples():
    strategy = CostAwareStrategy(CostAwareConfig(min_samples=10))
    router = Router([FAST, CHEAP], strategy=strategy)
    _feed(router, "cheap", "qa", 50, 50, 0.0, 10)
    _feed(router, "fast", "qa", 9, 0, 1.0, 5000)
    decision = router.choose(Task(task_type="qa", payload="hi"))
    assert (decision.pick, decision.probability, decision.strategy) == ("fast", 1.0, "cost_aware")
    assert "fewer than 10 calls" in decision.reason


def test_strategy_uses_the_objective_of_each_task_type():
    config = CostAwareConfig(
        objectives={"chat": Objective(priority="interactive"), "etl": Objective(priority="batch")},
        min_samples=10,
    )
    router = Router([FAST, CHEAP], strategy=CostAwareStrategy(config))
    for task_type in ("chat", "etl"):
        _feed(router, "fast", task_type, 10, 9, 0.004, 200)
        _feed(router, "cheap", task_type, 10, 9, 0.001, 900)
    chat = router.choose(Task(task_type="chat", payload="hi"))
    etl = router.choose(Task(task_type="etl", payload="hi"))
    assert (chat.pick, chat.probability) == ("fast", 1.0)
    assert (etl.pick, etl.probability) == ("cheap", 1.0)
    assert chat.reason.startswith("chose fast: 90% success, $0.004 per call, p95 200 ms")
    assert [c.target for c in etl.candidates] == ["cheap", "fast"]
    assert etl.candidates[0].details["mean_cost"] == pytest.approx(0.001)


def test_strategy_samples_a_split_with_its_share_as_propensity():
    router = Router(
        [Target(name="A"), Target(name="B")],
        strategy=CostAwareStrategy(CostAwareConfig(min_samples=20), seed=7),
    )
    _feed(router, "A", "qa", 20, 19, 0.004, 800)  # 95% success, $0.004
    _feed(router, "B", "qa", 20, 16, 0.001, 300)  # 80% success, $0.001
    task = Task(task_type="qa", payload="hi", constraints=BOTH)
    decisions = [router.choose(task) for _ in range(3000)]
    assert all(d.probability == pytest.approx({"A": 2 / 3, "B": 1 / 3}[d.pick]) for d in decisions)
    picked_a = sum(d.pick == "A" for d in decisions)
    assert binomtest(picked_a, len(decisions), 2 / 3).pvalue > 0.001
    assert "sampled" in decisions[0].reason and "split 66.7% A / 33.3% B" in decisions[0].reason


def test_strategy_follows_new_statistics():
    strategy = CostAwareStrategy(CostAwareConfig(min_samples=20))
    router = Router([Target(name="A"), Target(name="B")], strategy=strategy)
    _feed(router, "A", "qa", 20, 19, 0.004, 800)
    _feed(router, "B", "qa", 20, 16, 0.001, 300)
    task = Task(task_type="qa", payload="hi", constraints=BOTH)
    assert router.choose(task).probability < 1
    _feed(router, "B", "qa", 80, 80, 0.001, 300)  # B now succeeds 96 times in 100: it meets the floor alone
    assert (router.choose(task).pick, router.choose(task).probability) == ("B", 1.0)


def test_strategy_raises_when_nothing_meets_the_task_constraints():
    router = Router([FAST, CHEAP], strategy=CostAwareStrategy(CostAwareConfig(min_samples=5)))
    _feed(router, "fast", "qa", 5, 5, 0.004, 200)
    _feed(router, "cheap", "qa", 5, 5, 0.001, 900)
    with pytest.raises(NoEligibleTargetError, match="max_latency_ms"):
        router.choose(Task(task_type="qa", payload="hi", constraints=Constraints(max_latency_ms=100)))


def test_strategy_satisfies_the_protocol_contract():
    strategy = CostAwareStrategy()
    book = StatsBook()
    choice = strategy.choose(Task(task_type="qa", payload="hi"), [FAST], book)
    assert (choice.pick, choice.probability) == ("fast", 1.0)
    assert strategy.observe(Outcome(target="fast", task_type="qa", success=True, duration_ms=1)) is None
