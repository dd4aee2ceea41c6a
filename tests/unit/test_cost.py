import pytest

from routing.models import Price, Target, TargetKind, Task
from routing.spend.cost import (
    CLOUD_PRICES,
    DEFAULT_OUTPUT_TOKENS,
    DEFAULT_SECONDS,
    UsageAverages,
    actual_cost,
    default_price,
    estimate_cost,
    usd,
)

TASK = Task(task_type="qa", payload="x" * 4000)  # 1000 estimated tokens


def cloud(kind: TargetKind) -> Target:
    return Target(name=f"cloud-{kind.value}", kind=kind, price=default_price(kind, cloud=True))


@pytest.mark.parametrize(
    ("kind", "seconds", "expected"),
    [
        (TargetKind.PREFECT_DEPLOYMENT, 30.0, 30 * 0.0001),  # $0.0001 per workflow second
        (TargetKind.AGNO, 12.5, 12.5 * 0.0002),  # $0.0002 per agent second
        (TargetKind.LLAMAINDEX, 99.0, 0.00005),  # $0.00005 per query, whatever it takes
    ],
)
def test_cloud_presets_charge_per_second_or_per_query(kind, seconds, expected):
    assert estimate_cost(cloud(kind), TASK, expected_seconds=seconds) == pytest.approx(expected)
    assert actual_cost(cloud(kind), 5000, 800, seconds) == pytest.approx(expected)


def test_cloud_http_charges_per_input_and_output_token():
    # 1000 input tokens at $0.0005/1k plus 400 output tokens at $0.0015/1k.
    target = cloud(TargetKind.HTTP)
    assert estimate_cost(target, TASK, expected_output_tokens=400) == pytest.approx(0.0005 + 0.0006)
    assert actual_cost(target, 2000, 1000, 3.0) == pytest.approx(0.001 + 0.0015)


@pytest.mark.parametrize("kind", list(TargetKind))
def test_local_targets_are_free(kind):
    assert default_price(kind, cloud=False) == Price()
    local = Target(name="local", kind=kind)
    assert estimate_cost(local, TASK, 10_000, 3600) == 0.0
    assert actual_cost(local, 10_000, 10_000, 3600) == 0.0


def test_every_kind_has_a_cloud_preset():
    assert set(CLOUD_PRICES) == set(TargetKind)


def test_estimate_uses_documented_defaults_without_averages():
    target = Target(name="t", price=Price(output_per_1k_tokens=1.0, per_second=1.0))
    assert estimate_cost(target, TASK) == pytest.approx(DEFAULT_OUTPUT_TOKENS / 1000 + DEFAULT_SECONDS)


def test_usage_averages_feed_the_estimate():
    target = Target(name="t", price=Price(input_per_1k_tokens=1.0, output_per_1k_tokens=2.0, per_second=0.5))
    averages = UsageAverages()
    assert averages.estimate(target, TASK) == estimate_cost(target, TASK)
    averages.observe("t", "qa", output_tokens=100, seconds=2.0)
    averages.observe("t", "qa", output_tokens=300, seconds=4.0)
    averages.observe("t", "other", output_tokens=10_000, seconds=100.0)
    # means 200 tokens and 3 s: 1.0 (input) + 0.4 (output) + 1.5 (time)
    assert averages.estimate(target, TASK) == pytest.approx(2.9)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda t: estimate_cost(t, TASK, expected_output_tokens=-1), "expected_output_tokens"),
        (lambda t: estimate_cost(t, TASK, expected_seconds=float("nan")), "expected_seconds"),
        (lambda t: actual_cost(t, -5, 0, 0.0), "input_tokens"),
        (lambda t: actual_cost(t, 0, 0, float("inf")), "seconds"),
    ],
)
def test_bad_amounts_name_the_argument(call, field):
    with pytest.raises(ValueError, match=field):
        call(cloud(TargetKind.HTTP))


@pytest.mark.parametrize(
    ("amount", "text"),
    [(0.002, "$0.002"), (0.0025, "$0.0025"), (0.00005, "$0.00005"), (1234.5, "$1,234.50"), (0, "$0")],
)
def test_usd_formatting(amount, text):
    assert usd(amount) == text
