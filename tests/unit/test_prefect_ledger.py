"""Budgets on the Prefect server's global concurrency limits: the bound with 3 processes, release,
overshoot, rollover, seeding and configuration errors (a real server: Prefect's test harness)."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
from prefect.settings import PREFECT_API_URL, temporary_settings
from pydantic import ValidationError

from blocks.store import DuckDBStore
from blocks.store.ledger import SharedBudgetLedger, open_ledger, prefect_ledger_options
from blocks.store.prefect_ledger import RECHECK_SECONDS, PrefectBudgetLedger
from routing.errors import ConfigError, LedgerError
from routing.models import AttemptResult, Price, Target, Task, utcnow
from routing.spend.budgets import Budget, BudgetExceededError, BudgetLedger, Period, Scope, SpendRow
from tests.ledger_support import BUDGET, LIMIT, NOW, run_three

TASK, TARGET = Task(task_type="qa", payload="x"), Target(name="a")
TARGET_BUDGET = Budget(period=Period.DAILY, scope=Scope.TARGET, scope_value="a", limit=0.5)
UNREACHABLE = "http://router:s3cret@127.0.0.1:9/api"  # a closed loopback port, with credentials never to log


def fresh(*budgets: Budget, **options) -> PrefectBudgetLedger:
    """A ledger in a namespace of its own: the harness's server is shared by the whole session."""
    return PrefectBudgetLedger(budgets or [BUDGET], namespace=f"t-{uuid.uuid4().hex[:12]}", **options)


def server_limit(name: str):
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name)


@pytest.mark.slow
@pytest.mark.parametrize("overshoot", [0.0, 0.2])
def test_three_processes_share_one_budget_on_the_prefect_server(prefect_harness, monkeypatch, overshoot) -> None:
    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())  # the spawned processes' server
    location = f"prefect?namespace=t-{uuid.uuid4().hex[:12]}"
    results = run_three(location, overshoot)
    charged, over = sum(r[0] for r in results), sum(r[1] for r in results)
    # The stated bound: the limit plus the sum of reported overshoots (0 when estimates are upper bounds).
    assert charged <= LIMIT + over + 1e-9
    assert sum(r[0] > 0 for r in results) >= 2  # they competed
    spent = open_ledger([BUDGET], location).spent(BUDGET, NOW)
    # The server's counter: every actual cost rounded up to a micro-dollar, capped at the limit; an
    # overshoot that found no room when charged (taken by a reservation released since) is all it misses.
    assert min(charged, LIMIT) - over - 1e-9 <= spent <= LIMIT
    if overshoot == 0.0:
        assert over == 0.0 and charged <= LIMIT and spent == pytest.approx(charged, abs=1e-3)


@pytest.mark.slow
def test_reserve_release_and_overshoot(prefect_harness) -> None:
    ledger = fresh()
    first = ledger.reserve(TASK, TARGET, 0.6, NOW)
    with pytest.raises(BudgetExceededError, match=r"\$0.6 spent") as refused:
        ledger.reserve(TASK, TARGET, 0.6, NOW)
    assert refused.value.policy == "reject"
    assert ledger.reconcile(first, 0.1) == 0.0  # releases 0.5
    assert ledger.spent(BUDGET, NOW) == pytest.approx(0.1)
    second = ledger.reserve(TASK, TARGET, 0.6, NOW)
    assert ledger.reconcile(second, 0.7) == pytest.approx(0.1)  # charged although it blocks others
    assert ledger.spent(BUDGET, NOW) == pytest.approx(0.8)
    assert ledger.remaining(TASK, TARGET, NOW) == pytest.approx(0.2)
    third = ledger.reserve(TASK, TARGET, 0.2, NOW)
    assert ledger.reconcile(third, 0.5) == pytest.approx(0.3)  # does not fit: charged up to the limit
    assert ledger.spent(BUDGET, NOW) == pytest.approx(LIMIT)
    with pytest.raises(ValueError, match="not in flight"):
        ledger.reconcile(third, 0.5)
    free = ledger.reserve(TASK, TARGET, 0.0, NOW)  # a free call is admitted even with the budget spent
    assert ledger.reconcile(free, 0.0) == 0.0


@pytest.mark.slow
def test_one_reservation_fits_every_budget_or_none(prefect_harness) -> None:
    ledger = fresh(BUDGET, TARGET_BUDGET)
    ledger.reserve(TASK, TARGET, 0.4, NOW)
    with pytest.raises(BudgetExceededError, match="target 'a'") as refused:
        ledger.reserve(TASK, TARGET, 0.2, NOW)
    assert [v.budget for v in refused.value.check.violations] == [TARGET_BUDGET]
    assert ledger.spent(BUDGET, NOW) == pytest.approx(0.4)  # the overall budget was not charged either
    ledger.reserve(TASK, Target(name="b"), 0.6, NOW)  # another target: only the overall budget applies
    with pytest.raises(BudgetExceededError) as too_big:
        ledger.reserve(TASK, TARGET, 2.0, NOW)  # more than either limit: rejected, never queued
    assert not any(v.fits_after_reset for v in too_big.value.check.violations)


@pytest.mark.slow
def test_a_new_period_is_a_new_limit_and_old_ones_are_pruned(prefect_harness) -> None:
    ledger = fresh()
    day1 = ledger.reserve(TASK, TARGET, 0.9, NOW)
    day2 = NOW + timedelta(days=1)
    ledger.reserve(TASK, TARGET, 0.9, day2)  # the reset: a fresh limit, no race with day 1's
    assert ledger.reconcile(day1, 0.5) == 0.0  # settles after the reset, against day 1
    assert ledger.spent(BUDGET, NOW) == pytest.approx(0.5)
    assert ledger.spent(BUDGET, day2) == pytest.approx(0.9)
    old = ledger.limit_name((BUDGET.key, NOW.replace(hour=0)))
    assert ledger.prune(NOW + timedelta(days=2)) == [old]  # day 2 ended less than a day before
    assert ledger.spent(BUDGET, NOW) == 0.0 and ledger.spent(BUDGET, day2) == pytest.approx(0.9)
    assert fresh().prune(NOW + timedelta(days=30)) == []  # another namespace's limits are not its own


@pytest.mark.slow
def test_the_store_seeds_only_limits_the_server_does_not_have(prefect_harness) -> None:
    ledger = fresh()
    row = SpendRow(period=Period.DAILY, scope=Scope.OVERALL, key=None, period_start=NOW.replace(hour=0), spent=0.7)
    ledger.seed([row])
    assert ledger.spent(BUDGET, NOW) == pytest.approx(0.7)
    again = PrefectBudgetLedger([BUDGET], namespace=ledger.namespace)  # another process, a stale aggregate
    again.seed([row.model_copy(update={"spent": 0.2})])
    assert again.spent(BUDGET, NOW) == pytest.approx(0.7)
    with pytest.raises(BudgetExceededError):
        again.reserve(TASK, TARGET, 0.4, NOW)


@pytest.mark.slow
def test_limits_changed_on_the_server(prefect_harness, caplog) -> None:
    ledger = fresh(BUDGET, Budget(period=Period.DAILY, scope=Scope.TASK_TYPE, scope_value="q/a", limit=0.5))
    ledger.reserve(Task(task_type="q/a", payload="x"), TARGET, 0.1, NOW)  # '/' is banned in names: replaced
    name = ledger.limit_name((BUDGET.key, NOW.replace(hour=0)))
    with get_client(sync_client=True) as client:
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=10))
    with caplog.at_level(logging.WARNING, logger="adaptive_router.ledger"):
        PrefectBudgetLedger([BUDGET], namespace=ledger.namespace).reserve(TASK, TARGET, 0.1, NOW)
    assert server_limit(name).limit == 1_000_000 and "set back" in caplog.text
    with get_client(sync_client=True) as client:
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active=False))
    with pytest.raises(LedgerError, match="switched off"):
        PrefectBudgetLedger([BUDGET], namespace=ledger.namespace).reserve(TASK, TARGET, 0.1, NOW)
    # A process already using the limit trusts its last look for RECHECK_SECONDS, then looks again.
    ledger.reconcile(ledger.reserve(TASK, TARGET, 0.1, NOW), 0.1)
    ledger._ready[name] -= RECHECK_SECONDS  # that long ago
    with pytest.raises(LedgerError, match="switched off"):
        ledger.reserve(TASK, TARGET, 0.1, NOW)


@pytest.mark.slow
def test_a_limit_deleted_while_settling_is_logged_not_raised(prefect_harness, caplog) -> None:
    ledger = fresh()
    name = ledger.limit_name((BUDGET.key, NOW.replace(hour=0)))
    held = ledger.reserve(TASK, TARGET, 0.1, NOW)
    with get_client(sync_client=True) as client:
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=10))  # to be set back
    read = ledger._read

    def read_then_pruned(client, limit_name):  # a pruner deletes the limit between the read and the update
        found = read(client, limit_name)
        client.delete_global_concurrency_limit_by_name(limit_name)
        return found

    ledger._read, ledger._ready = read_then_pruned, {}
    with caplog.at_level(logging.WARNING, logger="adaptive_router.ledger"):
        assert ledger.reconcile(held, 0.3) == pytest.approx(0.2)  # the call was made: no exception
        ledger.record("qa", "a", 0.1, NOW)
    assert caplog.text.count("settling a call") == 1 and caplog.text.count("recording a cost") == 1


def test_an_unreachable_server_refuses_reservations_and_never_loses_an_outcome(caplog) -> None:
    with temporary_settings(updates={PREFECT_API_URL: UNREACHABLE}):
        ledger = fresh()
        with pytest.raises(LedgerError, match="127.0.0.1:9") as refused:
            ledger.reserve(TASK, TARGET, 0.1, NOW)
        assert "s3cret" not in str(refused.value)
        free = ledger.reserve(TASK, TARGET, 0.0, NOW)  # a free call needs no reservation
        with caplog.at_level(logging.WARNING, logger="adaptive_router.ledger"):
            assert ledger.reconcile(free, 0.1) == pytest.approx(0.1)
            ledger.record("qa", "a", 0.1, NOW)
        assert caplog.text.count("127.0.0.1:9") == 2 and "s3cret" not in caplog.text


def _unreachable_runtime(store):
    """A runtime whose Prefect server went down after start-up (one down at start fails the start)."""
    from blocks.targets.http import OpenAICompatibleTarget
    from flows.runtime import RoutingRuntime

    target = OpenAICompatibleTarget(target_name="a", base_url="http://127.0.0.1:9/v1", model="a", tier="small",
                                    price=Price(per_call=0.01))  # fmt: skip
    runtime = RoutingRuntime.build([target], store, budgets=[BUDGET])
    runtime.ledger = fresh()
    return runtime


def test_an_unreachable_server_refuses_routed_attempts_cleanly(store) -> None:
    from routing.calls.chain import AttemptChain

    def never_called(name: str, task: Task) -> AttemptResult:
        raise AssertionError(f"{name} was called without its budget checked")

    with temporary_settings(updates={PREFECT_API_URL: UNREACHABLE}):
        runtime = _unreachable_runtime(store)
        result = AttemptChain.start(runtime, TASK).run(runtime, never_called, sleep=lambda s: None)
        runtime.ledger._client()  # a client to close
        runtime.close()
    assert not result.success and not result.attempts
    assert result.failures["a"].startswith("budget_exceeded: refused, the budget ledger cannot be used")
    assert "127.0.0.1:9" in result.failures["a"] and "s3cret" not in result.failures["a"]
    assert runtime.ledger._open is None  # the runtime closed the ledger's client


def test_metrics_leave_out_a_ledger_that_cannot_be_read(store, caplog) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from flows.gateway.metrics import GatewayMetrics

    with temporary_settings(updates={PREFECT_API_URL: UNREACHABLE}):
        metrics = GatewayMetrics(_unreachable_runtime(store))
        with caplog.at_level(logging.WARNING, logger="adaptive_router.gateway"):
            scrapes = [metrics.render().decode() for _ in range(2)]
    for scrape in scrapes:
        samples = {s.name for f in text_string_to_metric_families(scrape) for s in f.samples}
        assert "adaptive_router_budget_limit_dollars" in samples and "adaptive_router_breaker_state" in samples
        assert "adaptive_router_budget_remaining_dollars" not in samples
    assert caplog.text.count("budget remaining left out") == 1 and "s3cret" not in caplog.text


def test_configuration_errors(monkeypatch, tmp_path) -> None:
    assert prefect_ledger_options("prefect") == {}
    assert prefect_ledger_options("prefect?unit=0.0001&namespace=team-a") == {"unit": 1e-4, "namespace": "team-a"}
    assert prefect_ledger_options(str(tmp_path / "ledger.sqlite")) is None
    for location, error in [
        ("prefect?units=1", "unknown option 'units'"), ("prefect?unit=-1", "unit must be"),
        ("prefect?unit=abc", "unit must be"), ("prefect?namespace=a/b", "namespace must be"),
        ("prefect?unit", "expected prefect"),
    ]:  # fmt: skip
        with pytest.raises(ConfigError, match=error):
            prefect_ledger_options(location)
    with pytest.raises(ValidationError, match="budget_ledger"):
        DuckDBStore(database=str(tmp_path / "r.duckdb"), budget_ledger="prefect?unit=0")
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        with pytest.raises(ConfigError, match="coarser unit"):
            PrefectBudgetLedger([Budget(period=Period.MONTHLY, limit=5000.0)])
        assert PrefectBudgetLedger([Budget(period=Period.MONTHLY, limit=5000.0)], unit=1e-4).unit == 1e-4
    with temporary_settings(restore_defaults={PREFECT_API_URL}), pytest.raises(ConfigError, match="PREFECT_API_URL"):
        PrefectBudgetLedger([BUDGET])


def test_the_store_chooses_the_ledger(monkeypatch, tmp_path) -> None:
    store = DuckDBStore(database=str(tmp_path / "r.duckdb"))
    monkeypatch.delenv("ADAPTIVE_ROUTER_BUDGET_LEDGER", raising=False)
    assert type(open_ledger([BUDGET], store.budget_ledger_location)) is BudgetLedger
    monkeypatch.setenv("ADAPTIVE_ROUTER_BUDGET_LEDGER", str(tmp_path / "ledger.sqlite"))
    assert isinstance(open_ledger([BUDGET], store.budget_ledger_location), SharedBudgetLedger)
    monkeypatch.chdir(tmp_path)
    assert isinstance(open_ledger([BUDGET], Path("./prefect")), SharedBudgetLedger)  # a Path is always a file
    assert (tmp_path / "prefect").is_file()
    store = DuckDBStore(database=str(tmp_path / "r.duckdb"), budget_ledger="prefect?unit=0.0001")
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        ledger = open_ledger([BUDGET], store.budget_ledger_location)
    assert isinstance(ledger, PrefectBudgetLedger) and ledger.unit == 1e-4


@pytest.mark.slow
def test_a_runtime_reserves_on_the_ledger_its_store_names(prefect_harness, tmp_path) -> None:
    from blocks.targets.http import OpenAICompatibleTarget
    from flows.runtime import RoutingRuntime

    location = f"prefect?namespace=t-{uuid.uuid4().hex[:12]}"
    store = DuckDBStore(database=str(tmp_path / "r.duckdb"), budget_ledger=location)
    target = OpenAICompatibleTarget(target_name="a", base_url="http://127.0.0.1:9/v1", model="a", tier="small")
    runtimes = [RoutingRuntime.build([target], store, budgets=[BUDGET]) for _ in range(2)]  # two "processes"
    assert all(isinstance(r.ledger, PrefectBudgetLedger) for r in runtimes)
    held = runtimes[0].admit(TASK, "a", 0.6)
    with pytest.raises(BudgetExceededError):
        runtimes[1].admit(TASK, "a", 0.6)  # the other runtime's reservation counts
    runtimes[0].settle(held, 0.2)
    runtimes[1].settle(runtimes[1].admit(TASK, "a", 0.6), 0.6)
    assert runtimes[1].ledger.spent(BUDGET, utcnow()) == pytest.approx(0.8)
