"""The off-policy gate: what a policy would have earned on the decisions already logged.

Each logged decision is (context = (task type, category), the pick, its propensity, the pick's reward).
A candidate policy is warmed on the same logged outcomes (as it would have learned them) and asked for
its probability of each target per context: exactly, from a strategy's `distribution` where it has
one, else from `draws` of its choice (one suffices for a deterministic policy). SNIPS and doubly
robust estimates (routing.evaluation.offpolicy) then give its value with an interval; the gate refuses
a treatment whose lower bound is below the control's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from pydantic import BaseModel

from routing.evaluation.offpolicy import Estimate, Logged, doubly_robust, snips
from routing.experiments.policy import Policy
from routing.models import Category, Outcome, Target, Task
from routing.router import Router


class OpeResult(BaseModel):
    policy: str
    snips: Estimate
    doubly_robust: Estimate


class GateResult(BaseModel):
    control: OpeResult
    treatments: list[OpeResult]
    passed: bool
    reason: str


def logs_from_rows(rows: Sequence[Mapping[str, object]], metric: str = "success", willingness_to_pay: float = 0.01) -> list[Logged]:
    def reward(row: Mapping[str, object]) -> float:
        success = float(row["success"])
        return success if metric == "success" else willingness_to_pay * success - float(row["cost"] or 0.0)

    return [Logged((str(r["task_type"]), str(r["category"] or Category.GENERAL)), str(r["pick"]), reward(r), float(r["probability"]))
            for r in rows]  # fmt: skip


def policy_probabilities(
    policy: Policy, targets: Sequence[Target], logs: Sequence[Logged], rows: Sequence[Mapping[str, object]],
    draws: int = 200, seed: int = 0,
) -> dict[tuple[str, str], dict[str, float]]:  # fmt: skip
    """π(target | context) for every logged context, after the policy has learned from the logged outcomes."""
    names = [t.name for t in targets]
    router = Router(list(targets), policy.build(names, seed))
    for row in rows:
        if row["pick"] in router.targets:
            router.observe(Outcome(target=str(row["pick"]), task_type=str(row["task_type"]),
                                   category=row["category"] or Category.GENERAL, success=bool(row["success"]),
                                   duration_ms=0.0, cost=float(row["cost"] or 0.0)))  # fmt: skip
    table = {}
    for context in sorted({log.context for log in logs}):
        task = Task(task_type=context[0], category=context[1], payload="off-policy evaluation")
        distribution = getattr(router.strategy, "distribution", None)
        if distribution is not None:
            table[context] = dict(distribution(task, router.eligible(task), router.book))
            continue
        first = router.choose(task)
        if first.probability >= 1.0:
            table[context] = {first.pick: 1.0}
            continue
        picks = Counter(router.choose(task).pick for _ in range(draws))
        table[context] = {name: count / draws for name, count in picks.items()}
    return table


def evaluate(policy: Policy, targets: Sequence[Target], rows: Sequence[Mapping[str, object]], metric: str = "success",
             willingness_to_pay: float = 0.01, confidence: float = 0.95) -> OpeResult:  # fmt: skip
    logs = logs_from_rows(rows, metric, willingness_to_pay)
    table = policy_probabilities(policy, targets, logs, rows)

    def pi(context, action: str) -> float:
        return table.get(context, {}).get(action, 0.0)

    names = [t.name for t in targets]
    return OpeResult(policy=policy.spec, snips=snips(logs, pi, confidence),
                     doubly_robust=doubly_robust(logs, pi, names, confidence=confidence))  # fmt: skip


def gate(control: Policy, treatments: Sequence[Policy], targets: Sequence[Target], rows: Sequence[Mapping[str, object]],
         metric: str = "success", willingness_to_pay: float = 0.01) -> GateResult:  # fmt: skip
    """Every treatment's doubly robust lower bound must reach the control's."""
    if not rows:
        raise ValueError("no logged decisions to evaluate policies on; route some traffic first")
    base = evaluate(control, targets, rows, metric, willingness_to_pay)
    results = [evaluate(t, targets, rows, metric, willingness_to_pay) for t in treatments]
    below = [r for r in results if r.doubly_robust.ci_low < base.doubly_robust.ci_low]
    if below:
        worst = below[0]
        reason = (f"{worst.policy}: doubly robust lower bound {worst.doubly_robust.ci_low:.4g} is below control "
                  f"{control.spec}'s {base.doubly_robust.ci_low:.4g}")  # fmt: skip
    else:
        reason = "every treatment's doubly robust lower bound reaches the control's"
    return GateResult(control=base, treatments=results, passed=not below, reason=reason)
