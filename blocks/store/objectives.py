"""Per-task-type objectives (interactive, batch, critical, ...) kept as policies in the store."""

from __future__ import annotations

import json

from blocks.store.store import Store, utc_naive
from routing.strategies.objectives import Objective

_PREFIX = "objective:"


def save_objective(store: Store, task_type: str, objective: Objective) -> None:
    """Make `objective` the one in force for `task_type`, replacing any earlier one."""
    now = utc_naive()
    with store.connect() as con:
        con.execute(
            "INSERT OR REPLACE INTO policies VALUES (?, ?, ?, ?, TRUE, ?)",
            [_PREFIX + task_type, task_type, objective.priority.value, objective.model_dump_json(), now],
        )


def load_objectives(store: Store) -> dict[str, Objective]:
    rows = store.query(
        "SELECT name, config FROM policies WHERE active AND starts_with(policy_id, ?)", [_PREFIX]
    )
    return {row["name"]: Objective.model_validate(json.loads(row["config"])) for row in rows}
