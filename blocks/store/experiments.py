"""Policies, their audit trail and snapshots, experiments and their assignments, in the store.

The policy in force is kept in `policies` (one row per scope, id `routing:<scope>`, beside the
objectives' `objective:` rows); every change is a `policy_adjustments` row (old, new, reason,
confidence, snapshot before it) and every snapshot a `policy_snapshots` row holding the whole state.
Routers never read these tables: after every change `publish_live` writes the policy state and the
running experiments to `published/live.json` beside the statistics, atomically, ships it to the store's
published URL when one is set (blocks/store/remote_state.py), and routers reload it when it changes.
Assignments are the decisions routers logged with an experiment (through the spool); `sync_assignments`
copies them into `experiment_assignments`, idempotently.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from blocks.store import weighting as w
from blocks.store.remote_spool import display_url
from blocks.store.remote_state import ship_published
from blocks.store.snapshots import _replace
from blocks.store.store import Store, utc_naive
from routing.errors import ConfigError, UnknownNameError
from routing.experiments.analysis import Analysis, VariantData
from routing.experiments.assignment import Experiment, Status
from routing.experiments.engine import (
    ALL,
    EngineConfig,
    OutcomeAggregate,
    PolicyChange,
    PolicyState,
    Snapshot,
    rollback,
    snapshot,
    validate,
)
from routing.experiments.engine import apply as apply_change
from routing.experiments.live import LiveConfig
from routing.experiments.policy import Policy
from routing.models import utcnow

_PREFIX = "routing:"
LIVE_FILE = Path("published") / "live.json"

logger = logging.getLogger("adaptive_router")


def _utc(moment: datetime | None) -> datetime | None:
    """The store keeps naive UTC; models hold aware datetimes."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def live_path(store: Store) -> Path:
    return store.path.parent / LIVE_FILE


def load_live(path: Path) -> LiveConfig | None:
    try:
        return LiveConfig.model_validate_json(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def publish_live(store: Store) -> LiveConfig:
    """Write the policy state and the running experiments where routers look for them: beside the
    store and, when it has a published URL, there too. A URL that cannot be written is logged, not
    raised: the change is committed by then, and a caller must go on (an experiment's rollback still
    emits its event); `recalculate-stats` ships the file again when the copy differs."""
    live = LiveConfig(policies=load_policy_state(store), experiments=tuple(list_experiments(store, Status.RUNNING)))
    path = live_path(store)
    path.parent.mkdir(parents=True, exist_ok=True)
    _replace(path, live.model_dump_json(indent=1))
    url = None
    try:
        if url := store.remote_published_url:  # a malformed one ($ADAPTIVE_ROUTER_PUBLISHED_URL) is logged too
            ship_published(path, url, name=LIVE_FILE.name)
    except Exception as exc:  # noqa: BLE001 -- fsspec backends raise their own errors
        where = f"{display_url(url)}/{LIVE_FILE.name}" if url else "the published URL"
        logger.warning(
            "the policy change is recorded and published at %s, but shipping it to %s failed, so routers "
            "reading that URL keep the previous policies until the next policy change or `recalculate-stats` "
            "run ships it again: %s", path, where, str(exc),
        )  # fmt: skip
    return live


# -- policies ------------------------------------------------------------------------------------------


def load_policy_state(store: Store) -> PolicyState:
    rows = store.query(
        "SELECT name, config FROM policies WHERE active AND starts_with(policy_id, ?) ORDER BY name", [_PREFIX]
    )
    version = store.query("SELECT count(*) AS n FROM policy_adjustments WHERE starts_with(policy_id, ?)", [_PREFIX])
    return PolicyState(
        policies={r["name"]: Policy.model_validate_json(r["config"]) for r in rows}, version=version[0]["n"]
    )


def _save_state(con, state: PolicyState) -> None:
    con.execute("UPDATE policies SET active = FALSE WHERE starts_with(policy_id, ?)", [_PREFIX])
    for scope, policy in state.policies.items():
        con.execute(
            "INSERT OR REPLACE INTO policies VALUES (?, ?, ?, ?, TRUE, ?)",
            [_PREFIX + scope, scope, policy.strategy, policy.model_dump_json(), utc_naive()],
        )


def _audit(con, change: PolicyChange) -> None:
    con.execute(
        "INSERT INTO policy_adjustments (adjustment_id, policy_id, timestamp, parameter, old_value, new_value, reason,"
        " applied_by, confidence, evidence_count, snapshot_id) VALUES (?, ?, ?, 'policy', ?, ?, ?, ?, ?, ?, ?)",
        [change.id, _PREFIX + change.scope, utc_naive(change.timestamp),
         change.old.model_dump_json() if change.old else None, change.new.model_dump_json() if change.new else None,
         change.reason, change.applied_by, change.confidence, change.evidence_count, change.snapshot_id],
    )  # fmt: skip


def save_snapshot(store: Store, snap: Snapshot) -> Snapshot:
    with store.connect() as con:
        con.execute(
            "INSERT INTO policy_snapshots VALUES (?, ?, ?, ?, ?, ?)",
            [snap.id, _PREFIX + ALL, snap.state.version, snap.state.model_dump_json(), snap.note, utc_naive(snap.created_at)],
        )
    return snap


def take_snapshot(store: Store, note: str) -> Snapshot:
    return save_snapshot(store, snapshot(load_policy_state(store), note))


def load_snapshot(store: Store, snapshot_id: str) -> Snapshot:
    rows = store.query("SELECT snapshot_id, config, note, created_at FROM policy_snapshots WHERE snapshot_id = ?", [snapshot_id])
    if not rows:
        known = [r["snapshot_id"] for r in store.query("SELECT snapshot_id FROM policy_snapshots ORDER BY created_at DESC LIMIT 10")]
        raise UnknownNameError("policy snapshot", snapshot_id, known)
    row = rows[0]
    return Snapshot(id=row["snapshot_id"], state=PolicyState.model_validate_json(row["config"]), note=row["note"] or "",
                    created_at=_utc(row["created_at"]))  # fmt: skip


def list_snapshots(store: Store, limit: int = 20) -> list[dict[str, Any]]:
    return store.query(
        "SELECT snapshot_id, version, note, created_at FROM policy_snapshots ORDER BY created_at DESC LIMIT ?", [limit]
    )


def policy_history(store: Store, limit: int = 50) -> list[PolicyChange]:
    rows = store.query(
        "SELECT adjustment_id, policy_id, timestamp, old_value, new_value, reason, applied_by, confidence,"
        " evidence_count, snapshot_id FROM policy_adjustments WHERE starts_with(policy_id, ?)"
        " ORDER BY timestamp DESC LIMIT ?",
        [_PREFIX, limit],
    )
    return [
        PolicyChange(
            id=r["adjustment_id"], scope=r["policy_id"].removeprefix(_PREFIX), timestamp=_utc(r["timestamp"]),
            old=Policy.model_validate_json(r["old_value"]) if r["old_value"] else None,
            new=Policy.model_validate_json(r["new_value"]) if r["new_value"] else None,
            reason=r["reason"] or "", applied_by=r["applied_by"] or "", confidence=r["confidence"],
            evidence_count=r["evidence_count"] or 0, snapshot_id=r["snapshot_id"],
        )
        for r in rows
    ]


def apply_policy(
    store: Store, policy: Policy | None, reason: str, scope: str = ALL, applied_by: str = "cli",
    approved: bool = False, confidence: float | None = None, config: EngineConfig | None = None,
) -> PolicyChange:  # fmt: skip
    """Validate and apply one change (snapshot first, audited, published); ConfigError lists the problems."""
    config = config or EngineConfig()
    state = load_policy_state(store)
    proposed = PolicyChange(scope=scope, old=state.policies.get(scope), new=policy, reason=reason,
                            confidence=confidence, applied_by=applied_by)  # fmt: skip
    history = [c for c in policy_history(store, limit=config.max_changes + 1) if c.applied_by != "rollback"]
    problems = validate(state, proposed, history, config, approved=approved)
    if problems:
        raise ConfigError(f"policy change refused: {'; '.join(problems)}")
    snap = take_snapshot(store, f"before: {reason}")
    change = proposed.model_copy(update={"snapshot_id": snap.id})
    with store.connect() as con:
        con.execute("BEGIN TRANSACTION")
        _save_state(con, apply_change(state, change))
        _audit(con, change)
        con.execute("COMMIT")
    publish_live(store)
    return change


def rollback_policies(store: Store, snapshot_id: str, reason: str, applied_by: str = "rollback") -> PolicyState:
    """Restore the policies of a snapshot (audited per scope that changes; not rate limited)."""
    target = load_snapshot(store, snapshot_id)
    state = load_policy_state(store)
    restored = rollback(state, target)
    with store.connect() as con:
        con.execute("BEGIN TRANSACTION")
        _save_state(con, restored)
        for scope in sorted(set(state.policies) | set(restored.policies)):
            old, new = state.policies.get(scope), restored.policies.get(scope)
            if old != new:
                _audit(con, PolicyChange(scope=scope, old=old, new=new, reason=reason, applied_by=applied_by,
                                         snapshot_id=snapshot_id))  # fmt: skip
        con.execute("COMMIT")
    publish_live(store)
    return restored


_CUT = "? - to_microseconds(CAST(? * 3600e6 AS BIGINT))"


def outcome_aggregates(store: Store, now: datetime | None = None, recent_hours: float = 24) -> list[OutcomeAggregate]:
    """Per task type: success in the last `recent_hours` and before, and user acceptance, for `propose`."""
    cut = utc_naive(now or utcnow())
    rows = store.query(
        f"""
        SELECT e.task_type,
          {w.count(f"e.timestamp >= {_CUT}")} AS recent_n,
          {w.count(f"e.success AND e.timestamp >= {_CUT}")} AS recent_successes,
          {w.count(f"e.timestamp < {_CUT}")} AS earlier_n,
          {w.count(f"e.success AND e.timestamp < {_CUT}")} AS earlier_successes,
          count(f.acceptance) AS feedback_n, count(*) FILTER (WHERE f.acceptance) AS accepted
        FROM executions e LEFT JOIN feedback f ON f.execution_id = e.execution_id
        GROUP BY e.task_type ORDER BY e.task_type
        """,
        [cut, recent_hours] * 4,
    )
    return [OutcomeAggregate(**r) for r in rows]


# -- experiments ---------------------------------------------------------------------------------------


def _experiment_row(experiment: Experiment) -> list[Any]:
    config = {"config": experiment.config.model_dump(mode="json"), "snapshot_id": experiment.snapshot_id, "id": experiment.id}
    return [experiment.id, experiment.name, experiment.status.value,
            json.dumps([v.model_dump(mode="json") for v in experiment.variants]), experiment.config.metric,
            json.dumps(config), experiment.decision, utc_naive(experiment.created_at),
            utc_naive(experiment.stopped_at) if experiment.stopped_at else None]  # fmt: skip


def _experiment(row: dict[str, Any]) -> Experiment:
    config = json.loads(row["config"])
    return Experiment(
        id=row["experiment_id"], name=row["name"], status=Status(row["status"]), variants=tuple(json.loads(row["arms"])),
        config=config["config"], decision=row["verdict"], snapshot_id=config.get("snapshot_id"),
        created_at=_utc(row["created_at"]), stopped_at=_utc(row["stopped_at"]),
    )  # fmt: skip


def start_experiment(store: Store, experiment: Experiment) -> Experiment:
    """Snapshot the policies (restored if it rolls back), save the experiment, publish it to routers."""
    if store.query("SELECT 1 FROM experiments WHERE name = ?", [experiment.name]):
        raise ConfigError(f"an experiment named {experiment.name!r} exists; choose another name")
    snap = take_snapshot(store, f"before experiment {experiment.name}")
    experiment = experiment.model_copy(update={"snapshot_id": snap.id})
    with store.connect() as con:
        con.execute("INSERT INTO experiments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", _experiment_row(experiment))
    publish_live(store)
    return experiment


def list_experiments(store: Store, status: Status | None = None) -> list[Experiment]:
    sql = "SELECT * FROM experiments" + (" WHERE status = ?" if status else "") + " ORDER BY created_at"
    return [_experiment(r) for r in store.query(sql, [status.value] if status else [])]


def load_experiment(store: Store, name: str) -> Experiment:
    rows = store.query("SELECT * FROM experiments WHERE name = ?", [name])
    if not rows:
        raise UnknownNameError("experiment", name, [e.name for e in list_experiments(store)])
    return _experiment(rows[0])


def finish_experiment(store: Store, name: str, status: Status, decision: str | None) -> Experiment:
    """Stop routing by it (routers drop it when they reload); a rollback also restores its snapshot."""
    experiment = load_experiment(store, name)
    with store.connect() as con:
        con.execute(
            "UPDATE experiments SET status = ?, verdict = ?, stopped_at = ? WHERE name = ?",
            [status.value, decision, utc_naive(), name],
        )
    if status is Status.ROLLED_BACK and experiment.snapshot_id:
        rollback_policies(store, experiment.snapshot_id, f"experiment {name} regressed")
    else:
        publish_live(store)
    return load_experiment(store, name)


def sync_assignments(store: Store) -> int:
    """Copy decisions made inside experiments into experiment_assignments; returns rows added."""
    with store.connect() as con:
        added = con.execute(
            """
            INSERT OR IGNORE INTO experiment_assignments
                (assignment_id, experiment_id, task_id, arm, propensity, timestamp, decision_id, task_type)
            SELECT decision_id, experiment_id, task_id, variant, probability, timestamp, decision_id, task_type
            FROM routing_decisions WHERE experiment_id IS NOT NULL
            RETURNING 1
            """
        ).fetchall()
    return len(added)


def variant_data(store: Store, experiment: Experiment) -> list[VariantData]:
    """Per variant, one row per assigned task that ran (see analysis for what each column means)."""
    rows = store.query(
        """
        WITH fb AS (SELECT task_id, avg(rating) AS rating FROM feedback GROUP BY task_id)
        SELECT a.arm AS variant, a.task_id,
               coalesce(bool_or(e.success AND e.target = d.pick), false)::INT AS success,
               coalesce(sum(e.actual_cost), 0) AS cost, sum(e.duration_ms) AS latency_ms,
               coalesce(bool_or(e.target = d.pick AND e.error_type IS NOT NULL
                                AND e.error_type <> 'wrong_answer'), false)::INT AS errored,
               avg(e.quality_score) AS quality, any_value(fb.rating) AS feedback
        FROM experiment_assignments a
        JOIN routing_decisions d ON d.decision_id = a.decision_id
        JOIN executions e ON e.decision_id = a.decision_id
        LEFT JOIN fb ON fb.task_id = a.task_id
        WHERE a.experiment_id = ?
        GROUP BY a.arm, a.task_id ORDER BY min(e.timestamp)
        """,
        [experiment.id],
    )
    by_variant: dict[str, list[dict[str, Any]]] = {v.name: [] for v in experiment.variants}
    for row in rows:
        by_variant.setdefault(row["variant"], []).append(row)
    return [VariantData.from_rows(v.name, by_variant[v.name]) for v in experiment.variants]


def save_metrics(store: Store, experiment: Experiment, analysis: Analysis) -> None:
    now = utc_naive()
    rows = []
    for v in analysis.variants:
        rows.append([experiment.id, v.name, "success", v.n, v.success_rate, v.success_low, v.success_high, now])
        for metric in ("mean_reward", "mean_cost", "p95_ms", "error_rate"):
            rows.append([experiment.id, v.name, metric, v.n, getattr(v, metric), None, None, now])
    with store.connect() as con:
        con.executemany("INSERT OR REPLACE INTO experiment_metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)


def logged_decisions(store: Store) -> list[dict[str, Any]]:
    """Every logged pick with its propensity and outcome (the pick's own attempts), for off-policy evaluation."""
    return store.query(
        """
        SELECT d.task_type, any_value(e.category) AS category, d.pick, d.probability,
               coalesce(bool_or(e.success AND e.target = d.pick), false)::INT AS success,
               coalesce(sum(e.actual_cost) FILTER (WHERE e.target = d.pick), 0) AS cost
        FROM routing_decisions d JOIN executions e ON e.decision_id = d.decision_id
        WHERE d.probability > 0
        GROUP BY d.decision_id, d.task_type, d.pick, d.probability
        """
    )
