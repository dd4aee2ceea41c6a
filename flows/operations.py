"""What an operator can ask of the router, once, for every surface that asks it: the gateway's REST
API and the MCP tools call these functions, so both answer alike and neither holds SQL or rules.

Reads ingest the spool first (a locked store is read as it stands); results are JSON-ready dicts.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from blocks.store import Store, StoreError
from routing.errors import ConfigError, UnknownNameError
from routing.feedback import Feedback
from routing.models import Category
from routing.strategies.qlearning import reward

if TYPE_CHECKING:
    from flows.runtime import RoutingRuntime

logger = logging.getLogger("adaptive_router")


def fresh(store: Store) -> Store:
    """`store` with the spooled records ingested; on a lock, read what is there."""
    try:
        store.ingest()
    except StoreError as exc:
        logger.warning("reading without the newest spooled records: %s", exc)
    return store


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def benchmarks(store: Store, category: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Current capability scores grouped by category (the seed's `/api/v1/benchmarks`)."""
    from blocks.store.capabilities import latest_benchmarks

    if category is not None and category not in Category.__members__.values():
        raise UnknownNameError("category", category, [c.value for c in Category])
    grouped: dict[str, list[dict[str, Any]]] = {c.value: [] for c in Category} if category is None else {category: []}
    for row in latest_benchmarks(store, Category(category) if category else None):
        grouped[row["category"]].append(_jsonable(row))
    return grouped


def live_health(runtime: RoutingRuntime) -> dict[str, dict[str, Any]]:
    """Every target's breaker as this process sees it."""
    snapshots = runtime.breakers.snapshot()
    health = {}
    for name in runtime.targets:
        snap = snapshots.get(name)
        health[name] = snap.model_dump(mode="json") if snap else {"target": name, "state": "closed", "calls": 0}
    return health


def replayed_health(store: Store, window: int = 50) -> dict[str, dict[str, Any]]:
    """Every target's breaker replayed from its last `window` attempts (for a process that routes nothing)."""
    from blocks.store.history import recent_attempts
    from routing.calls.breaker_history import replay_breakers
    from routing.models import ErrorType

    history = recent_attempts(fresh(store), window)
    wrong = Counter(r.target for r in history if r.error_type == ErrorType.WRONG_ANSWER)
    return {
        name: {**snap.model_dump(mode="json"), "wrong_answers": wrong[name]}
        for name, snap in sorted(replay_breakers(history, datetime.now(UTC)).items())
    }


def recent_decisions(
    store: Store, limit: int = 20, task_id: str | None = None, task_type: str | None = None, target: str | None = None
) -> list[dict[str, Any]]:
    """Recent decisions with their reasons and attempts, newest first, filtered as asked."""
    from blocks.store.history import decisions

    if not 1 <= limit <= 1000:
        raise ConfigError(f"limit must be between 1 and 1000, got {limit}")
    rows = decisions(fresh(store), task_id=task_id, last=limit, task_type=task_type, pick=target)
    return [{**_jsonable(r), "attempts": [_jsonable(a) for a in r["attempts"]]} for r in rows]


def stats(store: Store) -> list[dict[str, Any]]:
    """Per (task type, target): calls, success rate, p50/p95 latency, mean cost and spend."""
    from blocks.store.history import performance

    return [{**row, "success_rate": row["successes"] / row["calls"]} for row in performance(fresh(store))]


def give_feedback(store: Store, feedback: Feedback, runtime: RoutingRuntime | None = None) -> dict[str, Any]:
    """Store the feedback; a live runtime's learners correct their reward for that attempt at once."""
    from blocks.store.feedback import record_feedback

    row = record_feedback(fresh(store), feedback)
    learners = runtime.learn_feedback(row, feedback.verdict) if runtime is not None else 0
    return {**_jsonable(row), "reward": reward(bool(row["success"]), row["quality_score"], feedback.verdict),
            "learners_updated": learners}  # fmt: skip


# -- experiments and policies -----------------------------------------------------------------------


def _experiment_json(experiment) -> dict[str, Any]:
    return experiment.model_dump(mode="json")


def list_experiments(store: Store) -> list[dict[str, Any]]:
    from blocks.store.experiments import list_experiments as listed

    return [_experiment_json(e) for e in listed(store)]


def find_experiment(store: Store, name_or_id: str):
    """An experiment by name or id."""
    from blocks.store.experiments import list_experiments as listed

    experiments = listed(store)
    for experiment in experiments:
        if name_or_id in (experiment.name, experiment.id):
            return experiment
    raise UnknownNameError("experiment", name_or_id, [e.name for e in experiments])


def start_experiment(
    store: Store,
    name: str,
    control: str,
    treatments: list[str],
    traffic: float = 0.5,
    min_samples: int = 100,
    metric: str = "success",
    willingness_to_pay: float = 0.01,
) -> dict[str, Any]:
    """Start routing `traffic` of the work by the treatment policies (specs as `policy apply` takes)."""
    from blocks.store.experiments import start_experiment as start
    from routing.experiments.assignment import ExperimentConfig, new_experiment
    from routing.experiments.policy import parse_policy

    if metric not in ("success", "reward"):
        raise ConfigError(f"metric must be success or reward, got {metric!r}")
    config = ExperimentConfig(metric=metric, min_samples=min_samples, willingness_to_pay=willingness_to_pay)
    experiment = new_experiment(name, parse_policy(control), [parse_policy(t) for t in treatments], traffic, config)
    return _experiment_json(start(fresh(store), experiment))


def analyze_experiment(store: Store, name_or_id: str, act: bool = False) -> dict[str, Any]:
    """The always-valid analysis; with `act`, a verdict stops the experiment and a regression rolls it back."""
    from blocks.store.experiments import sync_assignments
    from flows.experiments import analyze_one, report

    sync_assignments(fresh(store))
    experiment, analysis = analyze_one(store, find_experiment(store, name_or_id), act=act)
    return report(experiment, analysis)


def stop_experiment(store: Store, name_or_id: str) -> dict[str, Any]:
    from blocks.store.experiments import finish_experiment
    from routing.experiments.assignment import Status

    return _experiment_json(finish_experiment(store, find_experiment(store, name_or_id).name, Status.STOPPED, None))


def policy_recommendations(store: Store, task_type: str | None = None) -> dict[str, Any]:
    """The policy in force and the changes the evidence supports (drift, low acceptance), with confidence."""
    from blocks.store.experiments import load_policy_state, outcome_aggregates
    from routing.experiments.engine import EngineConfig, propose

    state = load_policy_state(fresh(store))
    proposals = [p for p in propose(state, outcome_aggregates(store), EngineConfig()) if task_type in (None, p.scope)]
    return {
        "policies": {scope: policy.spec for scope, policy in state.policies.items()},
        "recommendations": [p.model_dump(mode="json") for p in proposals],
    }


def rollback_policy(store: Store, snapshot_id: str, by: str = "api") -> dict[str, Any]:
    from blocks.store.experiments import rollback_policies

    state = rollback_policies(store, snapshot_id, f"rolled back to {snapshot_id} via {by}", by)
    return {"snapshot_id": snapshot_id, "policies": {scope: p.spec for scope, p in state.policies.items()}}
