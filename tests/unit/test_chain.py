"""The attempt chain without Prefect: fallback, budgets, queueing and sessions, with an in-memory host."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from routing import AttemptResult, ErrorType, ExecutionRecord, Router, Target, Task
from routing.calls.breaker import BreakerBoard
from routing.calls.chain import AttemptChain
from routing.calls.retry import RetryPolicy
from routing.context.session import SessionTracker
from routing.models import Decision, Outcome, Price, QueuedTask, RoutedResult
from routing.spend.budgets import Budget, BudgetLedger, Reservation


@dataclass
class InMemoryHost:
    """The simplest ChainHost: keeps everything in lists, budgets in a real ledger."""

    router: Router
    ledger: BudgetLedger | None = None
    breakers: BreakerBoard = field(default_factory=BreakerBoard)
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_retries=0))
    sessions: SessionTracker = field(default_factory=SessionTracker)
    decisions: list[Decision] = field(default_factory=list)
    records: list[ExecutionRecord] = field(default_factory=list)
    queued: list[QueuedTask] = field(default_factory=list)
    results: list[RoutedResult] = field(default_factory=list)
    now: datetime = datetime(2026, 1, 5, 12, tzinfo=UTC)

    def choose(self, task: Task) -> Decision:
        return self.router.choose(task)

    def record_decision(self, decision: Decision) -> None:
        self.decisions.append(decision)

    def estimate(self, target: str, task: Task) -> float:
        return self.router.target(target).price.per_call

    def admit(self, task: Task, target: str, estimate: float) -> Reservation | None:
        if self.ledger is None:
            return None
        return self.ledger.reserve(task, self.router.target(target), estimate, self.now)

    def settle(self, reservation: Reservation | None, actual_cost: float) -> None:
        if reservation is not None and self.ledger is not None:
            self.ledger.reconcile(reservation, actual_cost)

    def record(self, record: ExecutionRecord) -> None:
        self.records.append(record)
        self.router.observe(Outcome.from_record(record))

    def queue(self, queued: QueuedTask) -> None:
        self.queued.append(queued)

    def finished(self, result: RoutedResult) -> None:
        self.results.append(result)


def targets(*names: str, per_call: float = 0.0) -> list[Target]:
    return [Target(name=n, price=Price(per_call=per_call)) for n in names]


def caller(failing: set[str]):
    def call(name: str, task: Task) -> AttemptResult:
        if name in failing:
            return AttemptResult(target=name, ok=False, duration_ms=2, error_type=ErrorType.SERVER_ERROR,
                                 error_message="503 from upstream")
        return AttemptResult(target=name, ok=True, output=f"answer from {name}", duration_ms=3, cost=0.3)
    return call


def test_a_failed_pick_falls_back_and_every_attempt_is_recorded() -> None:
    host = InMemoryHost(Router(targets("a", "b", "c")))
    task = Task(task_type="qa", payload="What is 2+2?")
    result = AttemptChain.start(host, task).run(host, caller({"a"}), sleep=lambda s: None)
    assert result.success and result.target == "b" and result.output == "answer from b"
    assert [r.target for r in host.records] == ["a", "b"]
    assert [r.attempt for r in host.records] == [1, 2]
    assert [r.success for r in host.records] == [False, True]
    assert host.decisions[0].pick == "a" and host.results == [result]
    assert "503 from upstream" in result.failures["a"]


def test_a_budget_queues_the_task_when_no_target_fits_until_the_reset() -> None:
    ledger = BudgetLedger([Budget(period="daily", limit=0.5, policy="queue")])
    host = InMemoryHost(Router(targets("a", "b", per_call=0.3)), ledger=ledger)
    paid = AttemptChain.start(host, Task(task_type="qa", payload="First")).run(host, caller(set()), sleep=lambda s: None)
    assert paid.success and len(host.records) == 1
    task = Task(task_type="qa", payload="Summarise this")
    result = AttemptChain.start(host, task).run(host, caller(set()), sleep=lambda s: None)
    assert not result.success and len(host.records) == 1
    assert result.queued_until is not None and result.queued_until > host.now
    assert set(result.failures) == {"a", "b"} and all("budget_exceeded" in why for why in result.failures.values())
    assert len(host.queued) == 1 and host.queued[0].task.id == task.id


def test_a_session_follows_the_target_that_served_it() -> None:
    host = InMemoryHost(Router(targets("a", "b")))
    first = Task(task_type="chat", payload="Tell me about the python language", session_id="s1")
    AttemptChain.start(host, first).run(host, caller({"a"}), sleep=lambda s: None)
    assert host.sessions.get("s1").target == "b"
    second = Task(task_type="chat", payload="More about the python language please", session_id="s1")
    chain = AttemptChain.start(host, second)
    assert chain.decision.pick == "b"


def test_the_category_is_detected_when_the_task_names_none() -> None:
    host = InMemoryHost(Router(targets("a")))
    chain = AttemptChain.start(host, Task(task_type="qa", payload="Write a python function to sort a list"))
    assert chain.task.category != "general"
    explicit = AttemptChain.start(host, Task(task_type="qa", payload="Write a python function", category="math"))
    assert explicit.task.category == "math"
