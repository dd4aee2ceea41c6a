import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from routing.errors import RoutingError
from routing.models import Target, Task
from routing.spend.budgets import (
    Budget,
    BudgetExceededError,
    BudgetLedger,
    Period,
    Reservation,
    Scope,
    SpendRow,
    next_period_start,
    next_reset,
    period_start,
)

UTC = UTC
QA = Task(task_type="qa", payload="hello")
CODE = Task(task_type="code", payload="hello")
A, B = Target(name="a"), Target(name="b")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- periods -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "now", "start", "reset"),
    [
        # Sunday 23:59 is still the week that began on Monday; the next starts at Monday 00:00.
        (Period.WEEKLY, utc(2024, 3, 10, 23, 59), utc(2024, 3, 4), utc(2024, 3, 11)),
        (Period.WEEKLY, utc(2024, 3, 11), utc(2024, 3, 11), utc(2024, 3, 18)),
        # An ISO week spanning the new year: Thursday 31 Dec 2020 belongs to the week of Monday 28 Dec.
        (Period.WEEKLY, utc(2020, 12, 31, 12), utc(2020, 12, 28), utc(2021, 1, 4)),
        (Period.MONTHLY, utc(2024, 12, 31, 23, 59, 59), utc(2024, 12, 1), utc(2025, 1, 1)),
        (Period.DAILY, utc(2024, 12, 31, 23, 59, 59), utc(2024, 12, 31), utc(2025, 1, 1)),
        # Leap February has a 29th; a common one rolls over from the 28th.
        (Period.MONTHLY, utc(2024, 2, 29, 8), utc(2024, 2, 1), utc(2024, 3, 1)),
        (Period.DAILY, utc(2024, 2, 28, 8), utc(2024, 2, 28), utc(2024, 2, 29)),
        (Period.DAILY, utc(2023, 2, 28, 8), utc(2023, 2, 28), utc(2023, 3, 1)),
        (Period.MONTHLY, utc(2023, 1, 31), utc(2023, 1, 1), utc(2023, 2, 1)),
    ],
)
def test_period_boundaries(period, now, start, reset):
    assert period_start(period, now) == start
    assert next_period_start(period, now) == reset


def test_periods_are_computed_in_utc():
    # Monday 01:00 in UTC+2 is still Sunday in UTC, so the previous week.
    now = datetime(2024, 3, 11, 1, tzinfo=timezone(timedelta(hours=2)))
    assert period_start(Period.WEEKLY, now) == utc(2024, 3, 4)
    assert next_reset(Budget(period=Period.DAILY, limit=1), now) == utc(2024, 3, 11)


def test_naive_now_is_refused():
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        period_start(Period.DAILY, datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        BudgetLedger([]).check(QA, A, 0.1, datetime(2024, 1, 1))


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 1), timezones=st.just(UTC)))
def test_period_properties_against_the_calendar(now):
    for period in Period:
        start, reset = period_start(period, now), next_period_start(period, now)
        assert start <= now < reset
        assert period_start(period, reset) == reset
        assert period_start(period, reset - timedelta(microseconds=1)) == start
    week = period_start(Period.WEEKLY, now)
    assert week.isocalendar()[:2] == now.isocalendar()[:2] and week.isoweekday() == 1
    month = period_start(Period.MONTHLY, now)
    days_in_month = calendar.monthrange(now.year, now.month)[1]
    assert (month.year, month.month, month.day) == (now.year, now.month, 1)
    assert next_period_start(Period.MONTHLY, now) - month == timedelta(days=days_in_month)


# --- budgets --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"period": "daily", "scope": "overall", "scope_value": "a", "limit": 1}, "scope_value must be None"),
        ({"period": "daily", "scope": "target", "limit": 1}, "scope_value is required"),
        ({"period": "daily", "scope": "task_type", "scope_value": " ", "limit": 1}, "scope_value is req"),
        ({"period": "daily", "limit": -1}, "limit"),
        ({"period": "daily", "limit": float("inf")}, "limit"),
        ({"period": "hourly", "limit": 1}, "period"),
        ({"period": "daily", "limit": 1, "policy": "wait"}, "policy"),
    ],
)
def test_budget_validation_names_the_field(kwargs, field):
    with pytest.raises(ValidationError, match=field):
        Budget(**kwargs)


def test_two_budgets_for_the_same_bucket_are_refused():
    with pytest.raises(ValueError, match="more than one budget"):
        BudgetLedger([Budget(period="daily", limit=1), Budget(period="daily", limit=2)])


def test_budgets_apply_by_scope():
    ledger = BudgetLedger(
        [
            Budget(period="daily", limit=1.0),
            Budget(period="daily", scope="target", scope_value="a", limit=0.5),
            Budget(period="daily", scope="task_type", scope_value="code", limit=0.2),
        ]
    )
    now = utc(2024, 5, 1, 12)
    assert ledger.check(QA, B, 0.9, now).allowed
    [violation] = ledger.check(QA, A, 0.6, now).violations
    assert violation.budget.scope_value == "a"
    violated = {v.budget.scope for v in ledger.check(CODE, A, 0.7, now).violations}
    assert violated == {Scope.TARGET, Scope.TASK_TYPE}
    assert ledger.remaining(CODE, A, now) == pytest.approx(0.2)
    assert ledger.remaining(QA, B, now) == pytest.approx(1.0)
    assert BudgetLedger([]).remaining(QA, A, now) is None


def test_reservations_count_until_reconciled_and_overshoot_is_reported():
    budget = Budget(period="daily", limit=1.0)
    ledger = BudgetLedger([budget])
    now = utc(2024, 5, 1, 12)
    first = ledger.reserve(QA, A, 0.6, now)
    assert not ledger.check(QA, A, 0.5, now).allowed  # 0.6 in flight + 0.5 > 1
    assert ledger.reconcile(first, 0.3) == 0.0
    assert ledger.spent(budget, now) == pytest.approx(0.3)
    second = ledger.reserve(QA, A, 0.5, now)
    assert ledger.reconcile(second, 0.65) == pytest.approx(0.15)  # the overshoot of this one call
    assert ledger.spent(budget, now) == pytest.approx(0.95)
    with pytest.raises(ValueError, match="not in flight"):
        ledger.reconcile(second, 0.1)


def test_error_names_budget_limit_and_spend():
    ledger = BudgetLedger([Budget(period="weekly", scope="target", scope_value="a", limit=5.0)])
    now = utc(2024, 5, 1, 12)
    ledger.record("qa", "a", 4.99, now)
    with pytest.raises(BudgetExceededError) as caught:
        ledger.reserve(QA, A, 0.02, now)
    message = str(caught.value)
    assert "weekly budget for target 'a'" in message
    assert "limit $5.00" in message and "$4.99 spent" in message and "~$0.02" in message
    assert isinstance(caught.value, RoutingError)
    assert caught.value.policy == "reject" and caught.value.retry_at is None


def test_queue_policy_retries_at_the_latest_reset():
    ledger = BudgetLedger(
        [
            Budget(period="daily", limit=1.0, policy="queue"),
            Budget(period="monthly", limit=10.0, policy="queue"),
        ]
    )
    now = utc(2024, 2, 29, 18)
    ledger.record("qa", "a", 9.9, now)
    check = ledger.check(QA, A, 0.5, now)
    assert check.policy == "queue"
    assert check.retry_at == utc(2024, 3, 1)  # both the day and the (leap) month end at midnight
    # A call larger than the limit itself would never fit, so it is rejected rather than queued forever.
    assert ledger.check(QA, A, 1.5, utc(2024, 3, 1)).policy == "reject"
    assert ledger.check(QA, A, 0.5, utc(2024, 3, 1)).allowed


def test_a_mix_of_policies_rejects():
    ledger = BudgetLedger(
        [
            Budget(period="daily", limit=0.1, policy="queue"),
            Budget(period="daily", scope="target", scope_value="a", limit=0.1),
        ]
    )
    error = ledger.check(QA, A, 0.2, utc(2024, 1, 1))
    assert error.policy == "reject" and error.retry_at is None


def test_free_calls_pass_an_exhausted_budget():
    ledger = BudgetLedger([Budget(period="daily", limit=1.0)])
    now = utc(2024, 5, 1)
    ledger.record("qa", "a", 2.0, now)
    assert ledger.check(QA, A, 0.0, now).allowed
    assert not ledger.check(QA, A, 0.001, now).allowed


def test_actual_cost_is_charged_to_the_period_the_call_was_admitted_in():
    budget = Budget(period="monthly", limit=1.0)
    ledger = BudgetLedger([budget])
    reservation = ledger.reserve(QA, A, 0.9, utc(2024, 12, 31, 23, 59))
    ledger.reconcile(reservation, 0.9)
    assert ledger.spent(budget, utc(2024, 12, 15)) == pytest.approx(0.9)
    assert ledger.spent(budget, utc(2025, 1, 1)) == 0.0
    assert ledger.check(QA, A, 1.0, utc(2025, 1, 1)).allowed


def test_load_replaces_spend_from_aggregate_rows():
    budgets = [
        Budget(period="daily", limit=1.0),
        Budget(period="weekly", scope="target", scope_value="a", limit=3),
    ]
    ledger = BudgetLedger(budgets)
    ledger.record("qa", "a", 0.5, utc(2024, 5, 1, 9))
    ledger.load(
        [
            ("daily", "overall", None, date(2024, 5, 1), 0.8),  # replaces the 0.5 recorded above
            dict(period="weekly", scope="target", key="a", period_start=datetime(2024, 4, 29), spent=3),
            ("weekly", "target", "unbudgeted", datetime(2024, 4, 29), 100.0),  # no budget: ignored
        ]
    )
    now = utc(2024, 5, 1, 12)
    assert ledger.spent(budgets[0], now) == pytest.approx(0.8)
    assert ledger.spent(budgets[1], now) == 3
    assert ledger.check(QA, B, 0.2, now).allowed
    assert [v.budget for v in ledger.check(QA, A, 0.15, now).violations] == [budgets[1]]


@pytest.mark.parametrize(
    ("row", "field"),
    [
        (("weekly", "overall", None, date(2024, 5, 1), 1.0), "period_start"),  # a Wednesday
        (("daily", "overall", "a", date(2024, 5, 1), 1.0), "key"),
        (("daily", "overall", None, date(2024, 5, 1), -1.0), "spent"),
    ],
)
def test_bad_rows_name_the_field(row, field):
    with pytest.raises(ValidationError, match=field):
        BudgetLedger([]).load([row])


def test_spend_row_reads_naive_timestamps_as_utc():
    row = SpendRow(period="monthly", scope="task_type", key="qa", period_start=datetime(2024, 2, 1), spent=1)
    assert row.period_start == utc(2024, 2, 1)


# --- the guarantee --------------------------------------------------------------------------------

BUDGETS = [
    Budget(period="daily", limit=1.0),
    Budget(period="weekly", scope="target", scope_value="a", limit=2.5, policy="queue"),
    Budget(period="monthly", scope="task_type", scope_value="qa", limit=4.0),
]
TASKS = {"qa": QA, "code": CODE}
TARGETS = {"a": A, "b": B}

reserve_step = st.tuples(
    st.just("reserve"),
    st.sampled_from(sorted(TASKS)),
    st.sampled_from(sorted(TARGETS)),
    st.floats(0, 0.8),
    st.floats(0, 1),  # actual cost as a fraction of the estimate
)
reconcile_step = st.tuples(st.just("reconcile"), st.integers(0, 999))
wait_step = st.tuples(st.just("wait"), st.integers(1, 80))  # hours
steps = st.lists(st.one_of(reserve_step, reconcile_step, wait_step), max_size=80)


def _applies(budget: Budget, call: "_Call") -> bool:
    if budget.scope is Scope.TARGET:
        return budget.scope_value == call.target
    if budget.scope is Scope.TASK_TYPE:
        return budget.scope_value == call.task_type
    return True


@dataclass
class _Call:
    task_type: str
    target: str
    admitted_at: datetime
    estimate: float
    fraction: float
    reservation: Reservation | None = None
    actual: float | None = None  # None while in flight

    def finish(self, ledger: BudgetLedger) -> None:
        self.actual = self.estimate * self.fraction
        assert ledger.reconcile(self.reservation, self.actual) == 0.0


def _committed(calls: list[_Call], budget: Budget, start: datetime) -> float:
    """Actual costs of finished calls plus estimates of calls in flight, in one budget's period."""
    return sum(
        c.estimate if c.actual is None else c.actual
        for c in calls
        if _applies(budget, c) and period_start(budget.period, c.admitted_at) == start
    )


@settings(max_examples=150, deadline=None)
@given(steps)
def test_admitted_actual_costs_never_exceed_a_budget(steps):
    """With actual <= estimate, admitted calls never overspend; and a refusal is never needless."""
    ledger = BudgetLedger(BUDGETS)
    now = utc(2024, 12, 29, 20)  # a Sunday evening: days, a week, a month and a year roll over
    calls: list[_Call] = []
    for step in steps:
        if step[0] == "reserve":
            call = _Call(step[1], step[2], now, estimate=step[3], fraction=step[4])
            try:
                task, target = TASKS[call.task_type], TARGETS[call.target]
                call.reservation = ledger.reserve(task, target, call.estimate, now)
            except BudgetExceededError as refused:
                assert any(
                    _committed(calls, v.budget, v.period_start) + call.estimate > v.budget.limit
                    for v in refused.check.violations
                )
            else:
                calls.append(call)
        elif step[0] == "reconcile":
            in_flight = [c for c in calls if c.actual is None]
            if in_flight:
                in_flight[step[1] % len(in_flight)].finish(ledger)
        else:
            now += timedelta(hours=step[1])
    for call in calls:
        if call.actual is None:
            call.finish(ledger)
    for budget in BUDGETS:
        for start in {period_start(budget.period, c.admitted_at) for c in calls}:
            assert _committed(calls, budget, start) <= budget.limit + 1e-9
