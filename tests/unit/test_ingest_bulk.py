"""DuckDB's own load of a segment (blocks/store/bulk.py): used for clean segments, storing exactly what
the per-line path stores, and never trusted with a line only Python would refuse or clean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blocks.store import DuckDBStore
from blocks.store import store as store_module
from routing.models import Decision, ExecutionRecord


@pytest.fixture
def per_line(monkeypatch: pytest.MonkeyPatch) -> list[set[str] | None]:
    """Records each call of the per-line path (the kinds it was given; None = the whole segment)."""
    calls: list[set[str] | None] = []
    real = store_module._load_lines

    def spy(con, database, segment, report, kinds):
        calls.append(kinds)
        return real(con, database, segment, report, kinds)

    monkeypatch.setattr(store_module, "_load_lines", spy)
    return calls


def record(i: int, **fields) -> ExecutionRecord:
    values = dict(execution_id=f"e-{i:04d}", task_id=f"t{i}", task_type="qa", target="a", success=i % 2 == 0,
                  duration_ms=10.0 + i, quality_score=float(i % 100), input_tokens=2**40 + i, actual_cost=0.001 * i,
                  error_message="é😀 \\ \"quoted\"" if i == 3 else None, metadata={"i": i, "nested": {"x": [1, 2.5]}},
                  embedding=[0.25] * 384 if i == 4 else None, user_rating=1 + i % 5,
                  solution_summary=f"answer {i}" if i % 4 == 0 else None)
    return ExecutionRecord(**values | fields)


def spool_lines(store: DuckDBStore, lines: list[str]) -> None:
    store.spool_path.mkdir(parents=True, exist_ok=True)
    (store.spool_path / "hand.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def line(data: dict, kind: str = "execution") -> str:
    return json.dumps({"kind": kind, "data": data})


def rows(store: DuckDBStore) -> list[dict]:
    return store.query("SELECT * FROM executions ORDER BY execution_id")


def test_a_clean_segment_is_loaded_by_duckdb_and_stores_what_the_per_line_path_stores(
    tmp_path: Path, per_line: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = DuckDBStore(database=str(tmp_path / "fast.duckdb"))
    with fast:
        for i in range(40):
            fast.record_execution(record(i))
    segment = next(fast.spool_path.glob("*.jsonl")).read_text()
    report = fast.ingest()
    assert per_line == [] and (report.executions, report.duplicates, report.rejected) == (40, 0, [])

    slow = DuckDBStore(database=str(tmp_path / "slow.duckdb"))
    spool_lines(slow, segment.splitlines())
    monkeypatch.setattr(store_module, "_bulk_load", lambda *args: None)
    assert slow.ingest().executions == 40
    assert rows(fast) == rows(slow)
    solutions = "SELECT * FROM solutions ORDER BY solution_id"  # derived in the same transaction
    assert len(fast.query(solutions)) == 10 and fast.query(solutions) == slow.query(solutions)

    spool_lines(fast, segment.splitlines())  # again: every row a duplicate, nothing added
    monkeypatch.undo()
    again = fast.ingest()
    assert (again.executions, again.duplicates, again.segments) == (0, 40, 1)


def test_a_mixed_segment_loads_executions_in_sql_and_decisions_per_line(store: DuckDBStore, per_line: list) -> None:
    with store:
        for i in range(6):
            store.record_execution(record(i))
            store.record_decision(Decision(task_id=f"t{i}", task_type="qa", strategy="weighted", candidates=(),
                                           pick="a", probability=0.5, reason="r"))
    report = store.ingest()
    assert (report.executions, report.decisions, report.duplicates) == (6, 6, 0)
    assert per_line == [{"decision"}]


HOSTILE = {  # a line only Python refuses or changes -> (rejected reason fragment | None if stored cleaned)
    "unknown key": ({"surprise": 1}, "surprise"),
    "missing key with a default": ({"_drop": "attempt"}, None),
    "fractional integer": ({"attempt": 1.5}, "attempt"),
    "number where text belongs": ({"target": 5}, "target"),
    "integer where a boolean belongs": ({"success": 2}, "success"),
    "NaN in a typed field": ({"duration_ms": "__NaN__"}, "duration_ms"),
    "NaN inside metadata": ({"metadata": {"x": "__NaN__"}}, None),
    "blank id": ({"task_id": "   "}, "task_id"),
    "NUL in text": ({"error_message": "a\x00b"}, None),
    "time with an offset": ({"timestamp": "2026-01-01T12:00:00+02:00"}, None),
    "out of range": ({"user_rating": 9}, "user_rating"),
    "unknown enum value": ({"category": "astrology"}, "category"),
    "weight below 1": ({"weight": 0.5}, "weight"),
    "another embedder's size": ({"embedding": [0.5] * 3}, None),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_line_only_python_refuses_or_cleans_sends_the_segment_per_line(store: DuckDBStore, per_line: list, case: str) -> None:
    change, refused = HOSTILE[case]
    data = record(99).model_dump(mode="json") | {k: v for k, v in change.items() if k != "_drop"}
    data.pop(change.get("_drop", ""), None)
    hostile = line(data).replace('"__NaN__"', "NaN")
    spool_lines(store, [line(record(1).model_dump(mode="json")), hostile, line(record(2).model_dump(mode="json"))])

    report = store.ingest()

    assert per_line == [None]  # the whole segment took the per-line path
    stored = {r["execution_id"]: r for r in rows(store)}
    assert {"e-0001", "e-0002"} <= set(stored)
    if refused:
        assert "e-0099" not in stored and [r.line for r in report.rejected] == [2]
        assert refused in report.rejected[0].reason
    else:
        assert report.rejected == [] and "e-0099" in stored
    if case == "time with an offset":
        assert stored["e-0099"]["timestamp"].hour == 10  # converted to UTC, which DuckDB's cast would not do
    if case == "NUL in text":
        assert stored["e-0099"]["error_message"] == "a\ufffdb"
    if case == "another embedder's size":
        assert stored["e-0099"]["embedding"] is None


def test_ids_repeated_within_a_segment_keep_the_per_line_rule(store: DuckDBStore, per_line: list) -> None:
    first, last = record(7, target="first"), record(7, target="last")
    spool_lines(store, [line(first.model_dump(mode="json")), line(last.model_dump(mode="json"))])
    assert store.ingest().executions == 1
    assert per_line == [None] and rows(store)[0]["target"] == "last"


def test_a_column_the_model_lacks_keeps_its_default_and_the_load_stays_in_sql(store: DuckDBStore, per_line: list) -> None:
    """A later migration's column is read from the table, not from a list here (as `weight` was)."""
    with store.connect() as con:
        con.execute("ALTER TABLE executions ADD COLUMN region VARCHAR DEFAULT 'here'")
    with store:
        store.record_execution(record(1, weight=4.0))
    assert store.ingest().executions == 1 and per_line == []
    assert store.query("SELECT region, weight FROM executions") == [{"region": "here", "weight": 4.0}]


def test_a_bad_line_repeating_a_stored_id_is_still_refused(store: DuckDBStore, per_line: list) -> None:
    """The guard sees every line, duplicates too: the per-line path refuses a bad duplicate as well."""
    with store:
        store.record_execution(record(1))
    store.ingest()
    spool_lines(store, [line(record(1).model_dump(mode="json") | {"surprise": 1})])
    report = store.ingest()
    assert per_line == [None] and [r.line for r in report.rejected] == [1] and len(rows(store)) == 1
