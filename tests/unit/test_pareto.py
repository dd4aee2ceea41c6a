import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from routing.strategies.pareto import TargetPerformance, dominates, pareto_frontier


def perf(name: str, success: float, cost: float, p95: float) -> TargetPerformance:
    return TargetPerformance(target=name, success_rate=success, cost=cost, p95_latency_ms=p95)


def test_worked_example():
    premium = perf("premium", 0.97, 0.010, 900)
    mid = perf("mid", 0.92, 0.004, 700)
    cheap = perf("cheap", 0.80, 0.001, 600)
    slow_mid = perf("slow_mid", 0.92, 0.004, 1200)  # mid with a worse p95: dominated by mid
    poor = perf("poor", 0.75, 0.012, 1000)  # worse than premium on all three
    fast = perf("fast", 0.70, 0.020, 100)  # worst on success and cost, best on latency: a trade-off
    assert pareto_frontier([premium, mid, cheap, slow_mid, poor, fast]) == [premium, mid, cheap, fast]


def test_dominance_needs_one_strict_improvement():
    a = perf("a", 0.9, 0.002, 500)
    assert dominates(a, perf("b", 0.9, 0.002, 501))
    assert dominates(a, perf("b", 0.89, 0.002, 500))
    assert dominates(a, perf("b", 0.9, 0.0021, 500))
    assert not dominates(a, perf("b", 0.9, 0.002, 500))  # identical
    assert not dominates(a, perf("b", 0.91, 0.003, 600))  # better on success, worse elsewhere


def test_identical_points_both_stay():
    twins = [perf("a", 0.9, 0.002, 500), perf("b", 0.9, 0.002, 500), perf("c", 0.8, 0.002, 500)]
    assert [p.target for p in pareto_frontier(twins)] == ["a", "b"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("success_rate", 1.1), ("success_rate", -0.1), ("cost", -1), ("p95_latency_ms", float("inf"))],
)
def test_performance_validation_names_the_field(field, value):
    with pytest.raises(ValidationError, match=field):
        TargetPerformance(**dict(target="a", success_rate=0.5, cost=0.1, p95_latency_ms=1) | {field: value})


# Few distinct values, so that ties and duplicates are common.
performances = st.lists(
    st.builds(
        perf,
        name=st.text("abcdefgh", min_size=1, max_size=3),
        success=st.sampled_from([0.5, 0.8, 0.9, 1.0]),
        cost=st.sampled_from([0.0, 0.001, 0.002]),
        p95=st.sampled_from([100.0, 500.0, 900.0]),
    ),
    max_size=12,
)


@pytest.mark.slow  # property-based (hypothesis)
@settings(max_examples=200, deadline=None)
@given(performances)
def test_frontier_is_exactly_the_undominated_points(perfs):
    frontier = pareto_frontier(perfs)
    on = {id(p) for p in frontier}
    for p in frontier:
        assert not any(dominates(q, p) for q in perfs)
    for p in perfs:
        if id(p) not in on:
            assert any(dominates(q, p) for q in frontier)  # something on the frontier beats it
    assert [p for p in perfs if id(p) in on] == frontier  # input order kept
    if perfs:
        assert frontier


@pytest.mark.slow  # property-based (hypothesis)
@settings(max_examples=200, deadline=None)
@given(performances.filter(lambda ps: len(ps) >= 2))
def test_dominance_is_a_strict_partial_order(perfs):
    a, b, *rest = perfs
    assert not dominates(a, a)
    assert not (dominates(a, b) and dominates(b, a))
    for c in rest:
        if dominates(a, b) and dominates(b, c):
            assert dominates(a, c)
