"""Capability scores from benchmark results: weights, normalisation, round trip, validation."""

import json

import pytest
from pydantic import ValidationError

from routing.evaluation.capability import DEFAULT_WEIGHTS, BenchmarkResult, CapabilityTable, CategoryWeights
from routing.models import Category


def result(target, category, quality, duration_ms, cost=0.0, case_id="c1"):
    return BenchmarkResult(
        target=target, category=category, case_id=case_id, quality=quality, duration_ms=duration_ms, cost=cost
    )


def test_every_category_has_default_weights_summing_to_one():
    assert set(DEFAULT_WEIGHTS) == set(Category)
    for weights in DEFAULT_WEIGHTS.values():
        assert weights.quality + weights.speed + weights.cost == pytest.approx(1.0)
    assert DEFAULT_WEIGHTS[Category.CODING].quality > DEFAULT_WEIGHTS[Category.GENERAL].quality
    assert DEFAULT_WEIGHTS[Category.GENERAL].speed > DEFAULT_WEIGHTS[Category.CODING].speed


def test_score_combines_mean_quality_with_speed_and_cost_relative_to_best():
    results = [
        result("fast", Category.CODING, 60, 100, cost=0.01, case_id="a"),
        result("fast", Category.CODING, 80, 100, cost=0.01, case_id="b"),
        result("slow", Category.CODING, 90, 400, cost=0.04),
    ]
    table = CapabilityTable.from_results(results)
    w = DEFAULT_WEIGHTS[Category.CODING]
    # fast: quality 70, fastest and cheapest -> 100 each; slow: 4x slower and 4x dearer -> 25 each.
    assert table.get("fast", Category.CODING) == pytest.approx(70 * w.quality + 100 * w.speed + 100 * w.cost)
    assert table.get("slow", Category.CODING) == pytest.approx(90 * w.quality + 25 * w.speed + 25 * w.cost)


def test_weights_change_the_winner_by_category():
    cases = [("accurate", 95, 2000), ("quick", 70, 200)]
    results = [result(t, c, q, d) for c in (Category.CODING, Category.GENERAL) for t, q, d in cases]
    table = CapabilityTable.from_results(results)
    assert table.get("accurate", Category.CODING) > table.get("quick", Category.CODING)
    assert table.get("quick", Category.GENERAL) > table.get("accurate", Category.GENERAL)


def test_categories_are_normalised_separately():
    table = CapabilityTable.from_results(
        [result("a", Category.MATH, 50, 1000), result("b", Category.LANGUAGE, 50, 10)]
    )
    # Each is the fastest (and cheapest) in its own category.
    for target, category in (("a", Category.MATH), ("b", Category.LANGUAGE)):
        w = DEFAULT_WEIGHTS[category]
        assert table.get(target, category) == pytest.approx(50 * w.quality + 100 * (w.speed + w.cost))


def test_a_free_target_scores_full_on_cost_and_paid_ones_zero():
    table = CapabilityTable.from_results(
        [
            result("local", Category.GENERAL, 50, 100, cost=0.0),
            result("cloud", Category.GENERAL, 50, 100, cost=0.1),
        ]
    )
    w = DEFAULT_WEIGHTS[Category.GENERAL]
    gap = table.get("local", Category.GENERAL) - table.get("cloud", Category.GENERAL)
    assert gap == pytest.approx(100 * w.cost)


def test_custom_weights_override_one_category():
    quality_only = {Category.GENERAL: CategoryWeights(quality=1.0, speed=0.0, cost=0.0)}
    results = [result("a", Category.GENERAL, 42, 900, 0.5), result("b", Category.GENERAL, 10, 1, 0.0)]
    table = CapabilityTable.from_results(results, weights=quality_only)
    assert table.get("a", Category.GENERAL) == pytest.approx(42)
    assert table.get("b", Category.GENERAL) == pytest.approx(10)


def test_unknown_pairs_fall_back_to_default():
    table = CapabilityTable.from_results([result("a", Category.MATH, 80, 10)])
    assert table.get("a", Category.CODING) == 50.0
    assert table.get("nobody", Category.MATH, default=12.5) == 12.5


def test_dict_round_trip_through_json():
    cases = (("a", 80, 10), ("b", 60, 20))
    results = [result(t, c, q, d) for t, q, d in cases for c in (Category.MATH, Category.CODING)]
    table = CapabilityTable.from_results(results)
    data = json.loads(json.dumps(table.to_dict()))
    assert set(data) == {"a", "b"} and set(data["a"]) == {"math", "coding"}
    assert CapabilityTable.from_dict(data) == table


def test_from_dict_rejects_unknown_category_and_out_of_range_scores():
    with pytest.raises(ValueError, match="'astrology' is not a valid Category"):
        CapabilityTable.from_dict({"a": {"astrology": 10}})
    with pytest.raises(ValueError, match=r"a/math must be in \[0, 100\], got 120"):
        CapabilityTable.from_dict({"a": {"math": 120}})


def test_weights_must_sum_to_one_and_be_non_negative():
    with pytest.raises(ValidationError, match="quality \\+ speed \\+ cost must be 1"):
        CategoryWeights(quality=0.5, speed=0.2, cost=0.2)
    with pytest.raises(ValidationError, match="speed"):
        CategoryWeights(quality=1.2, speed=-0.2, cost=0.0)


@pytest.mark.parametrize(
    ("field", "value"),
    [("quality", 101), ("quality", -1), ("duration_ms", -5), ("cost", -0.1), ("case_id", "")],
)
def test_benchmark_result_validates_fields(field, value):
    fields = dict(target="a", category="math", case_id="c", quality=50, duration_ms=1, cost=0)
    with pytest.raises(ValidationError, match=field):
        BenchmarkResult(**{**fields, field: value})


def test_benchmark_result_json_round_trip():
    r = result("a", Category.RESEARCH, 77.5, 1234, 0.002)
    assert BenchmarkResult.model_validate_json(r.model_dump_json()) == r
