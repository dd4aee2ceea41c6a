"""Telemetry sampling: deterministic per id, ~rate of the rows stored, weighted statistics equal to the
unsampled truth, and every outcome still reaching the learners and the budgets."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import stats as sps

from blocks.settings import RouterSettings
from blocks.store.budgets import spend_rows
from blocks.store.history import performance
from blocks.store.stats import recalculate
from blocks.store.summaries import Summary, rebuild
from blocks.targets.http import OpenAICompatibleTarget
from flows.runtime import RoutingRuntime
from routing.calls.chain import AttemptChain
from routing.calls.retry import RetryPolicy
from routing.calls.sampling import DetailSampling, keeps
from routing.models import AttemptResult, ErrorType, ExecutionRecord, RoutedResult, Task
from routing.spend.budgets import Budget, Period
from routing.stats.significance import wilson_interval

Z = 4.5
"""Tolerance in standard errors of the Horvitz-Thompson estimator (two-sided p ~ 7e-6 per check)."""

TRUTH = {"a": (0.9, 12.0, 0.002), "b": (0.6, 30.0, 0.0005)}
"""Per target: success probability, mean latency (ms, exponential) and cost per call."""


def test_the_decision_is_a_stable_hash_of_the_id() -> None:
    ids = [f"decision-{i}" for i in range(20_000)]
    first = [keeps(i, 0.1) for i in ids]
    assert first == [keeps(i, 0.1) for i in ids]  # same answer every time, in any process
    assert all(keeps(i, 1.0) for i in ids)
    assert all(keeps(i, 0.2) for i, kept in zip(ids, first) if kept)  # nested: a higher rate keeps a superset
    k = sum(first)
    assert sps.binom(len(ids), 0.1).ppf(1e-6) <= k <= sps.binom(len(ids), 0.1).isf(1e-6)


def test_rates_are_validated_and_looked_up_per_task_type() -> None:
    sampling = DetailSampling(default_rate=0.5, rates={"qa": 0.01})
    assert sampling.rate("qa") == 0.01 and sampling.rate("code") == 0.5 and sampling.samples
    assert not DetailSampling().samples
    weights = {sampling.weight(f"id-{i}", "qa") for i in range(2_000)}
    assert weights == {None, 100.0}
    for bad in ({"detail_sample_rate": 0}, {"detail_sample_rate": 1.01}, {"detail_sample_rates": {"qa": -0.1}},
                {"detail_sample_rates": {"qa": math.nan}}, {"detail_sample_rat": 0.5}):  # fmt: skip
        with pytest.raises(ValidationError):
            RouterSettings(targets=["t/a"], **bad)
    settings = RouterSettings(targets=["t/a"], detail_sample_rates={"qa": 0.1}, emit_events=True)
    assert settings.sampling() == DetailSampling(rates={"qa": 0.1})


def _runtime(store, sampling: DetailSampling, budget: Budget | None = None, emit_events: bool = False):
    targets = [
        OpenAICompatibleTarget(target_name=name, base_url="http://127.0.0.1:9/v1", model=name, tier="small")
        for name in TRUTH
    ]  # never called: the test makes the calls
    runtime = RoutingRuntime.build(targets, store, retry=RetryPolicy(max_retries=0), budgets=[budget] if budget else (),
                                   sampling=sampling, emit_events=emit_events)  # fmt: skip
    observed: list[str] = []
    observe = runtime.router.observe
    runtime.router.observe = lambda outcome: (observed.append(outcome.target), observe(outcome))[1]
    return runtime, observed


def _route(runtime: RoutingRuntime, tasks: int, seed: int = 7, task_type: str = "qa") -> list[RoutedResult]:
    """Route `tasks` tasks through the real chain; calls succeed, take time and cost per TRUTH."""
    rng = np.random.default_rng(seed)

    def call(target: str, task: Task) -> AttemptResult:
        p, latency, cost = TRUTH[target]
        ok = bool(rng.random() < p)
        return AttemptResult(target=target, ok=ok, output="answer" if ok else None, cost=cost,
                             duration_ms=float(rng.exponential(latency)),
                             error_type=None if ok else ErrorType.SERVER_ERROR)  # fmt: skip

    results = []
    for i in range(tasks):
        chain = AttemptChain.start(runtime, Task(id=f"t{seed}-{i}", task_type=task_type, payload="What is 2+2?"))
        results.append(chain.run(runtime, call, sleep=lambda _: None))
    return results


def _ht_bound(values: np.ndarray, rate: float) -> float:
    """Z standard errors of the Horvitz-Thompson total of `values` under Bernoulli(rate) sampling."""
    return Z * math.sqrt((1 - rate) / rate * float(np.sum(values**2)))


@pytest.mark.slow
def test_a_tenth_of_the_rows_estimate_every_outcome(store) -> None:
    rate, tasks = 0.1, 3_000
    budget = Budget(period=Period.MONTHLY, limit=1_000.0)
    runtime, observed = _runtime(store, DetailSampling(default_rate=rate), budget)
    results = _route(runtime, tasks)
    attempts = [a for r in results for a in r.attempts]

    # learners and budgets saw every outcome, stored or not
    assert len(observed) == len(attempts)
    now = datetime.now(UTC)
    assert runtime.ledger.spent(budget, now) == pytest.approx(sum(a.actual_cost for a in attempts))

    store.ingest()
    decisions = store.query("SELECT decision_id, weight FROM routing_decisions")
    kept = {d["decision_id"] for d in decisions}
    binomial = sps.binom(tasks, rate)
    assert binomial.ppf(1e-6) <= len(kept) <= binomial.isf(1e-6)
    assert {d["weight"] for d in decisions} == {1 / rate}
    rows = store.query("SELECT execution_id, decision_id, weight FROM executions")
    assert {r["decision_id"] for r in rows} == kept  # a kept decision keeps all its attempts
    assert len(rows) == sum(len(r.attempts) for r in results if r.decision.id in kept)

    # weighted counts, success rates, mean latency and spend against the truth of every attempt
    by_target = {row["target"]: row for row in performance(store)}
    for target in TRUTH:
        mine = [a for a in attempts if a.target == target]
        ok = np.array([a.success for a in mine], dtype=float)
        ones = np.ones(len(mine))
        row = by_target[target]
        assert abs(row["calls"] - len(mine)) <= _ht_bound(ones, rate)
        assert abs(row["successes"] - ok.sum()) <= _ht_bound(ok, rate) + 0.5
        assert abs(row["spent"] - len(mine) * TRUTH[target][2]) <= _ht_bound(ones * TRUTH[target][2], rate)
        # a ratio estimator: its error is that of the total of the residuals, over N
        rate_truth = ok.mean()
        assert abs(row["successes"] / row["calls"] - rate_truth) <= _ht_bound(ok - rate_truth, rate) / len(mine) + 1e-3

    with store.connect() as con:
        recalculate(con, datetime.now(UTC).replace(tzinfo=None), full=True)
    stored_ids = {r["execution_id"] for r in rows}
    for row in store.query("SELECT target, n, success_rate, success_low, success_high, effective_n, "
                           "mean_latency_ms FROM target_stats"):  # fmt: skip
        stored = sum(1 for a in attempts if a.execution_id in stored_ids and a.target == row["target"])
        assert row["effective_n"] == pytest.approx(stored)  # the evidence is the rows kept, not the estimate
        mine = np.array([a.duration_ms for a in attempts if a.target == row["target"]])
        assert abs(row["mean_latency_ms"] - mine.mean()) <= _ht_bound(mine - mine.mean(), rate) / len(mine)
        # the interval is as wide as the kept rows allow (Wilson at the effective n), not 1/rate times narrower
        low, high = wilson_interval(row["success_rate"] * stored, stored, 0.95)
        assert (row["success_low"], row["success_high"]) == pytest.approx((low, high))

    # the budget spend a new router starts from is the weighted sum: the same estimate
    (spend,) = spend_rows(store, [budget], now)
    total = sum(a.actual_cost for a in attempts)
    per_attempt = np.array([a.actual_cost for a in attempts])
    assert abs(spend.spent - total) <= _ht_bound(per_attempt, rate)

    with store.connect() as con:
        rebuild(con, Summary.SPEND, now.replace(tzinfo=None), 90)
    (daily,) = store.query("SELECT sum(executions) AS n, sum(total_cost) AS cost FROM spend_daily")
    assert abs(daily["n"] - len(attempts)) <= _ht_bound(np.ones(len(attempts)), rate) + 2
    assert daily["cost"] == pytest.approx(spend.spent)


def test_without_sampling_nothing_changes(store) -> None:
    runtime, observed = _runtime(store, DetailSampling())
    results = _route(runtime, 60)
    attempts = [a for r in results for a in r.attempts]
    store.ingest()
    assert len(store.query("SELECT 1 FROM routing_decisions")) == 60
    (row,) = store.query("SELECT count(*) AS n, sum(weight) AS w FROM executions")
    assert row["n"] == row["w"] == len(attempts) == len(observed)
    calls = {r["target"]: r for r in performance(store)}
    for target in TRUTH:
        latencies = [a.duration_ms for a in attempts if a.target == target]
        assert calls[target]["calls"] == len(latencies)
        assert calls[target]["p50"] == pytest.approx(np.percentile(latencies, 50))  # linear, as before


def test_weighted_percentiles_and_means_match_numpy(store) -> None:
    """Rows of one group kept at different rates (a rate changed): numpy's weighted inverted CDF and
    weighted mean are the reference."""
    rng = np.random.default_rng(3)
    latencies = rng.lognormal(3, 1, 400)
    weights = rng.choice([1.0, 10.0, 100.0], 400)
    start = datetime(2026, 1, 5, 12, tzinfo=UTC)
    for i, (latency, weight) in enumerate(zip(latencies, weights)):
        store.record_execution(ExecutionRecord(task_id=f"t{i}", task_type="qa", target="a", success=i % 4 != 0,
                                               duration_ms=float(latency), actual_cost=0.001, weight=float(weight),
                                               timestamp=start + timedelta(seconds=i)))  # fmt: skip
    store.ingest()
    (row,) = performance(store)
    assert row["p50"] == pytest.approx(np.quantile(latencies, 0.5, weights=weights, method="inverted_cdf"))
    assert row["p95"] == pytest.approx(np.quantile(latencies, 0.95, weights=weights, method="inverted_cdf"))
    assert row["calls"] == round(weights.sum())
    assert row["successes"] == round(weights[np.arange(400) % 4 != 0].sum())
    with store.connect() as con:
        recalculate(con, datetime(2026, 1, 6), full=True)
    (stats,) = store.query("SELECT mean_latency_ms, latency_sd_ms, effective_n FROM target_stats")
    assert stats["mean_latency_ms"] == pytest.approx(np.average(latencies, weights=weights))
    n_eff = weights.sum() ** 2 / (weights**2).sum()
    assert stats["effective_n"] == pytest.approx(n_eff)
    variance = np.average((latencies - np.average(latencies, weights=weights)) ** 2, weights=weights)
    assert stats["latency_sd_ms"] == pytest.approx(math.sqrt(variance * n_eff / (n_eff - 1)))


@pytest.fixture
def captured_events(monkeypatch):
    """Prefect's asserting events client (what its `asserting_events_worker` fixture installs), with
    its worker started under an API URL as a deployed router has one, so that `emit_event` sends to it
    and nothing starts an ephemeral server; nothing listens on the URL."""
    from prefect.events.clients import AssertingEventsClient
    from prefect.events.worker import EventsWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        worker = EventsWorker.instance(AssertingEventsClient)
        monkeypatch.setattr(EventsWorker, "instance", lambda *_: worker)

        def drained() -> list:
            worker.drain()
            return [e for e in worker._client.events if e.event.startswith("adaptive-router.")]

        yield drained
        worker.drain()


def test_events_only_for_the_sampled(store, captured_events) -> None:
    runtime, observed = _runtime(store, DetailSampling(rates={"qa": 0.2}), emit_events=True)
    results = _route(runtime, 200)
    events = captured_events()
    store.ingest()
    decisions = {r["decision_id"] for r in store.query("SELECT decision_id FROM routing_decisions")}
    executions = {r["execution_id"]: r["weight"] for r in store.query("SELECT execution_id, weight FROM executions")}
    assert 0 < len(decisions) < 200 and len(observed) == sum(len(r.attempts) for r in results)
    by_name: dict[str, list] = {}
    for event in events:
        by_name.setdefault(event.event, []).append(event)
    assert set(by_name) == {"adaptive-router.routing.decision", "adaptive-router.execution.recorded"}
    assert {e.resource.id.rsplit(".", 1)[1] for e in by_name["adaptive-router.routing.decision"]} == decisions
    recorded = by_name["adaptive-router.execution.recorded"]
    assert {e.resource.id.rsplit(".", 1)[1]: e.payload["weight"] for e in recorded} == executions
    assert all(e.resource["adaptive-router.task-type"] == "qa" for e in events)
    assert {e.related[0].id for e in recorded} <= {f"adaptive-router.target.{t}" for t in TRUTH}


def test_no_events_unless_asked(store, captured_events) -> None:
    runtime, _ = _runtime(store, DetailSampling())
    _route(runtime, 20)
    assert captured_events() == []


@pytest.mark.slow
def test_a_distributed_worker_spools_only_the_sampled_attempts(store, tmp_path) -> None:
    """The Dask path: the flow decides the weight (runtime.detail_weight) and the worker spools by it."""
    from tasks.calls import SpooledCall, process_spool, spool_calls

    runtime, _ = _runtime(store, DetailSampling(default_rate=0.5))
    spool = tmp_path / "worker-spool"
    task = Task(id="t-dask", task_type="qa", payload="What is 2+2?")
    decisions = [runtime.router.choose(task) for _ in range(30)]
    weights = [runtime.detail_weight(d) for d in decisions]
    assert {None, 2.0} == set(weights)
    calls = [SpooledCall(target=runtime.target(d.pick), task=task, decision=d, attempt=1, estimate=0.0, weight=w)
             for d, w in zip(decisions, weights)]  # fmt: skip
    results = spool_calls(calls, str(spool))
    process_spool(str(spool)).close()
    assert len(results) == 30  # every attempt goes back to the flow to learn from
    worker_store = store.model_copy(update={"spool_directory": str(spool)})
    assert worker_store.ingest().executions == sum(w is not None for w in weights)
    assert {r["decision_id"] for r in store.query("SELECT decision_id FROM executions WHERE weight = 2")} == {
        d.id for d, w in zip(decisions, weights) if w is not None
    }
