"""Every Prometheus metric the gateway exports, defined once: names follow the monitoring seed with our
prefix, so the alert rules (deploy/prometheus) and the dashboard (deploy/grafana) can name them.

Counters and histograms move as results arrive (a RoutingRuntime result hook); breaker state and budget
remaining are read from the runtime at scrape time, so they are never stale. Each instance has its own
registry: several gateways (tests, benchmarks) can live in one process.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict, deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest

from routing.errors import LedgerError
from routing.models import RoutedResult, utcnow

if TYPE_CHECKING:
    from flows.runtime import RoutingRuntime

PREFIX = "adaptive_router"
SUCCESS_WINDOW = 100  # attempts per adapter behind the success-rate gauge
BREAKER_LEVEL = {"closed": 0, "half_open": 1, "open": 2}

logger = logging.getLogger("adaptive_router.gateway")

# name -> kind, as served (counters with their _total suffix): the dashboard test checks panels against it.
SERVED = {
    f"{PREFIX}_adapter_success_rate": "gauge",
    f"{PREFIX}_execution_cost_total": "counter",
    f"{PREFIX}_routing_decision_seconds": "histogram",
    f"{PREFIX}_request_seconds": "histogram",
    f"{PREFIX}_requests_total": "counter",
    f"{PREFIX}_attempts_total": "counter",
    f"{PREFIX}_fallbacks_total": "counter",
    f"{PREFIX}_routing_decisions_total": "counter",
    f"{PREFIX}_experiment_exposures_total": "counter",
    f"{PREFIX}_feedback_total": "counter",
    f"{PREFIX}_breaker_state": "gauge",
    f"{PREFIX}_budget_remaining_dollars": "gauge",
    f"{PREFIX}_budget_limit_dollars": "gauge",
}


class GatewayMetrics:
    """The exporter: call `observe` with each routed result (a runtime hook), `render` for /metrics."""

    def __init__(self, runtime: RoutingRuntime | None = None) -> None:
        self.registry = CollectorRegistry()
        self.runtime = runtime
        r = self.registry
        self.success_rate = Gauge(f"{PREFIX}_adapter_success_rate", f"Share of successful attempts over each adapter's last {SUCCESS_WINDOW}.", ["adapter"], registry=r)
        self.cost = Counter(f"{PREFIX}_execution_cost", "Dollars spent on attempts, by task type.", ["task_type"], registry=r)
        self.decision_seconds = Histogram(f"{PREFIX}_routing_decision_seconds", "Time to choose a target and log the decision.",
                                          buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25), registry=r)  # fmt: skip
        self.request_seconds = Histogram(f"{PREFIX}_request_seconds", "Whole routed requests through the gateway.", ["mode"],
                                         buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r)  # fmt: skip
        self.requests = Counter(f"{PREFIX}_requests", "Routed requests by task type and status.", ["task_type", "status"], registry=r)
        self.attempts = Counter(f"{PREFIX}_attempts", "Attempts by adapter and outcome.", ["adapter", "outcome"], registry=r)
        self.fallbacks = Counter(f"{PREFIX}_fallbacks", "Attempts beyond the first of a request.", ["task_type"], registry=r)
        self.decisions = Counter(f"{PREFIX}_routing_decisions", "Decisions by task type and pick.", ["task_type", "adapter"], registry=r)
        self.exposures = Counter(f"{PREFIX}_experiment_exposures", "Tasks an experiment assigned, by variant.", ["experiment", "variant"], registry=r)
        self.feedback = Counter(f"{PREFIX}_feedback", "Feedback received, by verdict.", ["verdict"], registry=r)
        self.registry.register(_RuntimeCollector(self))
        self._window: dict[str, deque[bool]] = defaultdict(lambda: deque(maxlen=SUCCESS_WINDOW))
        self._lock = threading.Lock()

    def observe(self, result: RoutedResult) -> None:
        decision = result.decision
        task_type = decision.task_type
        self.decisions.labels(task_type, decision.pick).inc()
        if decision.experiment_id is not None:
            self.exposures.labels(decision.experiment_id, decision.variant or "-").inc()
        status = "ok" if result.success else "queued" if result.queued_until else "failed"
        self.requests.labels(task_type, status).inc()
        if len(result.attempts) > 1:
            self.fallbacks.labels(task_type).inc(len(result.attempts) - 1)
        for attempt in result.attempts:
            self.attempts.labels(attempt.target, "success" if attempt.success else str(attempt.error_type or "failure")).inc()
            self.cost.labels(task_type).inc(attempt.actual_cost or 0.0)
            with self._lock:
                window = self._window[attempt.target]
                window.append(attempt.success)
                rate = sum(window) / len(window)
            self.success_rate.labels(attempt.target).set(rate)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _RuntimeCollector:
    """Breaker states and budget headroom, read from the runtime when Prometheus scrapes. A ledger that
    cannot be read (its server down) leaves the headroom out of the scrape, warned once per outage:
    a failed scrape would hide every other metric."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self.metrics = metrics
        self.ledger_down = False

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        runtime = self.metrics.runtime
        breaker = GaugeMetricFamily(f"{PREFIX}_breaker_state", "Circuit breaker per adapter: 0 closed, 1 half-open, 2 open.", labels=["adapter"])
        remaining = GaugeMetricFamily(f"{PREFIX}_budget_remaining_dollars", "Dollars left in each budget's current period.", labels=["budget"])
        limit = GaugeMetricFamily(f"{PREFIX}_budget_limit_dollars", "Each budget's limit per period.", labels=["budget"])
        if runtime is not None:
            snapshots = runtime.breakers.snapshot()
            for name in runtime.targets:
                snap = snapshots.get(name)
                breaker.add_metric([name], BREAKER_LEVEL[str(snap.state)] if snap else 0)
            if runtime.ledger is not None:
                for budget in runtime.ledger.budgets:
                    limit.add_metric([str(budget)], budget.limit)
                self._headroom(runtime, remaining)
        yield from (breaker, remaining, limit)

    def _headroom(self, runtime: RoutingRuntime, remaining: GaugeMetricFamily) -> None:
        now, rooms = utcnow(), []
        try:
            for budget in runtime.ledger.budgets:
                rooms.append((str(budget), max(0.0, budget.limit - runtime.ledger.spent(budget, now))))
        except LedgerError as exc:
            if not self.ledger_down:
                logger.warning("budget remaining left out of /metrics until the ledger answers: %s", exc)
            self.ledger_down = True
            return
        if self.ledger_down:
            logger.info("budget ledger answers again: budget remaining back in /metrics")
        self.ledger_down = False
        for name, room in rooms:
            remaining.add_metric([name], room)
