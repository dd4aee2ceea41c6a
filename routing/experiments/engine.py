"""The policy engine as pure state changes: propose, validate, apply, snapshot, roll back.

The state is the policy in force per scope ("*" for every task type, or one task type) and a version.
Storage (blocks/store/experiments.py) keeps the state, the audit trail and the snapshots; this module
only decides. A change is refused when an option leaves its bounds or when the rate limit is spent
(at most `max_changes` applied changes per `window`); a large change (another strategy, or an option
moved by more than `large_change` of its value) needs approval. Proposals come from aggregated
outcomes and feedback, each with the evidence (counts, a p-value) behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from routing.experiments.policy import Policy
from routing.models import new_id, utcnow
from routing.stats.significance import two_proportion_test

ALL = "*"


class PolicyState(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    policies: dict[str, Policy] = Field(default_factory=dict)
    version: int = 0

    def policy_for(self, task_type: str) -> Policy | None:
        return self.policies.get(task_type) or self.policies.get(ALL)


class PolicyChange(BaseModel):
    """One proposed or applied change, as the audit trail keeps it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=new_id)
    scope: str = ALL
    old: Policy | None = None
    new: Policy | None = None  # None: the scope's policy is removed
    reason: str
    confidence: float | None = Field(default=None, ge=0, le=1)
    evidence_count: int = 0
    applied_by: str = "engine"
    snapshot_id: str | None = None
    timestamp: datetime = Field(default_factory=utcnow)


class Snapshot(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=new_id)
    state: PolicyState
    note: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class EngineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bounds: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: {
            "discount": (0.9, 1.0), "window": (50, 100_000), "min_samples": (5, 10_000),
            "willingness_to_pay": (1e-5, 10.0), "epsilon": (0.0, 0.5), "explore_rate": (0.0, 0.5),
        }
    )  # fmt: skip
    max_changes: int = Field(default=3, ge=1)
    window: timedelta = timedelta(hours=1)
    large_change: float = Field(default=0.5, gt=0, description="Relative move of an option that needs approval.")
    min_evidence: int = Field(default=30, ge=1)


class Refused(BaseModel):
    change: PolicyChange
    problems: list[str]


class OutcomeAggregate(BaseModel):
    """What a task type did under the policy in force: recent vs earlier success, and user acceptance."""

    task_type: str
    recent_n: int = 0
    recent_successes: int = 0
    earlier_n: int = 0
    earlier_successes: int = 0
    feedback_n: int = 0
    accepted: int = 0


def is_large(change: PolicyChange, config: EngineConfig) -> bool:
    """A first policy for a scope or its removal, another strategy or order, or a numeric option moved
    by more than `large_change` of its value; adding or dropping an option (within bounds) is not large."""
    if change.old is None or change.new is None:
        return True
    if change.old.strategy != change.new.strategy or change.old.order != change.new.order:
        return True
    for key in set(change.old.options) & set(change.new.options):
        before, after = change.old.options[key], change.new.options[key]
        if before == after:
            continue
        if not (isinstance(before, int | float) and isinstance(after, int | float)) or before == 0:
            return True
        if abs(after - before) / abs(before) > config.large_change:
            return True
    return False


def validate(
    state: PolicyState, change: PolicyChange, history: Sequence[PolicyChange], config: EngineConfig,
    now: datetime | None = None, approved: bool = False,
) -> list[str]:  # fmt: skip
    """Why `change` may not be applied now (empty: it may)."""
    now = now or utcnow()
    problems = []
    if change.old != state.policies.get(change.scope):
        problems.append(f"scope {change.scope!r} changed since this was proposed (version {state.version})")
    for key, value in (change.new.options.items() if change.new else ()):
        if key in config.bounds and isinstance(value, int | float) and not isinstance(value, bool):
            low, high = config.bounds[key]
            if not low <= value <= high:
                problems.append(f"{key}={value} is outside its bounds [{low:g}, {high:g}]")
    recent = [c for c in history if now - c.timestamp < config.window]
    if len(recent) >= config.max_changes:
        problems.append(f"rate limit: {len(recent)} changes in the last {config.window}, at most {config.max_changes}")
    if is_large(change, config) and not approved:
        problems.append("a large change (another strategy, or an option moved by more than "
                        f"{config.large_change:.0%}) needs approval")  # fmt: skip
    return problems


def apply(state: PolicyState, change: PolicyChange) -> PolicyState:
    policies = dict(state.policies)
    if change.new is None:
        policies.pop(change.scope, None)
    else:
        policies[change.scope] = change.new
    return PolicyState(policies=policies, version=state.version + 1)


def snapshot(state: PolicyState, note: str = "") -> Snapshot:
    return Snapshot(state=state, note=note)


def rollback(current: PolicyState, to: Snapshot) -> PolicyState:
    """The snapshot's policies, as a new version (history only moves forward)."""
    return PolicyState(policies=dict(to.state.policies), version=current.version + 1)


def propose(state: PolicyState, aggregates: Sequence[OutcomeAggregate], config: EngineConfig) -> list[PolicyChange]:
    """Adjustments the evidence supports:

    - success fell significantly (two-proportion test, p < 0.01) between the earlier and the recent
      window under a bandit without drift handling: discount old evidence (discount=0.99);
    - users accept under half of the answers (with enough feedback) under a cost-aware bandit: double
      the willingness to pay, so quality weighs more than price.
    """
    changes = []
    for agg in aggregates:
        policy = state.policy_for(agg.task_type)
        if policy is None or policy.strategy not in ("thompson", "epsilon_greedy", "ucb1", "gaussian_thompson"):
            continue
        scope = agg.task_type if agg.task_type in state.policies else ALL
        if min(agg.recent_n, agg.earlier_n) >= config.min_evidence and "discount" not in policy.options and "window" not in policy.options:
            test = two_proportion_test(agg.recent_successes, agg.recent_n, agg.earlier_successes, agg.earlier_n)
            if test.statistic < 0 and test.pvalue < 0.01:
                new = policy.model_copy(update={"options": {**policy.options, "discount": 0.99}})
                changes.append(PolicyChange(
                    scope=scope, old=policy, new=new, confidence=1 - test.pvalue, evidence_count=agg.recent_n + agg.earlier_n,
                    reason=f"{agg.task_type}: success fell from {agg.earlier_successes / agg.earlier_n:.2f} to "
                    f"{agg.recent_successes / agg.recent_n:.2f} (p={test.pvalue:.2g}); discount old evidence",
                ))  # fmt: skip
                continue
        wtp = policy.options.get("willingness_to_pay")
        if agg.feedback_n >= config.min_evidence and isinstance(wtp, int | float) and agg.accepted / agg.feedback_n < 0.5:
            share = agg.accepted / agg.feedback_n
            new = policy.model_copy(update={"options": {**policy.options, "willingness_to_pay": wtp * 2}})
            changes.append(PolicyChange(
                scope=scope, old=policy, new=new, confidence=1 - share, evidence_count=agg.feedback_n,
                reason=f"{agg.task_type}: users accepted {share:.0%} of {agg.feedback_n} answers; pay more for quality",
            ))  # fmt: skip
    return changes
