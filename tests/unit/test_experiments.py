"""Policies, assignment, the decision rule, the policy engine and routing through experiments."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import numpy as np
import pytest

from routing.errors import ConfigError, UnknownNameError
from routing.experiments.analysis import VariantData, Verdict, analyze, difference_bound
from routing.experiments.assignment import ExperimentConfig, assign, new_experiment
from routing.experiments.engine import (
    EngineConfig,
    OutcomeAggregate,
    PolicyChange,
    PolicyState,
    apply,
    propose,
    rollback,
    snapshot,
    validate,
)
from routing.experiments.live import PolicyRouting, policy_strategy
from routing.experiments.ope import gate
from routing.experiments.policy import parse_policy
from routing.models import Category, Outcome, Target, Task
from routing.router import Router

TARGETS = [Target(name=n) for n in ("small", "mid", "premium")]
NAMES = [t.name for t in TARGETS]


@pytest.mark.parametrize(
    ("spec", "strategy", "options", "order"),
    [
        ("thompson", "thompson", {}, ()),
        ("thompson:discount=0.99", "thompson", {"discount": 0.99}, ()),
        ("weighted:min_samples=20", "weighted", {"min_samples": 20}, ()),
        ("fixed:small,mid", "fixed", {}, ("small", "mid")),
        ("thompson:discount=0.99,willingness_to_pay=0.01", "thompson", {"discount": 0.99, "willingness_to_pay": 0.01}, ()),
    ],
)
def test_policy_specs_parse_build_and_render_back(spec, strategy, options, order) -> None:
    policy = parse_policy(spec)
    assert (policy.strategy, policy.options, policy.order) == (strategy, options, order)
    assert parse_policy(policy.spec) == policy
    assert policy.build(NAMES).name == strategy


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("greedy", "unknown strategy 'greedy'"),
        ("thompson:discount", "not key=value"),
        ("fixed:small,k=1", "lists targets"),
        ("thompson:a=1,a=2", "given twice"),
    ],
)
def test_bad_specs_fail_naming_the_fault(spec, message) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_policy(spec)


def test_unknown_options_and_targets_fail_when_built() -> None:
    with pytest.raises(ConfigError, match="min_sample"):
        parse_policy("weighted:min_sample=20").build(NAMES)
    with pytest.raises(UnknownNameError, match="unknown target 'tiny'"):
        parse_policy("fixed:tiny").build(NAMES)


def test_fixed_order_picks_the_first_eligible_target_with_probability_one() -> None:
    router = Router(TARGETS, parse_policy("fixed:premium,small").build(NAMES), available=lambda n: n != "premium")
    decision = router.choose(Task(task_type="qa", payload="x"))
    assert decision.pick == "small" and decision.probability == 1.0
    assert decision.fallback_order == ["small", "mid"]


def test_assignment_is_deterministic_stratified_and_follows_the_split() -> None:
    experiment = new_experiment("x", parse_policy("thompson"), [parse_policy("fixed:small")], traffic=0.3)
    tasks = [Task(task_type=tt, payload="p") for tt in ("qa", "code") for _ in range(3000)]
    first = [assign(experiment, t).name for t in tasks]
    assert first == [assign(experiment, t).name for t in tasks]
    for tt in ("qa", "code"):
        counts = Counter(name for t, name in zip(tasks, first) if t.task_type == tt)
        assert counts["treatment"] / 3000 == pytest.approx(0.3, abs=0.03)
    session = [Task(task_type="qa", payload="p", session_id="s1") for _ in range(20)]
    assert len({assign(experiment, t).name for t in session}) == 1  # a conversation stays in its variant
    with pytest.raises(ConfigError, match="traffic"):
        new_experiment("x", parse_policy("thompson"), [parse_policy("ucb1")], traffic=1.0)


def _variant(name: str, n: int, rate: float, cost: float, rng, errors: float = 0.01) -> VariantData:
    return VariantData(name, (rng.random(n) < rate).astype(float), rng.gamma(4, cost / 4, n), rng.lognormal(4, 0.3, n),
                       (rng.random(n) < errors).astype(float), np.full(n, np.nan), np.full(n, np.nan))  # fmt: skip


CONFIG = ExperimentConfig(min_samples=100)


def test_a_worse_treatment_is_rolled_back_and_a_better_one_shipped() -> None:
    rng = np.random.default_rng(1)
    control = _variant("control", 300, 0.85, 0.001, rng)
    worse = analyze([control, _variant("treatment", 300, 0.55, 0.0005, rng)], [0.5, 0.5], CONFIG)
    assert worse.decision is Verdict.ROLLBACK and worse.winner == "control" and "worse on success" in worse.reason
    better = analyze([control, _variant("treatment", 300, 0.97, 0.001, rng)], [0.5, 0.5], CONFIG)
    assert better.decision is Verdict.SHIP_TREATMENT and better.winner == "treatment"
    assert better.pvalue < 0.05 and better.variants[1].p_best > 0.99


def test_identical_variants_reach_no_verdict_and_a_guardrail_can_roll_back_on_its_own() -> None:
    rng = np.random.default_rng(2)
    same = analyze([_variant("control", 200, 0.9, 0.001, rng), _variant("treatment", 200, 0.9, 0.001, rng)], [0.5, 0.5], CONFIG)
    assert same.decision is Verdict.CONTINUE
    pricey = analyze([_variant("control", 200, 0.9, 0.001, rng), _variant("treatment", 200, 0.9, 0.004, rng)], [0.5, 0.5], CONFIG)
    assert pricey.decision is Verdict.ROLLBACK and "guardrail cost" in pricey.reason
    erring = analyze([_variant("control", 200, 0.9, 0.001, rng), _variant("treatment", 200, 0.9, 0.001, rng, errors=0.3)],
                     [0.5, 0.5], CONFIG)  # fmt: skip
    assert erring.decision is Verdict.ROLLBACK and "error_rate" in erring.reason


def test_futility_keep_control_and_srm() -> None:
    rng = np.random.default_rng(3)
    big = ExperimentConfig(min_samples=100, mde=0.05)
    flat = analyze([_variant("control", 20000, 0.9, 0.001, rng), _variant("treatment", 20000, 0.9, 0.001, rng)], [0.5, 0.5], big)
    assert flat.decision is Verdict.FUTILE
    capped = ExperimentConfig(min_samples=100, max_samples=200)
    horizon = analyze([_variant("control", 200, 0.9, 0.001, rng), _variant("treatment", 200, 0.9, 0.001, rng)], [0.5, 0.5], capped)
    assert horizon.decision is Verdict.KEEP_CONTROL
    skewed = analyze([_variant("control", 900, 0.85, 0.001, rng), _variant("treatment", 1100, 0.5, 0.001, rng)], [0.5, 0.5], CONFIG)
    assert skewed.srm and skewed.srm_pvalue < 0.001 and skewed.decision is Verdict.CONTINUE


@pytest.mark.slow
def test_aa_false_positive_rate_with_twenty_peeks_stays_under_alpha() -> None:
    """400 A/A experiments, each peeked at 20 times: the always-valid bound crosses 0 in at most 5 %,
    where a t test re-run at each peek crosses far more often."""
    rng = np.random.default_rng(11)
    peeks = np.linspace(50, 1000, 20).astype(int)
    sequential = naive = 0
    for _ in range(400):
        a, b = (rng.random(1000) < 0.8).astype(float), (rng.random(1000) < 0.8).astype(float)
        hits = [difference_bound("success", b[:n], a[:n], 0.05, 0.25, binary=True) for n in peeks]
        sequential += any(h.low > 0 or h.high < 0 for h in hits)
        from scipy.stats import ttest_ind

        naive += any(ttest_ind(b[:n], a[:n]).pvalue < 0.05 for n in peeks)
    assert sequential / 400 <= 0.05
    assert naive / 400 > 0.1


def test_engine_validates_bounds_rate_limit_and_approval() -> None:
    config = EngineConfig()
    state = PolicyState(policies={"*": parse_policy("thompson")})
    small = PolicyChange(old=state.policies["*"], new=parse_policy("thompson:discount=0.99"), reason="drift")
    assert validate(state, small, [], config) == []
    out = PolicyChange(old=state.policies["*"], new=parse_policy("thompson:discount=0.5"), reason="x")
    assert any("outside its bounds" in p for p in validate(state, out, [], config))
    switch = PolicyChange(old=state.policies["*"], new=parse_policy("fixed:small"), reason="x")
    assert any("needs approval" in p for p in validate(state, switch, [], config))
    assert validate(state, switch, [], config, approved=True) == []
    recent = [small.model_copy(update={"timestamp": small.timestamp - timedelta(minutes=i)}) for i in range(3)]
    assert any("rate limit" in p for p in validate(state, small, recent, config))
    old = [c.model_copy(update={"timestamp": c.timestamp - timedelta(hours=2)}) for c in recent]
    assert validate(state, small, old, config) == []
    stale = PolicyChange(old=parse_policy("ucb1"), new=parse_policy("thompson:discount=0.99"), reason="x")
    assert any("changed since" in p for p in validate(state, stale, [], config))


def test_engine_applies_snapshots_and_rolls_back() -> None:
    state = PolicyState(policies={"*": parse_policy("thompson")})
    snap = snapshot(state, "before")
    changed = apply(state, PolicyChange(old=state.policies["*"], new=parse_policy("ucb1"), reason="x"))
    assert changed.policies["*"].strategy == "ucb1" and changed.version == 1
    restored = rollback(changed, snap)
    assert restored.policies == state.policies and restored.version == 2


def test_engine_proposes_a_discount_on_drift_and_more_pay_on_rejection() -> None:
    state = PolicyState(policies={"*": parse_policy("thompson:willingness_to_pay=0.01")})
    drift = OutcomeAggregate(task_type="qa", recent_n=200, recent_successes=120, earlier_n=800, earlier_successes=720)
    unhappy = OutcomeAggregate(task_type="code", recent_n=10, recent_successes=9, feedback_n=60, accepted=20)
    calm = OutcomeAggregate(task_type="math", recent_n=200, recent_successes=180, earlier_n=800, earlier_successes=720)
    changes = propose(state, [drift, unhappy, calm], EngineConfig())
    assert [c.new.options for c in changes] == [
        {"willingness_to_pay": 0.01, "discount": 0.99},
        {"willingness_to_pay": 0.02},
    ]
    assert changes[0].confidence > 0.99 and changes[0].evidence_count == 1000


def test_routing_through_an_experiment_tags_decisions_and_keeps_variants_apart() -> None:
    router = Router(TARGETS, parse_policy("thompson").build(NAMES, seed=1))
    experiment = new_experiment("x", parse_policy("fixed:mid"), [parse_policy("fixed:small")], traffic=0.5)
    routing = PolicyRouting(router, [experiment])
    decisions = [routing.choose(Task(task_type="qa", payload="p")) for _ in range(400)]
    by_variant = {d.variant: {e.pick for e in decisions if e.variant == d.variant} for d in decisions}
    assert by_variant == {"control": {"mid"}, "treatment": {"small"}}
    assert {d.experiment_id for d in decisions} == {experiment.id} and all(d.probability == 1 for d in decisions)
    treatment = routing.variant_routers[(experiment.id, "treatment")]
    d = next(d for d in decisions if d.variant == "treatment")
    routing.observe(Outcome(target="small", task_type="qa", success=True, duration_ms=1), d.id)
    assert treatment.book.get("small", "qa").n == 1 and router.book.get("small", "qa").n == 1
    assert routing.variant_routers[(experiment.id, "control")].book.get("small", "qa") is None


def test_a_policy_state_becomes_one_strategy_per_task_type() -> None:
    state = PolicyState(policies={"*": parse_policy("fixed:premium"), "code": parse_policy("fixed:small")})
    router = Router(TARGETS, policy_strategy(state, NAMES, parse_policy("thompson").build(NAMES)))
    assert router.choose(Task(task_type="code", payload="p")).pick == "small"
    assert router.choose(Task(task_type="qa", payload="p")).pick == "premium"


def test_the_off_policy_gate_refuses_a_worse_treatment() -> None:
    rng = np.random.default_rng(5)
    quality = {"small": 0.4, "mid": 0.7, "premium": 0.95}
    rows = []
    for _ in range(1500):  # logged by a uniform random policy
        pick = NAMES[rng.integers(3)]
        rows.append({"task_type": "qa", "category": Category.GENERAL, "pick": pick, "probability": 1 / 3,
                     "success": int(rng.random() < quality[pick]), "cost": 0.001})  # fmt: skip
    refused = gate(parse_policy("fixed:premium"), [parse_policy("fixed:small")], TARGETS, rows)
    assert not refused.passed and "fixed:small" in refused.reason
    small = refused.treatments[0]
    assert small.snips.covers(0.4) and small.doubly_robust.covers(0.4)
    assert refused.control.doubly_robust.covers(0.95)
    passed = gate(parse_policy("fixed:small"), [parse_policy("fixed:premium"), parse_policy("thompson")], TARGETS, rows)
    assert passed.passed
