"""Multi-objective choice of a target: success, cost and p95 latency under per-call constraints.

The score of a target for one decision:

    score = w_success * success_rate + w_cost * cost_score + w_latency * latency_score
    cost_score    = 1 - cost / (the dearest candidate's cost)    (1 for every target if all are free)
    latency_score = 1 - p95 / (the slowest candidate's p95)      (1 for every target if all p95 are 0)

Normalised this way cheaper is better, and a target at half the dearest price scores 0.5: differences stay
proportional, where min-max scaling would stretch a $0.0001 gap between two $0.002 targets across the
whole range. The score is also linear in the metrics, so a traffic mix scores the share-weighted mean of
its targets' scores, and the same objective drives the linear program of `optimal_split`.

When no single target meets a task's constraints a mix may: expected cost and expected success are
share-weighted means, so the cost cap and success floor become linear constraints, met on average over
the traffic rather than by every call. A p95 does not average, but a mix's p95 is at most its slowest
member's (P(L > m) = sum_i x_i P(L_i > m) <= 0.05 for m the largest member p95), so the latency SLA is
enforced per target by leaving slow targets out of the mix.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from routing.errors import NoEligibleTargetError, RoutingError, UnknownTargetError
from routing.models import Constraints
from routing.spend.cost import check_amount, usd
from routing.strategies.objectives import TIE_BREAK, Objective, StrategyWeights
from routing.strategies.pareto import TargetPerformance, dominates, pareto_frontier
from routing.validation import repeated

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Split:
    """Traffic shares (positive, summing to 1) and what the mix is expected to deliver."""

    shares: Mapping[str, float]
    expected_success: float
    expected_cost: float
    p95_latency_ms: float  # an upper bound: the slowest member's p95
    score: float

    def __str__(self) -> str:
        return " / ".join(f"{pct(share)} {name}" for name, share in self.shares.items())


@dataclass(frozen=True)
class Selection:
    """One target (`target`), or a `split` when only a mix meets the constraints; `reasoning` says why."""

    target: str | None
    split: Split | None
    reasoning: str
    scores: Mapping[str, float]

    def sample(self, rng: random.Random) -> tuple[str, float]:
        """The target to call and the probability it had of being picked (its propensity)."""
        if self.split is None:
            return self.target, 1.0
        names = list(self.split.shares)
        pick = rng.choices(names, weights=[self.split.shares[n] for n in names])[0]
        return pick, self.split.shares[pick]


@dataclass(frozen=True)
class ConstraintFailure:
    """A constraint (or pair) nothing can meet: the best any target or mix achieves against the limit."""

    constraints: tuple[str, ...]
    best: float
    limit: float
    message: str

    @property
    def gap(self) -> float:
        return abs(self.best - self.limit)


class InfeasibleConstraintsError(NoEligibleTargetError):
    """No target and no traffic split meets the task's constraints; `failures` says which and by how much."""

    def __init__(self, failures: Sequence[ConstraintFailure]) -> None:
        self.failures = tuple(failures)
        detail = "; ".join(f.message for f in self.failures)
        super().__init__(f"no target or traffic split meets the constraints: {detail}")

    @property
    def constraints(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(name for f in self.failures for name in f.constraints))


def pct(x: float) -> str:
    return f"{x * 100:.3g}%"


def _ms(x: float) -> str:
    return f"{x:,.0f} ms"


def _describe(p: TargetPerformance) -> str:
    return f"{pct(p.success_rate)} success, {usd(p.cost)} per call, p95 {_ms(p.p95_latency_ms)}"


def _check_perfs(perfs: Sequence[TargetPerformance]) -> None:
    if not perfs:
        raise ValueError("perfs must name at least one target")
    if duplicates := repeated(p.target for p in perfs):
        raise ValueError(f"perfs name a target more than once: {', '.join(duplicates)}")


def scores(perfs: Sequence[TargetPerformance], weights: StrategyWeights) -> dict[str, float]:
    """Each target's score (see the module docstring), normalised over `perfs`."""
    _check_perfs(perfs)
    dearest = max(p.cost for p in perfs)
    slowest = max(p.p95_latency_ms for p in perfs)

    def relative(value: float, top: float) -> float:
        return 1.0 - value / top if top > 0 else 1.0

    return {
        p.target: weights.success * p.success_rate
        + weights.cost * relative(p.cost, dearest)
        + weights.latency * relative(p.p95_latency_ms, slowest)
        for p in perfs
    }


def _misses(p: TargetPerformance, c: Constraints) -> list[str]:
    """The constraints `p` fails on its own, in words."""
    out = []
    if c.min_success_rate is not None and p.success_rate < c.min_success_rate:
        out.append(f"misses the {pct(c.min_success_rate)} success floor")
    if c.max_cost is not None and p.cost > c.max_cost:
        out.append(f"exceeds the {usd(c.max_cost)} cost cap")
    if c.max_latency_ms is not None and p.p95_latency_ms > c.max_latency_ms:
        out.append(f"exceeds the {_ms(c.max_latency_ms)} p95 SLA")
    return out


def _solve(pool: Sequence[TargetPerformance], minimise: np.ndarray, c: Constraints) -> Any:
    """linprog over the shares of `pool` with the mean-cost cap and mean-success floor of `c`.

    numpy and scipy.optimize are imported where the solver is used, not with the module: `stats` on
    the command line needs only `savings_hints`, and importing them would take much of its start."""
    from scipy.optimize import linprog

    rows, limits = [], []
    if c.max_cost is not None:
        scale = max(p.cost for p in pool) or 1.0  # keeps HiGHS's absolute tolerances relative to prices
        rows.append([p.cost / scale for p in pool])
        limits.append(c.max_cost / scale)
    if c.min_success_rate is not None:
        rows.append([-p.success_rate for p in pool])
        limits.append(-c.min_success_rate)
    return linprog(
        minimise,
        A_ub=rows or None,
        b_ub=limits or None,
        A_eq=[[1.0] * len(pool)],
        b_eq=[1.0],
        bounds=(0, 1),
        method="highs",
        options={"primal_feasibility_tolerance": 1e-10},
    )


def _diagnose(perfs: Sequence[TargetPerformance], c: Constraints) -> InfeasibleConstraintsError:
    """Name the constraints nothing meets, each with the best achievable figure; else the joint one."""
    failures = []
    pool = list(perfs)
    if (sla := c.max_latency_ms) is not None:
        fastest = min(p.p95_latency_ms for p in perfs)
        if fastest > sla:
            why = f"the fastest p95 is {_ms(fastest)}, {_ms(fastest - sla)} over the {_ms(sla)} SLA"
            failures.append(ConstraintFailure(("max_latency_ms",), fastest, sla, f"max_latency_ms: {why}"))
        else:
            pool = [p for p in perfs if p.p95_latency_ms <= sla]
    if (floor := c.min_success_rate) is not None:
        best = max(p.success_rate for p in pool)
        if best < floor:
            why = f"the best is {pct(best)}, {(floor - best) * 100:.3g} points below the {pct(floor)} floor"
            failures.append(ConstraintFailure(("min_success_rate",), best, floor, f"min_success_rate: {why}"))
    if (cap := c.max_cost) is not None:
        cheapest = min(p.cost for p in pool)
        if cheapest > cap:
            why = f"the cheapest call costs {usd(cheapest)}, {usd(cheapest - cap)} over the {usd(cap)} cap"
            failures.append(ConstraintFailure(("max_cost",), cheapest, cap, f"max_cost: {why}"))
    if not failures:  # each is met alone; only the cost cap and the success floor can clash, so both are set
        import numpy as np

        costs = np.array([p.cost for p in pool])
        least = float(_solve(pool, costs, Constraints(min_success_rate=floor)).fun)
        why = (
            f"max_cost with min_success_rate: reaching the {pct(floor)} success floor costs at least "
            f"{usd(least)} per call, {usd(least - cap)} over the {usd(cap)} cap"
        )
        failures.append(ConstraintFailure(("max_cost", "min_success_rate"), least, cap, why))
    return InfeasibleConstraintsError(failures)


def optimal_split(
    perfs: Sequence[TargetPerformance],
    constraints: Constraints = Constraints(),
    objective: Objective = Objective(),
) -> Split:
    """The traffic shares that maximise the expected score while meeting `constraints` on average.

    Raises `InfeasibleConstraintsError` when no mix can meet them.
    """
    import numpy as np

    score = scores(perfs, objective.weights)
    c = constraints
    pool = [p for p in perfs if c.max_latency_ms is None or p.p95_latency_ms <= c.max_latency_ms]
    if not pool:
        raise _diagnose(perfs, c)
    result = _solve(pool, -np.array([score[p.target] for p in pool]), c)
    if result.status == 2:
        raise _diagnose(perfs, c)
    if result.status != 0:
        raise RoutingError(f"linprog could not solve the traffic split: {result.message}")
    x = np.where(result.x > 1e-9, result.x, 0.0)
    x /= x.sum()
    used = [(p, share) for p, share in zip(pool, x) if share > 0]
    return Split(
        shares=MappingProxyType({p.target: float(share) for p, share in used}),
        expected_success=float(sum(p.success_rate * share for p, share in used)),
        expected_cost=float(sum(p.cost * share for p, share in used)),
        p95_latency_ms=max(p.p95_latency_ms for p, _ in used),
        score=float(sum(score[p.target] * share for p, share in used)),
    )


def _compare(
    other: TargetPerformance, best: TargetPerformance, c: Constraints, score: Mapping[str, float]
) -> str:
    """Why `other` lost to `best`, in words."""
    edges = [
        word
        for better, word in (
            (other.cost < best.cost, "cheaper"),
            (other.p95_latency_ms < best.p95_latency_ms, "faster"),
            (other.success_rate > best.success_rate, "more reliable"),
        )
        if better
    ]
    edge = f"is {' and '.join(edges)} but " if edges else ""
    misses = _misses(other, c)
    if misses:
        return f"{other.target} {edge}{' and '.join(misses)}"
    if not edges:
        return f"{other.target} is " + ("dominated" if dominates(best, other) else "tied on every metric")
    return f"{other.target} {edge}scores {score[other.target]:.3f} against {score[best.target]:.3f}"


def get_optimal_target(
    perfs: Sequence[TargetPerformance],
    constraints: Constraints = Constraints(),
    objective: Objective = Objective(),
) -> Selection:
    """The best-scoring target on the Pareto frontier of those meeting every constraint.

    Equal scores go to the better value of the priority's first metric, then to the earlier target in
    `perfs` (the default order). If no single target meets every constraint, the `optimal_split` is
    returned instead (`target` is None); if no mix does either, `InfeasibleConstraintsError` is raised.
    """
    score = MappingProxyType(scores(perfs, objective.weights))  # read-only: selections are cached
    feasible = [p for p in perfs if not _misses(p, constraints)]
    if not feasible:
        split = optimal_split(perfs, constraints, objective)
        why = "; ".join(f"{p.target} {' and '.join(_misses(p, constraints))}" for p in perfs)
        reasoning = (
            f"no single target meets every constraint ({why}); split {split}: expected "
            f"{pct(split.expected_success)} success, {usd(split.expected_cost)} per call, "
            f"p95 at most {_ms(split.p95_latency_ms)}"
        )
        return Selection(None, split, reasoning, score)
    first = TIE_BREAK[objective.priority]
    first_value = {
        "success": lambda p: p.success_rate,
        "cost": lambda p: -p.cost,
        "latency": lambda p: -p.p95_latency_ms,
    }[first]
    best = max(pareto_frontier(feasible), key=lambda p: (score[p.target], first_value(p)))
    others = sorted((p for p in perfs if p is not best), key=lambda p: score[p.target], reverse=True)
    clauses = [f"chose {best.target}: {_describe(best)}"]
    clauses += [_compare(p, best, constraints, score) for p in others]
    return Selection(best.target, None, "; ".join(clauses), score)


@dataclass(frozen=True)
class SavingsHint:
    """Moving all traffic from `current` to the cheaper `alternative`: what it saves and what it costs."""

    current: str
    alternative: str
    dollars_per_hour: float
    minutes_per_hour: float  # extra p95 latency x calls per hour, in minutes (negative if faster)
    success_points: float  # success percentage points lost (negative if gained)
    cheaper_share: float = 0.0  # 1 - alternative's cost per call / current's
    p95_delta_ms: float = 0.0  # alternative's p95 - current's (negative if faster)
    calls: int | None = None  # the smaller of the two targets' call counts: the evidence behind it

    def __str__(self) -> str:
        slower = "slower" if self.p95_delta_ms >= 0 else "faster"
        less = "less" if self.success_points >= 0 else "more"
        evidence = f", from {self.calls} calls" if self.calls is not None else ""
        return (
            f"{self.alternative} instead of {self.current}: {self.cheaper_share:.0%} cheaper "
            f"(saves {usd(self.dollars_per_hour)} an hour), {abs(self.p95_delta_ms) / 1000:.1f} s {slower} at p95, "
            f"{abs(self.success_points):.0f} points {less} success{evidence}"
        )


def savings_hints(
    perfs: Sequence[TargetPerformance],
    calls_per_hour: float,
    current: str | None = None,
    max_success_drop: float = 0.02,
    max_latency_increase: float = 0.25,
    calls: Mapping[str, int] | None = None,
    min_saving: float = 0.01,
) -> list[SavingsHint]:
    """Cheaper targets only slightly worse than `current` (or than any target if None), most saved first.

    An alternative qualifies if it is cheaper by at least `min_saving` (a fraction: two targets at the
    same price differ in their mean cost by rounding, which is no saving), loses at most `max_success_drop` of success rate
    (0.02 = 2 points) and adds at most `max_latency_increase` (a fraction of the current p95) to the p95.
    `calls` (per target) says how much evidence each hint rests on.
    """
    _check_perfs(perfs)
    check_amount("calls_per_hour", calls_per_hour)
    check_amount("max_success_drop", max_success_drop)
    check_amount("max_latency_increase", max_latency_increase)
    check_amount("min_saving", min_saving)
    if current is not None and current not in {p.target for p in perfs}:
        raise UnknownTargetError(current, [p.target for p in perfs])
    hints = [
        SavingsHint(
            current=a.target,
            alternative=b.target,
            dollars_per_hour=(a.cost - b.cost) * calls_per_hour,
            minutes_per_hour=(b.p95_latency_ms - a.p95_latency_ms) * calls_per_hour / 60_000,
            success_points=(a.success_rate - b.success_rate) * 100,
            cheaper_share=1 - b.cost / a.cost,
            p95_delta_ms=b.p95_latency_ms - a.p95_latency_ms,
            calls=min(calls[a.target], calls[b.target]) if calls else None,
        )
        for a in perfs
        if current in (None, a.target)
        for b in perfs
        if b.cost < a.cost * (1 - min_saving)
        and a.success_rate - b.success_rate <= max_success_drop
        and b.p95_latency_ms <= a.p95_latency_ms * (1 + max_latency_increase)
    ]
    return sorted(hints, key=lambda h: h.dollars_per_hour, reverse=True)
