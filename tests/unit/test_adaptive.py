"""AdaptiveScorer's formula on the reference cases, its penalties and validation, and the strategy."""

import pytest
from pydantic import ValidationError

from routing.evaluation.capability import CapabilityTable
from routing.models import Category, Outcome, Target, Task
from routing.router import Router
from routing.stats.book import StatsBook
from routing.strategies.adaptive import AdaptiveScorer, AdaptiveScorerConfig, AdaptiveStrategy

REFERENCE = [(85, 0.99, 120, 88.95), (88, 0.60, 450, 38.025)]


def solve_max_acceptable_ms(capability, success, latency, final, cfg=AdaptiveScorerConfig()):
    """Invert the formula for max_acceptable_ms, given an unpenalised case with latency inside (0, 2M)."""
    rest = capability * cfg.capability_weight + success * 100 * cfg.success_weight
    latency_score = (final - rest) / cfg.latency_weight
    return latency / (2 * (1 - latency_score / 100))


def test_the_reference_cases_pin_max_acceptable_ms_to_500():
    implied = solve_max_acceptable_ms(*REFERENCE[0])
    assert implied == pytest.approx(500, abs=1e-9)
    assert implied == pytest.approx(AdaptiveScorerConfig().max_acceptable_ms)  # so the defaults reproduce them


@pytest.mark.parametrize(("capability", "success", "latency", "final"), REFERENCE)
def test_reference_cases_reproduce_exactly(capability, success, latency, final):
    scorer = AdaptiveScorer()
    result = scorer.score(capability, success, latency, requests=1000)
    assert result.final == pytest.approx(final, abs=1e-9)
    assert result.used_performance_data


def test_second_reference_case_is_the_success_penalty_alone():
    result = AdaptiveScorer().score(88, 0.60, 450, 1000)
    assert result.adjustment == 0.5
    assert result.latency_score == pytest.approx(55)
    assert result.performance_score == pytest.approx(0.60 * 100 * 0.25 + 55 * 0.15)
    assert result.capability_score * 0.6 + result.performance_score == pytest.approx(76.05)


def test_a_longer_latency_budget_applies_the_same_formula():
    result = AdaptiveScorer(AdaptiveScorerConfig(max_acceptable_ms=1000)).score(85, 0.99, 120, 1000)
    assert result.latency_score == pytest.approx(94)
    assert result.final == pytest.approx(85 * 0.6 + 99 * 0.25 + 94 * 0.15)


@pytest.mark.parametrize(
    ("success", "latency", "adjustment"),
    [(0.95, 400, 1.0), (0.90, 500, 1.0), (0.89, 400, 0.5), (0.95, 501, 0.8), (0.5, 900, 0.4)],
)
def test_penalties_multiply_and_apply_strictly_beyond_thresholds(success, latency, adjustment):
    result = AdaptiveScorer().score(70, success, latency, 100)
    assert result.adjustment == pytest.approx(adjustment)
    unpenalised = 70 * 0.6 + result.performance_score
    assert result.final == pytest.approx(unpenalised * adjustment)


@pytest.mark.parametrize(("latency", "expected"), [(0, 100), (500, 50), (1000, 0), (5000, 0)])
def test_latency_score_is_clipped(latency, expected):
    assert AdaptiveScorer().latency_score(latency) == pytest.approx(expected)


def test_few_requests_use_capability_alone():
    result = AdaptiveScorer().score(72, 0.1, 4000, requests=9)
    assert (result.final, result.adjustment, result.used_performance_data) == (72, 1.0, False)
    assert result.performance_score is None
    assert AdaptiveScorer().score(72, 0.1, 4000, requests=10).used_performance_data


@pytest.mark.parametrize(
    ("args", "message"),
    [((101, 0.9, 10, 20), "capability"), ((50, 1.1, 10, 20), "success_rate"),
     ((50, 0.9, -1, 20), "avg_latency_ms"), ((50, 0.9, 10, -1), "requests")],
)
def test_score_rejects_out_of_range_inputs(args, message):
    with pytest.raises(ValueError, match=message):
        AdaptiveScorer().score(*args)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"capability_weight": 0.7}, "capability_weight \\+ success_weight \\+ latency_weight must be 1"),
        ({"capability_weight": 1.1, "success_weight": -0.1}, "success_weight"),
        ({"max_acceptable_ms": 0}, "max_acceptable_ms"),
        ({"latency_ceiling_ms": -5}, "latency_ceiling_ms"),
        ({"success_floor": 0}, "success_floor"),
        ({"min_requests": -1}, "min_requests"),
    ],
)
def test_config_validation_names_the_field(fields, message):
    with pytest.raises(ValidationError, match=message):
        AdaptiveScorerConfig(**fields)


def test_config_defaults():
    cfg = AdaptiveScorerConfig()
    assert (cfg.capability_weight, cfg.success_weight, cfg.latency_weight) == (0.60, 0.25, 0.15)
    thresholds = (cfg.max_acceptable_ms, cfg.success_floor, cfg.latency_ceiling_ms, cfg.min_requests)
    assert thresholds == (500, 0.9, 500, 10)


# --- the strategy -------------------------------------------------------------------------------------


def feed(book, target, n, success_rate, latency_ms):
    for i in range(n):
        success = i < n * success_rate
        book.observe(Outcome(target=target, task_type="t", success=success, duration_ms=latency_ms))


CODING = Task(task_type="t", category=Category.CODING, payload="write a parser")
TARGETS = [Target(name="small"), Target(name="large")]
TABLE = CapabilityTable({("small", Category.CODING): 60, ("large", Category.CODING): 90,
                         ("small", Category.GENERAL): 80, ("large", Category.GENERAL): 70})


def test_strategy_uses_capability_of_the_task_category_before_data():
    strategy = AdaptiveStrategy(TABLE)
    choice = strategy.choose(CODING, TARGETS, StatsBook())
    assert (choice.pick, choice.probability) == ("large", 1.0)
    assert [c.score for c in choice.candidates] == [90, 60]
    general = CODING.model_copy(update={"category": Category.GENERAL})
    assert strategy.choose(general, TARGETS, StatsBook()).pick == "small"
    assert "capability only" in choice.reason


def test_strategy_demotes_a_capable_but_failing_target():
    book = StatsBook()
    feed(book, "large", 50, 0.6, 450)
    feed(book, "small", 50, 1.0, 100)
    choice = AdaptiveStrategy(TABLE).choose(CODING, TARGETS, book)
    assert choice.pick == "small"
    large = next(c for c in choice.candidates if c.target == "large")
    expected = AdaptiveScorer().score(90, 0.6, 450, 50)
    assert large.score == pytest.approx(expected.final)
    assert large.details["adjustment"] == 0.5 and large.details["used_performance_data"] == 1.0
    assert large.details["capability_score"] == 90 and large.samples == 50


def test_strategy_gives_unknown_targets_the_default_capability():
    choice = AdaptiveStrategy(CapabilityTable(), default_capability=42).choose(CODING, TARGETS, StatsBook())
    assert [c.score for c in choice.candidates] == [42, 42]
    assert choice.pick == "small"  # ties keep the default order


def test_strategy_runs_inside_the_router():
    router = Router(TARGETS, strategy=AdaptiveStrategy(TABLE))
    decision = router.choose(CODING)
    assert (decision.strategy, decision.pick, decision.probability) == ("adaptive", "large", 1.0)
    router.observe(Outcome(target="large", task_type="t", success=True, duration_ms=10))
    assert router.book.get("large", "t").n == 1
