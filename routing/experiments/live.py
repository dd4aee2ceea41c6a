"""Routing through policies and running experiments, as a router does it live.

`LiveConfig` is what the store publishes for routers (the policy in force per scope and the running
experiments), read from a file like the statistics, never from DuckDB. `PolicyRouting` turns it into
routers: a task in a running experiment is routed by its variant's own Router (own strategy, own
statistics, so variants do not learn from each other's traffic), and the Decision names the
experiment and variant; its probability stays the propensity of the pick inside the variant.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from routing.experiments.assignment import Experiment, Status, assign
from routing.experiments.engine import ALL, PolicyState
from routing.models import Decision, Outcome, Target, Task
from routing.router import Router
from routing.stats.book import StatsBook
from routing.strategies.base import Choice, Strategy


class LiveConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    policies: PolicyState = PolicyState()
    experiments: tuple[Experiment, ...] = Field(default=(), description="Running experiments only.")


class ByTaskType:
    """A strategy per task type with a default for the rest: the policy state as one Strategy."""

    def __init__(self, default: Strategy, per_type: Mapping[str, Strategy]) -> None:
        self.default = default
        self.per_type = dict(per_type)
        self.members = {"*": default, **self.per_type}
        self.name = default.name if not per_type else "by_task_type"

    def choose(self, task: Task, targets: Sequence[Target], book: StatsBook) -> Choice:
        return self.per_type.get(task.task_type, self.default).choose(task, targets, book)

    def observe(self, outcome: Outcome) -> None:
        self.per_type.get(outcome.task_type, self.default).observe(outcome)


def policy_strategy(state: PolicyState, targets: Sequence[str], default: Strategy, seed: int | None = None) -> Strategy:
    """The strategy the policy state asks for; `default` where it says nothing."""
    base = state.policies[ALL].build(targets, seed) if ALL in state.policies else default
    per_type = {scope: p.build(targets, seed) for scope, p in state.policies.items() if scope != ALL}
    return ByTaskType(base, per_type) if per_type else base


class PolicyRouting:
    """Chooses with the running experiments' variant routers, else with `router`."""

    def __init__(self, router: Router, experiments: Sequence[Experiment] = (), seed: int | None = None,
                 on_new_router: Callable[[Router], None] | None = None) -> None:  # fmt: skip
        self.router = router
        self.experiments = [e for e in experiments if e.status is Status.RUNNING]
        names = list(router.targets)
        targets = list(router.targets.values())
        self.variant_routers: dict[tuple[str, str], Router] = {}
        for experiment in self.experiments:
            for variant in experiment.variants:
                variant_router = Router(targets, variant.policy.build(names, seed), available=router.available)
                if on_new_router:
                    on_new_router(variant_router)
                self.variant_routers[(experiment.id, variant.name)] = variant_router
        self._owners: OrderedDict[str, Router] = OrderedDict()

    def experiment_for(self, task: Task) -> Experiment | None:
        for experiment in self.experiments:
            scope = experiment.control.policy.task_type
            if scope is None or scope == task.task_type:
                return experiment
        return None

    def choose(self, task: Task) -> Decision:
        experiment = self.experiment_for(task)
        if experiment is None:
            return self.router.choose(task)
        variant = assign(experiment, task)
        router = self.variant_routers[(experiment.id, variant.name)]
        decision = router.choose(task).model_copy(update={"experiment_id": experiment.id, "variant": variant.name})
        self._owners[decision.id] = router
        while len(self._owners) > 100_000:  # decisions whose tasks never finished
            self._owners.popitem(last=False)
        return decision

    def observe(self, outcome: Outcome, decision_id: str | None) -> None:
        """Every outcome teaches the main router; an experiment's also teaches its variant's router."""
        self.router.observe(outcome)
        owner = self._owners.get(decision_id) if decision_id else None
        if owner is not None:
            owner.observe(outcome)

    def finished(self, decision_id: str) -> None:
        self._owners.pop(decision_id, None)
