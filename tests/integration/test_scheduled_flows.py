"""The scheduled flows on Prefect's test harness with a real DuckDB store.

Every figure a flow writes is checked against the same rows computed independently here: numpy and
pandas for counts, means and percentiles, textbook formulas for the Wilson interval, the pooled
two-proportion z test and the chi-square statistic, scipy's Welch test on the raw latencies.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from blocks.fleet.config import FleetConfig, Latency, ModelSpec
from blocks.fleet.launcher import FleetServer
from blocks.fleet.targets import fleet_targets
from blocks.store import DuckDBStore
from blocks.store.snapshots import PublishedReader, load_published, publish, published_path
from blocks.targets.http import OpenAICompatibleTarget
from flows import health
from flows.benchmark_suite import run_benchmarks
from flows.health import check_health
from flows.maintenance import apply_retention, drain_queue, ingest_outcomes
from flows.recalculate import recalculate_stats
from flows.runtime import RoutingRuntime, register_runtime, unregister_runtime
from flows.summaries import refresh_summaries
from routing.evaluation.capability import BenchmarkResult, CapabilityTable
from routing.models import Category, ErrorType, ExecutionRecord, Task
from routing.strategies.weighted import WeightedScore, WeightedScoreConfig

pytestmark = pytest.mark.integration

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
Z95 = stats.norm.ppf(0.975)


@pytest.fixture
def local_store(prefect_harness, store: DuckDBStore, monkeypatch) -> DuckDBStore:
    """The test's store as the flows' default store (what a deployment without a `store` parameter uses)."""
    monkeypatch.setenv("ADAPTIVE_ROUTER_DB", str(store.path))
    store.upgrade()
    return store


def spool(store: DuckDBStore, records: list[ExecutionRecord]) -> None:
    for record in records:
        store.record_execution(record)
    store.writer().close()


def synthetic(
    rng: np.random.Generator, target: str, task_type: str, n: int, rate: float, median_ms: float, **fields
) -> list[ExecutionRecord]:
    """`n` attempts of `target` in the two days before NOW: Bernoulli(rate) success, lognormal latency."""
    minutes = rng.uniform(0, 2 * 24 * 60, n)
    return [
        ExecutionRecord(
            task_id=f"{target}-{task_type}-{i}",
            target=target,
            task_type=task_type,
            success=bool(rng.random() < rate),
            duration_ms=float(rng.lognormal(math.log(median_ms), 0.4)),
            actual_cost=float(rng.uniform(0, 0.01)),
            quality_score=float(rng.uniform(0, 100)),
            timestamp=NOW - timedelta(minutes=float(m)),
            category=Category.MATH if i % 3 else Category.CODING,
            **fields,
        )
        for i, m in enumerate(minutes)
    ]


def executions(store: DuckDBStore) -> pd.DataFrame:
    return pd.DataFrame(store.query("SELECT * FROM executions"))


def flow_run_name(state) -> str:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(state.state_details.flow_run_id).name


# -- recalculate-stats -----------------------------------------------------------------------------


def expected_stats(frame: pd.DataFrame) -> dict[tuple[str, str], dict]:
    """Per (target, task type) statistics and tests against the task type's leader, computed here."""
    out = {}
    for (target, task_type), group in frame.groupby(["target", "task_type"]):
        n, s = len(group), int(group["success"].sum())
        p = s / n
        centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
        half = Z95 / (1 + Z95**2 / n) * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n))
        latency = group["duration_ms"].to_numpy()
        out[(target, task_type)] = {
            "n": n, "successes": s, "success_rate": p, "success_low": centre - half, "success_high": centre + half,
            "p50_latency_ms": np.percentile(latency, 50), "p95_latency_ms": np.percentile(latency, 95),
            "p99_latency_ms": np.percentile(latency, 99), "mean_latency_ms": latency.mean(),
            "latency_sd_ms": latency.std(ddof=1), "mean_cost": group["actual_cost"].mean(), "latencies": latency,
        }  # fmt: skip
    for task_type in {k[1] for k in out}:
        group = {t: v for (t, tt), v in out.items() if tt == task_type}
        leader = max(group, key=lambda t: (group[t]["success_rate"], -group[t]["mean_latency_ms"], t))
        lead = group[leader]
        for target, row in group.items():
            row["best_target"] = leader
            if target == leader:
                row.update(success_z=None, success_p=None, latency_t=None, latency_p=None)
                continue
            pooled = (row["successes"] + lead["successes"]) / (row["n"] + lead["n"])
            z = (row["success_rate"] - lead["success_rate"]) / math.sqrt(
                pooled * (1 - pooled) * (1 / row["n"] + 1 / lead["n"])
            )
            welch = stats.ttest_ind(row["latencies"], lead["latencies"], equal_var=False)
            row.update(
                success_z=z,
                success_p=2 * stats.norm.sf(abs(z)),
                latency_t=welch.statistic,
                latency_p=welch.pvalue,
            )
    return out


def assert_stats_match(store: DuckDBStore) -> None:
    expected = expected_stats(executions(store))
    rows = {(r["target"], r["task_type"]): r for r in store.query("SELECT * FROM target_stats")}
    assert set(rows) == set(expected)
    for key, want in expected.items():
        for column, value in want.items():
            if column == "latencies":
                continue
            got = rows[key][column]
            if value is None or isinstance(value, str):
                assert got == value, (key, column)
            else:
                assert got == pytest.approx(value, rel=1e-9, abs=1e-12), (key, column)


def test_recalculation_matches_independent_statistics_and_is_published(local_store: DuckDBStore) -> None:
    rng = np.random.default_rng(5)
    records = [
        *synthetic(rng, "fast", "qa", 300, 0.92, 40),
        *synthetic(rng, "slow", "qa", 250, 0.70, 200),
        *synthetic(rng, "mid", "qa", 200, 0.90, 90),
        *synthetic(rng, "fast", "code", 120, 0.60, 60),
        *synthetic(rng, "mid", "code", 130, 0.85, 80),
    ]
    spool(local_store, records)  # the flow ingests the spool first

    state = recalculate_stats(return_state=True)
    report = state.result()
    assert flow_run_name(state) == "recalculate-stats incremental: 3 targets, 1k executions"
    assert report.targets == ["fast", "mid", "slow"] and report.executions == 1000
    assert_stats_match(local_store)

    published = load_published(published_path(local_store))
    assert published is not None and report.published == str(published_path(local_store))
    rows = {(r["target"], r["task_type"]): r for r in local_store.query("SELECT * FROM target_stats")}
    assert {(e.target, e.task_type) for e in published.snapshot.entries} == set(rows)
    for entry in published.snapshot.entries:
        row = rows[(entry.target, entry.task_type)]
        assert (entry.n, entry.successes, entry.p95_latency_ms) == (
            row["n"],
            row["successes"],
            row["p95_latency_ms"],
        )
    frame = executions(local_store)
    for prior in published.priors:
        group = frame[
            (frame.target == prior.target)
            & (frame.task_type == prior.task_type)
            & (frame.category == prior.category)
        ]
        assert (prior.successes, prior.failures) == (int(group.success.sum()), int((~group.success).sum()))

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        (artifact,) = client.read_latest_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["target-scores"]))
        )
    table = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    assert {(r["target"], r["task_type"]) for r in table} == set(rows)


def test_incremental_runs_recompute_only_targets_with_new_or_late_data(local_store: DuckDBStore) -> None:
    rng = np.random.default_rng(8)
    spool(local_store, [*synthetic(rng, "a", "qa", 80, 0.9, 50), *synthetic(rng, "b", "qa", 90, 0.6, 70),
                        *synthetic(rng, "c", "chat", 40, 0.8, 30)])  # fmt: skip
    recalculate_stats()
    before = {
        r["target"]: r["computed_at"]
        for r in local_store.query("SELECT target, computed_at FROM stats_fingerprints")
    }
    publications = local_store.query("SELECT count(*) AS n FROM published_states")[0]["n"]

    nothing = recalculate_stats(return_state=True)
    assert flow_run_name(nothing) == "recalculate-stats incremental: no new executions"
    assert local_store.query("SELECT count(*) AS n FROM published_states")[0]["n"] == publications

    late = synthetic(rng, "b", "qa", 15, 0.1, 300)  # arrives late: timestamps older than b's latest
    spool(local_store, [r.model_copy(update={"timestamp": NOW - timedelta(days=3)}) for r in late])
    report = recalculate_stats()
    assert report.targets == ["b"] and report.executions == 105 and report.task_types == ["qa"]
    after = {
        r["target"]: r["computed_at"]
        for r in local_store.query("SELECT target, computed_at FROM stats_fingerprints")
    }
    assert after["a"] == before["a"] and after["c"] == before["c"] and after["b"] > before["b"]
    assert_stats_match(local_store)  # a's comparison against the qa leader was refreshed too

    local_store.query("DELETE FROM executions WHERE target = 'c'")
    full = recalculate_stats(full=True, return_state=True)
    assert flow_run_name(full) == "recalculate-stats full: 2 targets, 185 executions, 1 removed"
    assert_stats_match(local_store)
    assert {e.target for e in load_published(published_path(local_store)).snapshot.entries} == {"a", "b"}


# -- refresh-summaries ------------------------------------------------------------------------------


def failure(record: ExecutionRecord) -> ErrorType | None:
    if record.success:
        return None
    return ErrorType.TIMEOUT if record.duration_ms > 60 else ErrorType.SERVER_ERROR


def test_summaries_match_direct_computation_and_old_buckets_stay(local_store: DuckDBStore) -> None:
    rng = np.random.default_rng(13)
    records = []
    for tier, pool, rate in (("small", "shared", 0.7), ("premium", "dedicated", 0.95), (None, None, 0.8)):
        for target in ("x", "y"):
            batch = synthetic(rng, target, "qa", 150, rate, 60, model_tier=tier, pool_type=pool)
            records += [r.model_copy(update={"error_type": failure(r)}) for r in batch]
    spool(local_store, records)
    local_store.ingest()
    with local_store.connect() as con:  # a summary row for a day whose raw rows retention already deleted
        con.execute(
            "INSERT INTO tier_daily_performance VALUES ('2025-01-01', 'small', 10, 9, 0.9, NULL, 1, 2, 0, 0, now())"
        )

    rows = refresh_summaries(as_of=NOW)
    frame = executions(local_store)
    frame["model_tier"] = frame.model_tier.fillna("unknown")
    frame["pool_type"] = frame.pool_type.fillna("unknown")
    frame["day"] = frame.timestamp.dt.floor("D")
    frame["hour"] = frame.timestamp.dt.floor("h")
    assert rows == {
        "tier-daily": len(frame[["day", "model_tier"]].drop_duplicates()) + 1,  # + the old day's row
        "pool-hourly": len(frame[["hour", "pool_type"]].drop_duplicates()),
        "solution-patterns": len(frame[["category", "task_type", "target"]].drop_duplicates()),
        "spend": sum(  # rows per day, ISO week (ending Sunday) and month, by target and task type
            len(
                frame.assign(start=frame.timestamp.dt.to_period(p).dt.start_time)[["start", "target", "task_type"]]
                .drop_duplicates()
            )
            for p in ("D", "W-SUN", "M")
        ),
    }

    def summarise(group: pd.DataFrame) -> pd.Series:
        return pd.Series({
            "executions": len(group), "successes": int(group.success.sum()), "success_rate": group.success.mean(),
            "mean_quality": group.quality_score.mean(), "p50_latency_ms": np.percentile(group.duration_ms, 50),
            "p95_latency_ms": np.percentile(group.duration_ms, 95), "total_cost": group.actual_cost.sum(),
            "mean_cost": group.actual_cost.mean(),
        })  # fmt: skip

    for table, keys in (
        ("tier_daily_performance", ["day", "model_tier"]),
        ("pool_hourly_performance", ["hour", "pool_type"]),
    ):
        want = frame.groupby(keys).apply(summarise, include_groups=False)
        got = pd.DataFrame(local_store.query(f"SELECT * FROM {table} WHERE {keys[0]} >= '2025-06-01'"))
        got[keys[0]] = pd.to_datetime(got[keys[0]]).astype("datetime64[us]")
        got = got.set_index(keys).sort_index()[want.columns]
        pd.testing.assert_frame_equal(
            got, want.sort_index(), check_dtype=False, check_index_type=False, rtol=1e-9
        )
    assert local_store.query("SELECT executions FROM tier_daily_performance WHERE day = '2025-01-01'") == [
        {"executions": 10}
    ]

    patterns = {(r["category"], r["target"]): r for r in local_store.query("SELECT * FROM solution_patterns")}
    for key, group in frame.groupby(["category", "target"]):
        top = min(group.error_type.value_counts().items(), key=lambda kv: (-kv[1], kv[0]))
        assert patterns[key]["executions"] == len(group)
        assert patterns[key]["success_rate"] == pytest.approx(group.success.mean())
        assert patterns[key]["p50_latency_ms"] == pytest.approx(np.percentile(group.duration_ms, 50))
        assert (patterns[key]["top_error_type"], patterns[key]["top_error_share"]) == (
            top[0],
            pytest.approx(top[1] / len(group)),
        )

    assert refresh_summaries(summary="pool-hourly", as_of=NOW) == {"pool-hourly": rows["pool-hourly"]}


# -- apply-retention --------------------------------------------------------------------------------


def test_retention_deletes_exactly_what_is_past_its_age(local_store: DuckDBStore) -> None:
    naive = NOW.replace(tzinfo=None)
    raw_cut, aggregate_cut = naive - timedelta(days=90), naive - timedelta(days=365)
    second = timedelta(seconds=1)
    with local_store.connect() as con:
        for i, moment in enumerate((raw_cut - second, raw_cut, raw_cut + second, naive)):
            con.execute(
                "INSERT INTO executions (execution_id, task_id, timestamp, task_type, target, success, duration_ms) "
                "VALUES (?, 't', ?, 'qa', 'a', true, 1)",
                [f"e{i}", moment],
            )
            con.execute(
                "INSERT INTO routing_decisions (decision_id, task_id, task_type, timestamp, strategy, pick, probability, "
                "reason, candidates) VALUES (?, 't', 'qa', ?, 's', 'a', 1, '', '[]')",
                [f"d{i}", moment],
            )
        for i, moment in enumerate((aggregate_cut - second, aggregate_cut, naive - timedelta(days=100))):
            con.execute(
                "INSERT INTO benchmark_results VALUES (?, 'r', 'a', 'math', 'c', 1, 1, 0, true, NULL, ?)",
                [f"b{i}", moment],
            )
            con.execute(
                "INSERT INTO pool_hourly_performance VALUES (?, 'p', 1, 1, 1, NULL, 1, 1, 0, 0, ?)",
                [
                    moment.replace(minute=0, second=0, microsecond=0),
                    naive,
                ],  # 11:00 (one before the cut), 12:00
            )

    deleted = apply_retention(as_of=NOW)
    assert deleted["executions"] == 1 and deleted["routing_decisions"] == 1
    assert deleted["benchmark_results"] == 1 and deleted["pool_hourly_performance"] == 1
    assert {r["execution_id"] for r in local_store.query("SELECT execution_id FROM executions")} == {
        "e1",
        "e2",
        "e3",
    }
    assert {r["result_id"] for r in local_store.query("SELECT result_id FROM benchmark_results")} == {
        "b1",
        "b2",
    }
    assert sum(apply_retention(as_of=NOW).values()) == 0
    assert apply_retention(raw_days=1, aggregate_days=1, as_of=NOW)["executions"] == 2  # all but e3 (now)


# -- check-health -----------------------------------------------------------------------------------


def health_data(
    store: DuckDBStore, start: datetime, minutes: int, plan: dict[str, tuple[int, float, float]]
) -> None:
    """Per target (calls, success rate, cost per call), spread evenly over `minutes` from `start`."""
    records = []
    for target, (calls, rate, cost) in plan.items():
        for i in range(calls):
            records.append(ExecutionRecord(
                task_id=f"{target}-{start:%H%M}-{i}", target=target, task_type="qa", success=i < round(calls * rate),
                duration_ms=50, actual_cost=cost, timestamp=start + timedelta(minutes=minutes * i / calls),
            ))  # fmt: skip
    spool(store, records)
    store.ingest()


def decisions(store: DuckDBStore, start: datetime, minutes: int, picks: dict[str, int]) -> None:
    rows = [(target, i) for target, count in picks.items() for i in range(count)]
    with store.connect() as con:
        for j, (target, _) in enumerate(rows):
            moment = (start + timedelta(minutes=minutes * j / len(rows))).replace(tzinfo=None)
            con.execute(
                "INSERT INTO routing_decisions (decision_id, task_id, task_type, timestamp, strategy, pick, probability, "
                "reason, candidates) VALUES (?, 't', 'qa', ?, 's', ?, 1, '', '[]')",
                [f"{start:%H%M}-{j}", moment, target],
            )


@pytest.fixture
def emitted(monkeypatch) -> list[dict]:
    events: list[dict] = []
    monkeypatch.setattr(health, "emit_event", lambda **kw: events.append(kw))
    return events


def test_health_detects_degradation_cost_spike_and_routing_shift_once(
    local_store: DuckDBStore, emitted: list[dict]
) -> None:
    baseline_start = NOW - timedelta(hours=24, minutes=15)
    health_data(local_store, baseline_start, 24 * 60, {"a": (200, 0.97, 0.001), "b": (200, 0.96, 0.002)})
    health_data(local_store, NOW - timedelta(minutes=14), 14, {"a": (30, 0.5, 0.001), "b": (30, 0.9, 0.0075)})
    decisions(local_store, baseline_start, 24 * 60, {"a": 200, "b": 200})
    decisions(local_store, NOW - timedelta(minutes=14), 14, {"a": 10, "b": 90})

    report = check_health(as_of=NOW)
    assert sorted(report.active) == ["cost-spike:b", "degraded:a", "routing-shift:adaptive-router.routing"]
    json.dumps([e["payload"] for e in emitted])  # what emit_event will serialise
    by_event = {e["event"]: e for e in emitted}
    assert set(by_event) == {
        "adaptive-router.target.degraded",
        "adaptive-router.target.cost-spike",
        "adaptive-router.routing.shifted",
    }
    degraded = by_event["adaptive-router.target.degraded"]
    assert degraded["resource"]["prefect.resource.id"] == "adaptive-router.target.a"
    assert degraded["payload"]["success_rate"] == 0.5 and degraded["payload"]["attempts"] == 30
    spike = by_event["adaptive-router.target.cost-spike"]["payload"]
    assert spike["ratio"] == pytest.approx(0.0075 / 0.002)
    shift = by_event["adaptive-router.routing.shifted"]["payload"]
    observed = np.array([[10, 90], [200, 200]])
    expected = observed.sum(1, keepdims=True) * observed.sum(0) / observed.sum()
    yates = (((np.abs(observed - expected) - 0.5) ** 2) / expected).sum()  # 2x2: Yates' correction
    assert shift["chi2"] == pytest.approx(yates) and shift["p_value"] == pytest.approx(
        stats.chi2.sf(yates, 1)
    )

    emitted.clear()
    assert check_health(as_of=NOW + timedelta(seconds=30)).transitions == []  # still degraded: no new events
    assert emitted == []

    later = NOW + timedelta(minutes=30)
    health_data(local_store, later - timedelta(minutes=14), 14, {"a": (40, 0.95, 0.001)})
    report = check_health(as_of=later)
    assert [(t.event, t.resource) for t in report.transitions] == [
        ("adaptive-router.target.recovered", "adaptive-router.target.a")
    ]
    assert "cost-spike:b" in report.active  # b has no recent calls: not enough data to clear it


def test_health_without_enough_data_raises_nothing(local_store: DuckDBStore, emitted: list[dict]) -> None:
    health_data(local_store, NOW - timedelta(minutes=10), 10, {"a": (5, 0.0, 0.01)})
    assert check_health(as_of=NOW).active == [] and emitted == []


# -- run-benchmarks ---------------------------------------------------------------------------------


@pytest.fixture
def bench_runtime(prefect_harness, store: DuckDBStore) -> Iterator[RoutingRuntime]:
    """An always-right model, an always-wrong one and a target nobody answers at."""
    config = FleetConfig(seed=3, models=(
        ModelSpec(name="oracle", quality={c: 1.0 for c in Category}, latency=Latency(median_ms=4, sigma=0.1)),
        ModelSpec(name="dunce", quality={c: 0.0 for c in Category}, latency=Latency(median_ms=2, sigma=0.1)),
    ))  # fmt: skip
    dead = OpenAICompatibleTarget(
        target_name="dead", base_url="http://127.0.0.1:9/v1", model="x", timeout_seconds=2
    )
    with FleetServer(config) as fleet:
        runtime = RoutingRuntime.build([*fleet_targets(config, fleet.base_url), dead], store)
        register_runtime("bench-test", runtime)
        yield runtime
        unregister_runtime("bench-test")


def test_benchmarks_score_known_answers_skip_the_dead_and_publish_capabilities(
    bench_runtime, store: DuckDBStore
) -> None:
    from blocks.benchmarks import load_suite

    suite = {c.id: c for c in load_suite().cases}
    report = run_benchmarks(runtime="bench-test")
    assert report.targets == ["oracle", "dunce"] and list(report.skipped) == ["dead"]
    assert report.cases == 24 and report.failures == 24  # every dunce answer, no oracle answer

    results = store.query("SELECT * FROM benchmark_results")
    assert len(results) == 48 and {r["run_id"] for r in results} == {report.run_id}
    for row in results:
        expected = suite[row["case_id"]].expected
        if row["target"] == "oracle":
            assert (row["quality"], row["success"], row["error_type"]) == (100.0, True, None)
        else:  # a wrong answer can only earn the length part of the grade
            parts = sum(
                x is not None and x != () and x != 0
                for x in (expected.answer, expected.keywords, expected.required, expected.min_length)
            )
            assert row["quality"] <= 100.0 * bool(expected.min_length) / parts
            assert (row["success"], row["error_type"]) == (False, "wrong_answer")

    table = CapabilityTable.from_results(
        BenchmarkResult(
            target=r["target"],
            category=r["category"],
            case_id=r["case_id"],
            quality=r["quality"],
            duration_ms=r["duration_ms"],
            cost=r["cost"],
        )
        for r in results
    )
    assert report.capabilities == table.to_dict()
    scores = {
        (r["target"], r["category"]): r["score"] for r in store.query("SELECT * FROM capability_scores")
    }
    assert scores == {(t, Category(c)): s for t, by in table.to_dict().items() for c, s in by.items()}
    assert all(table.get("oracle", c) > table.get("dunce", c) for c in Category)
    assert load_published(published_path(store)).capabilities == table.to_dict()

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        (artifact,) = client.read_latest_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["benchmark-report"]))
        )
    assert f"| oracle | {table.get('oracle', Category.CODING):.1f} |" in artifact.data
    assert "## Skipped" in artifact.data and "**dead**" in artifact.data


# -- drain-queue and ingest-outcomes ------------------------------------------------------------------


def test_drain_routes_due_tasks_oldest_first_and_marks_them(
    prefect_harness, fleet, store: DuckDBStore
) -> None:
    runtime = RoutingRuntime.build(fleet_targets(fleet.config, fleet.base_url)[:2], store,
                                   WeightedScore(WeightedScoreConfig(min_samples=1000)))  # fmt: skip
    register_runtime("drain-test", runtime)
    store.upgrade()
    naive = NOW.replace(tzinfo=None)
    due = [Task(task_type="greeting", payload=f"Say hello {i}.") for i in range(3)]
    later = Task(task_type="greeting", payload="Later.")
    with store.connect() as con:
        for i, task in enumerate(due):
            con.execute("INSERT INTO queued_tasks VALUES (?, ?, 'budget', ?, NULL, 'queued')",
                        [task.id, task.model_dump_json(), naive - timedelta(minutes=10 - i)])  # fmt: skip
        con.execute(
            "INSERT INTO queued_tasks VALUES ('bad', '{\"payload\": 1}', 'budget', ?, NULL, 'queued')",
            [naive],
        )
        con.execute("INSERT INTO queued_tasks VALUES (?, ?, 'budget', ?, ?, 'queued')",
                    [later.id, later.model_dump_json(), naive, datetime(2999, 1, 1)])  # fmt: skip
    try:
        report = drain_queue(runtime="drain-test", limit=3)
        assert (report.claimed, report.done, report.failed, report.invalid) == (3, 3, 0, 0)
        status = {r["task_id"]: r["status"] for r in store.query("SELECT task_id, status FROM queued_tasks")}
        assert (
            [status[t.id] for t in due] == ["done"] * 3
            and status["bad"] == "queued"
            and status[later.id] == "queued"
        )
        assert store.query("SELECT count(DISTINCT task_id) AS n FROM executions")[0]["n"] == 3

        report = drain_queue(runtime="drain-test")
        assert (report.claimed, report.invalid, report.failed) == (1, 1, 1)
        reason = store.query("SELECT status, reason FROM queued_tasks WHERE task_id = 'bad'")[0]
        assert reason["status"] == "failed" and reason["reason"].startswith("invalid task: task_type: Field required")
    finally:
        unregister_runtime("drain-test")


def test_ingest_outcomes_sweeps_what_a_run_left_in_the_spool(local_store: DuckDBStore) -> None:
    rng = np.random.default_rng(2)
    spool(local_store, synthetic(rng, "a", "qa", 25, 0.5, 10))
    report = ingest_outcomes()
    assert (report.segments, report.executions, report.duplicates) == (1, 25, 0)
    assert ingest_outcomes().segments == 0


# -- the published state file -------------------------------------------------------------------------


def test_reader_loads_only_new_publications_and_names_a_corrupt_file(store: DuckDBStore) -> None:
    store.upgrade()
    reader = PublishedReader(published_path(store))
    assert reader.changed() is None  # nothing published yet
    first = publish(store, "test")
    state = reader.changed()
    assert state is not None and state.created_at == first.created_at
    assert reader.changed() is None
    second = publish(store, "test again")
    assert reader.changed().created_at == second.created_at
    assert [r["reason"] for r in store.query("SELECT reason FROM published_states ORDER BY created_at")] == [
        "test",
        "test again",
    ]
    assert list(published_path(store).parent.glob(".state-*")) == []  # no temporary file left behind
    published_path(store).write_text('{"format": 1, "priors": [{"target": ""}]}')
    with pytest.raises(ValueError, match=r"published state .*state\.json is invalid: priors\.0\.target: String should have at least 1"):
        reader.changed()
