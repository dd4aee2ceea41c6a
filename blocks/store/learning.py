"""What routers learn beyond statistics, kept in the store: the Q-table and session state.

Written at the end of a batch run and read when a runtime starts, never on a routed call's path.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC
from typing import Any

from blocks.store.store import Store, utc_naive


def save_q_table(store: Store, rows: Iterable[Mapping[str, Any]]) -> int:
    """Replace the stored Q-table with `rows` (state, action, q_value, visits, updated_at)."""
    values = [
        (r["state"], r["action"], r["q_value"], r["visits"], utc_naive(r["updated_at"])) for r in rows
    ]
    with store.connect() as con:
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM q_table")
        if values:
            con.executemany("INSERT INTO q_table VALUES (?, ?, ?, ?, ?)", values)
        con.execute("COMMIT")
    return len(values)


def load_q_table(store: Store) -> list[dict[str, Any]]:
    rows = store.query("SELECT state, action, q_value, visits, updated_at FROM q_table")
    return [{**r, "updated_at": r["updated_at"].replace(tzinfo=UTC)} for r in rows]


def save_sessions(store: Store, rows: Iterable[Mapping[str, Any]]) -> int:
    """Upsert session rows (session_id, target, category, keywords, turns, updated_at)."""
    values = [
        (r["session_id"], r["target"], r["category"], json.dumps(list(r["keywords"])), r["turns"],
         utc_naive(r["updated_at"]))
        for r in rows
    ]
    if values:
        with store.connect() as con:
            con.executemany("INSERT OR REPLACE INTO session_state VALUES (?, ?, ?, ?, ?, ?)", values)
    return len(values)


def load_sessions(store: Store) -> list[dict[str, Any]]:
    rows = store.query("SELECT session_id, target, category, keywords, turns, updated_at FROM session_state")
    return [
        {**r, "keywords": json.loads(r["keywords"] or "[]"), "updated_at": r["updated_at"].replace(tzinfo=UTC)}
        for r in rows
    ]
