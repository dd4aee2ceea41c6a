"""Spend per day, ISO week and calendar month: `refresh-summaries` against sums computed here.

The executions straddle ISO week 2026-W01 (Monday 29 December 2025 to Sunday 4 January 2026), which
holds a month and a year boundary, with rows a microsecond either side of each boundary and timestamps
written in three time zones: a table that bucketed in local time, started weeks on Sunday or cut weeks at
the month would differ from the buckets computed here in Python (UTC dates, `date.isocalendar`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone

import numpy as np
import pytest

from blocks.store import DuckDBStore
from flows.maintenance import apply_retention
from flows.summaries import refresh_summaries
from routing.models import ExecutionRecord

pytestmark = pytest.mark.integration

UTC = UTC
ZONES = (UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=9)))
BOUNDARIES = (
    datetime(2025, 12, 29, tzinfo=UTC),  # Monday: ISO week 2026-W01 begins
    datetime(2026, 1, 1, tzinfo=UTC),  # a new month (and year) inside that week
    datetime(2026, 1, 5, tzinfo=UTC),  # Monday: week 2026-W02 begins
)
AS_OF = datetime(2026, 1, 12, 6, 0, tzinfo=UTC)
TARGETS = ("small", "premium")
TASK_TYPES = ("qa", "code")

Key = tuple[date, str, str]
Figures = tuple[int, int, float, float]  # executions, successes, total cost, total cost estimate


def iso_monday(day: date) -> date:
    year, week, _ = day.isocalendar()
    return date.fromisocalendar(year, week, 1)


BUCKETS: dict[str, tuple[str, Callable[[date], date]]] = {
    "spend_daily": ("day", lambda day: day),
    "spend_weekly": ("week", iso_monday),
    "spend_monthly": ("month", lambda day: day.replace(day=1)),
}


@pytest.fixture
def local_store(prefect_harness, store: DuckDBStore, monkeypatch) -> DuckDBStore:
    """The test's store as the flows' default store (what a deployment without a `store` parameter uses)."""
    monkeypatch.setenv("ADAPTIVE_ROUTER_DB", str(store.path))
    store.upgrade()
    return store


def calls(seed: int = 4, n: int = 400) -> list[ExecutionRecord]:
    """`n` calls spread over 20 December 2025 to 10 January 2026 plus two at each boundary; some calls
    have no actual cost or no estimate (summed as 0)."""
    rng = np.random.default_rng(seed)
    start = datetime(2025, 12, 20, tzinfo=UTC)
    moments = [start + timedelta(seconds=float(s)) for s in rng.uniform(0, 21 * 86_400, n)]
    moments += [edge + offset for edge in BOUNDARIES for offset in (-timedelta(microseconds=1), timedelta())]
    return [
        ExecutionRecord(
            task_id=f"task-{i}",
            target=str(rng.choice(TARGETS)),
            task_type=str(rng.choice(TASK_TYPES)),
            success=bool(rng.random() < 0.8),
            duration_ms=10.0,
            actual_cost=None if i % 17 == 0 else float(rng.uniform(0, 0.05)),
            cost_estimate=None if i % 11 == 0 else float(rng.uniform(0, 0.08)),
            timestamp=moment.astimezone(ZONES[i % len(ZONES)]),
        )
        for i, moment in enumerate(moments)
    ]


def expected(records: list[ExecutionRecord], bucket: Callable[[date], date]) -> dict[Key, Figures]:
    groups: dict[Key, list[ExecutionRecord]] = defaultdict(list)
    for r in records:
        groups[(bucket(r.timestamp.astimezone(UTC).date()), r.target, r.task_type)].append(r)
    return {
        key: (
            len(group),
            sum(r.success for r in group),
            math.fsum(r.actual_cost or 0.0 for r in group),
            math.fsum(r.cost_estimate or 0.0 for r in group),
        )
        for key, group in groups.items()
    }


def table(store: DuckDBStore, name: str) -> dict[Key, Figures]:
    column = BUCKETS[name][0]
    rows = store.query(
        f"SELECT {column} AS bucket, target, task_type, executions, successes, total_cost, "
        f"total_cost_estimate FROM {name}"
    )
    return {
        (r["bucket"], r["target"], r["task_type"]): (
            r["executions"],
            r["successes"],
            r["total_cost"],
            r["total_cost_estimate"],
        )
        for r in rows
    }


def assert_tables_match(store: DuckDBStore, records: list[ExecutionRecord]) -> None:
    for name, (_, bucket) in BUCKETS.items():
        want, got = expected(records, bucket), table(store, name)
        assert set(got) == set(want), name
        for key, (count, successes, cost, estimate) in want.items():
            assert got[key][:2] == (count, successes), (name, key)
            # to the cent is the requirement; the sums are exact to far below it
            assert got[key][2] == pytest.approx(cost, abs=1e-9), (name, key)
            assert got[key][3] == pytest.approx(estimate, abs=1e-9), (name, key)


def spool(store: DuckDBStore, records: list[ExecutionRecord]) -> None:
    for record in records:
        store.record_execution(record)
    store.ingest()


def test_spend_per_day_week_and_month_are_exact_sums_and_a_refresh_repeats_them(
    local_store: DuckDBStore,
) -> None:
    records = calls()
    spool(local_store, records)

    rows = refresh_summaries(summary="spend", as_of=AS_OF)
    assert rows == {"spend": sum(len(expected(records, bucket)) for _, bucket in BUCKETS.values())}
    assert_tables_match(local_store, records)
    weeks = {key[0] for key in table(local_store, "spend_weekly")}
    months = {key[0] for key in table(local_store, "spend_monthly")}
    assert weeks == {date(2025, 12, 15), date(2025, 12, 22), date(2025, 12, 29), date(2026, 1, 5)}
    assert months == {date(2025, 12, 1), date(2026, 1, 1)}

    first = {name: table(local_store, name) for name in BUCKETS}
    later = AS_OF + timedelta(minutes=5)
    assert refresh_summaries(as_of=later)["spend"] == rows["spend"]  # the default refresh includes spend
    assert {name: table(local_store, name) for name in BUCKETS} == first  # bit for bit
    refreshed = local_store.query(
        "SELECT DISTINCT refreshed_at FROM spend_daily UNION SELECT DISTINCT refreshed_at FROM spend_weekly "
        "UNION SELECT DISTINCT refreshed_at FROM spend_monthly"
    )
    assert refreshed == [{"refreshed_at": later.replace(tzinfo=None)}]  # rebuilt, not left alone


def test_weeks_and_months_begun_before_the_raw_horizon_keep_their_rows(local_store: DuckDBStore) -> None:
    """Retention deletes raw rows older than 90 days; a rebuild then replaces only the periods that
    start after that horizon, so the week and the month it falls in keep the sums of their full data."""
    records = calls(seed=9)
    spool(local_store, records)
    refresh_summaries(summary="spend", as_of=AS_OF)

    horizon = datetime(2025, 12, 31, 12, 0, tzinfo=UTC)  # a Wednesday, in week 2026-W01 and in December
    as_of = horizon + timedelta(days=90)
    deleted = apply_retention(raw_days=90, aggregate_days=365, as_of=as_of)
    assert deleted["executions"] == sum(r.timestamp < horizon for r in records)
    late = ExecutionRecord(
        task_id="late", target="small", task_type="qa", success=True, duration_ms=10.0,
        actual_cost=0.25, cost_estimate=0.3, timestamp=datetime(2026, 1, 7, 9, 0, tzinfo=UTC),
    )  # fmt: skip
    spool(local_store, [late])

    refresh_summaries(summary="spend", as_of=as_of)
    assert_tables_match(local_store, [*records, late])  # old periods from their lost rows, new ones with `late`
