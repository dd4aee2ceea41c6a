"""A process's routing runtime: the Router, its target blocks and its store, assembled once.

Routing flows take the *name* of a runtime so their parameters stay serialisable for deployments. A
name resolves to a runtime registered in this process (the demo and tests build theirs in memory),
else to a saved `RouterSettings` block. The runtime is cached so the router keeps learning across
flow runs in one process. A store with a `published_url` (or $ADAPTIVE_ROUTER_PUBLISHED_URL) makes the
router read the published state and the live policies from that URL instead of the files beside the
store: routers on other machines see what the recalculation and policy changes published. Those looks,
and the breaker gossip, run on background threads; a routed call only takes what they fetched.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prefect.events import emit_event

from blocks.events import events_reachable
from blocks.settings import RouterSettings
from blocks.store import DuckDBStore, StoreError
from blocks.store.budgets import load_budgets, spend_rows
from blocks.store.experiments import LIVE_FILE, live_path, load_live
from blocks.store.gossip import BreakerGossip
from blocks.store.learning import load_q_table, load_sessions, save_q_table, save_sessions
from blocks.store.ledger import open_ledger
from blocks.store.objectives import load_objectives
from blocks.store.remote_state import RemotePublishedReader, await_first_looks
from blocks.store.snapshots import PublishedReader, published_path
from blocks.targets.base import TargetBlock
from routing.calls.breaker import BreakerBoard, Transition
from routing.calls.retry import RetryPolicy
from routing.calls.sampling import DetailSampling
from routing.context.embedding import Embedder, task_embedding, with_embeddings
from routing.context.session import SessionTracker
from routing.errors import UnknownNameError, UnknownTargetError
from routing.experiments.live import LiveConfig, PolicyRouting, policy_strategy
from routing.feedback import Verdict as Feedback
from routing.feedback import apply_feedback
from routing.models import Decision, ExecutionRecord, Outcome, QueuedTask, RoutedResult, Task, utcnow
from routing.published import PublishedState, apply_published
from routing.router import Router
from routing.spend.budgets import Budget, BudgetLedger, Reservation
from routing.strategies.base import Strategy, walk
from routing.strategies.qlearning import QLearningStrategy, QTable
from routing.strategies.registry import build_strategy

ResultHook = Callable[[RoutedResult], None]


logger = logging.getLogger("adaptive_router")


DECISION_EVENT = "adaptive-router.routing.decision"
EXECUTION_EVENT = "adaptive-router.execution.recorded"

GOSSIP_DIRECTORY = "breakers"
"""Beside the published state (file or URL): where every process's open breakers are gossiped
(blocks/store/gossip.py)."""


def log_transition(transition: Transition) -> None:
    """Breaker state changes go to the log and, as Prefect events, to automations."""
    logger.warning(
        "circuit breaker of %s: %s -> %s (%s)", transition.target, transition.from_state, transition.to_state, transition.reason
    )
    emit_event(
        event=f"adaptive-router.breaker.{transition.to_state}",
        resource={"prefect.resource.id": f"adaptive-router.target.{transition.target}"},
        payload={"from": str(transition.from_state), "reason": transition.reason},
    )


@dataclass
class RoutingRuntime:
    """The Router with the blocks it routes to and records into: a `ChainHost` for routed calls."""

    router: Router
    targets: dict[str, TargetBlock]
    store: DuckDBStore
    breakers: BreakerBoard
    retry: RetryPolicy
    ledger: BudgetLedger | None = None
    published: PublishedReader | RemotePublishedReader | None = None
    sessions: SessionTracker = field(default_factory=SessionTracker)
    hooks: list[ResultHook] = field(default_factory=list)
    gossip: BreakerGossip | None = None
    live: PublishedReader | RemotePublishedReader | None = None  # the policy in force, running experiments
    embedder: Embedder | None = None  # embeds prompts in the flow, never in its parameters
    policies: PolicyRouting | None = None
    sampling: DetailSampling = field(default_factory=DetailSampling)  # which tasks keep rows and events
    emit_events: bool = False  # a Prefect event per stored decision and attempt
    _always_kept: set[str] = field(default_factory=set)  # decisions of running experiments, in flight
    _last_fate: tuple[str, float | None] = ("", None)  # the last decision's weight: its attempts follow it
    _default_strategy: Strategy | None = None
    _state: PublishedState | None = None
    _first_looks_awaited: bool = False

    @classmethod
    def build(
        cls,
        targets: Sequence[TargetBlock],
        store: DuckDBStore,
        strategy: Strategy | None = None,
        breakers: BreakerBoard | None = None,
        retry: RetryPolicy | None = None,
        budgets: Sequence[Budget] = (),
        shared_ledger: str | Path | None = None,
        sampling: DetailSampling | None = None,
        emit_events: bool = False,
    ) -> RoutingRuntime:
        """Assemble a runtime; `budgets` start from what the store says each has spent this period.

        `shared_ledger` (default: the store's `budget_ledger`) makes budgets hold across processes: a
        SQLite file every router process reaches, or 'prefect' for the Prefect server's global concurrency
        limits, across machines (blocks/store/ledger.py `open_ledger`); the store's spend seeds only
        what the shared ledger does not hold yet.
        """
        gossiped: list[BreakerGossip] = []

        def on_transition(transition: Transition) -> None:
            log_transition(transition)
            for gossip in gossiped:  # other processes learn what this one's breakers found
                gossip.publish()

        breakers = breakers or BreakerBoard(on_transition=on_transition)
        gossip = BreakerGossip(gossip_location(store), breakers)
        gossiped.append(gossip)
        router = Router([t.descriptor() for t in targets], strategy=strategy, available=breakers.available)
        ledger = None
        if budgets:
            location = shared_ledger if shared_ledger is not None else store.budget_ledger_location
            ledger = open_ledger(budgets, location)
            ledger.seed(spend_rows(store, list(budgets), utcnow()))
        runtime = cls(
            router=router,
            targets={t.target_name: t for t in targets},
            store=store,
            breakers=breakers,
            retry=retry or RetryPolicy(),
            ledger=ledger,
            published=published_reader(store),
            gossip=gossip,
            live=live_reader(store),
            sampling=sampling or DetailSampling(),
            emit_events=emit_events,
        )
        if store.path.exists():
            runtime.restore()
        runtime.refresh()
        return runtime

    def _q_learners(self) -> list[QLearningStrategy]:
        return [s for s in walk(self.router.strategy) if isinstance(s, QLearningStrategy)]

    def restore(self) -> None:
        """Load the Q-table and the live sessions the store keeps; a locked store means starting fresh."""
        try:
            q_rows, session_rows = load_q_table(self.store), load_sessions(self.store)
        except StoreError as exc:
            logger.warning("learning state not restored, starting fresh: %s", exc)
            return
        self.sessions = SessionTracker.from_rows(session_rows)
        for strategy in self._q_learners():
            strategy.learner.table = QTable.from_rows(q_rows, strategy.learner.config.initial_q)

    def persist(self) -> None:
        """Save the Q-table and the sessions to the store (at the end of a batch, never per call)."""
        for strategy in self._q_learners():
            save_q_table(self.store, strategy.learner.table.to_rows())
        save_sessions(self.store, self.sessions.to_rows())

    def refresh(self) -> None:
        """Take in statistics a recalculation published since the last look, and the policies and
        running experiments the store published: a `stat` each beside the store, what the background
        looks fetched at a published URL (the first refresh waits, bounded, for their first looks)."""
        if not self._first_looks_awaited:
            self._first_looks_awaited = True
            await_first_looks((self.published, self.live))
        if self.published is not None and (state := self.published.changed()) is not None:
            self._state = state
            for line in apply_published(state, self.router):
                logger.info("published state applied: %s", line)
            for router in self.policies.variant_routers.values() if self.policies else ():
                apply_published(state, router)
        if self.live is not None and (live := self.live.changed()) is not None:
            self.adopt(live)

    def adopt(self, live: LiveConfig) -> None:
        """Route by the policy in force (else the configured strategy) and through running experiments;
        variants start learning afresh, from the published statistics."""
        if self._default_strategy is None:
            self._default_strategy = self.router.strategy
        names = list(self.router.targets)
        self.router.strategy = policy_strategy(live.policies, names, self._default_strategy)
        adopt_state = (lambda router: apply_published(self._state, router)) if self._state else None
        self.policies = PolicyRouting(self.router, live.experiments, on_new_router=adopt_state)
        running = ", ".join(e.name for e in self.policies.experiments) or "none"
        logger.info("policies in force: %s; running experiments: %s",
                    {k: p.spec for k, p in live.policies.policies.items()} or "default", running)

    def prepare(self, task: Task) -> Task:
        """Add the prompt's embedding when an embedder is set and the task carries none."""
        if self.embedder is None or task_embedding(task.metadata) is not None:
            return task
        return with_embeddings([task], self.embedder)[0]

    def choose(self, task: Task) -> Decision:
        """The router's decision, or the decision of the task's variant in a running experiment."""
        return self.policies.choose(task) if self.policies else self.router.choose(task)

    def target(self, name: str) -> TargetBlock:
        try:
            return self.targets[name]
        except KeyError:
            raise UnknownTargetError(name, list(self.targets)) from None

    def detail_weight(self, decision: Decision) -> float | None:
        """The weight the rows of `decision` and its attempts carry, or None when they are not kept
        (see routing/calls/sampling.py). An experiment's decisions are always kept: its analysis
        counts every assigned task."""
        if decision.experiment_id is not None:
            return 1.0
        weight = self.sampling.weight(decision.id, decision.task_type)
        self._last_fate = (decision.id, weight)
        return weight

    def _record_weight(self, record: ExecutionRecord) -> float | None:
        last_id, weight = self._last_fate
        if record.decision_id == last_id:
            return weight
        if record.decision_id in self._always_kept:
            return 1.0
        return self.sampling.weight(record.decision_id or record.execution_id, record.task_type)

    def record_decision(self, decision: Decision) -> None:
        """Spool the decision if its task is sampled, with its weight, and emit its event if asked."""
        weight = self.detail_weight(decision)
        if weight is None:
            return
        if decision.experiment_id is not None:
            self._always_kept.add(decision.id)
        if weight != decision.weight:
            decision = decision.model_copy(update={"weight": weight})
        self.store.record_decision(decision)
        if self.emit_events:
            self._emit(DECISION_EVENT, f"adaptive-router.decision.{decision.id}", decision.task_type, decision.pick,
                       {"task_id": decision.task_id, "strategy": decision.strategy,
                        "probability": decision.probability, "weight": weight})  # fmt: skip

    def estimate(self, target: str, task: Task) -> float:
        return self.target(target).cost_estimate(task)

    def queue(self, queued: QueuedTask) -> None:
        self.store.record_queued(queued)

    def admit(self, task: Task, target_name: str, estimate: float) -> Reservation | None:
        """Reserve the call's cost estimate against every budget; raises BudgetExceededError, or
        LedgerError when the budgets cannot be checked."""
        if self.ledger is None:
            return None
        return self.ledger.reserve(task, self.router.target(target_name), estimate, utcnow())

    def settle(self, reservation: Reservation | None, actual_cost: float) -> None:
        if reservation is not None and self.ledger is not None:
            overshoot = self.ledger.reconcile(reservation, actual_cost)
            if overshoot > 0:
                logger.warning("a call cost $%.6f more than its estimate; budgets may be exceeded by it", overshoot)

    def record(self, record: ExecutionRecord) -> None:
        """Spool the attempt if its task is sampled (durable before returning), with its weight, and let
        the router learn from it whether kept or not."""
        weight = self._record_weight(record)
        if weight is not None:
            if weight != record.weight:
                record = record.model_copy(update={"weight": weight})
            self.store.record_execution(record)
            self._recorded(record, weight)
        self._observe(record)

    def learn(self, record: ExecutionRecord) -> None:
        """Let the router learn from an attempt another process spooled (if sampled) already."""
        if (weight := self._record_weight(record)) is not None:
            self._recorded(record, weight)
        self._observe(record)

    def _recorded(self, record: ExecutionRecord, weight: float) -> None:
        if self.emit_events:
            self._emit(EXECUTION_EVENT, f"adaptive-router.execution.{record.execution_id}", record.task_type,
                       record.target, {"task_id": record.task_id, "decision_id": record.decision_id,
                                       "attempt": record.attempt, "success": record.success,
                                       "duration_ms": record.duration_ms, "cost": record.actual_cost,
                                       "error_type": str(record.error_type or "") or None, "weight": weight})  # fmt: skip

    def _emit(self, event: str, resource_id: str, task_type: str, target: str, payload: dict) -> None:
        """One telemetry event, related to its task type and target so automations can filter on them."""
        if not events_reachable():
            return
        emit_event(
            event=event,
            resource={"prefect.resource.id": resource_id, "adaptive-router.task-type": task_type},
            related=[{"prefect.resource.id": f"adaptive-router.target.{target}", "prefect.resource.role": "target"}],
            payload=payload,
        )

    def _observe(self, record: ExecutionRecord) -> None:
        """Let the router learn from an attempt; the peers' breakers are read in the background."""
        if self.policies is not None:
            self.policies.observe(Outcome.from_record(record), record.decision_id)
        else:
            self.router.observe(Outcome.from_record(record))
        if self.gossip is not None:
            self.gossip.watch()

    def strategies(self) -> list[Strategy]:
        """The strategy in force and every running experiment variant's."""
        variants = self.policies.variant_routers.values() if self.policies else ()
        return [self.router.strategy, *(router.strategy for router in variants)]

    def learn_feedback(self, judged: dict, verdict: Feedback) -> int:
        """Let the learners correct what they learned from a judged attempt (a blocks.store.feedback
        row); how many took it in (none when the task was routed by another process)."""
        return apply_feedback(self.strategies(), judged["task_id"], judged["target"], bool(judged["success"]),
                              judged["quality_score"], verdict)  # fmt: skip

    def close(self) -> None:
        """Stop the background looks (published URL, breaker gossip) and close the ledger's client;
        routing goes on without the looks (a later reservation opens another client)."""
        for part in (self.published, self.live, self.gossip, self.ledger):
            if part is not None:
                part.close()

    def finished(self, result: RoutedResult) -> None:
        self._always_kept.discard(result.decision.id)
        if self.policies is not None:
            self.policies.finished(result.decision.id)
        for hook in self.hooks:
            hook(result)


def gossip_location(store: DuckDBStore) -> str | Path:
    """Where breakers are gossiped for `store`: under its published URL when one is set (routers on
    other machines read there), else beside the published file."""
    url = store.remote_published_url
    return f"{url.rstrip('/')}/{GOSSIP_DIRECTORY}" if url else published_path(store).parent / GOSSIP_DIRECTORY


def published_reader(store: DuckDBStore) -> PublishedReader | RemotePublishedReader:
    """The reader of the state published for `store`: at its URL when one is set (looked at in the
    background), else beside the file (a `stat` per refresh: cheap, and a publication is seen at once)."""
    url = store.remote_published_url
    return RemotePublishedReader(url) if url else PublishedReader(published_path(store))


def live_reader(store: DuckDBStore) -> PublishedReader | RemotePublishedReader:
    """The reader of the live policies published for `store`, where `published_reader` reads the state."""
    url = store.remote_published_url
    if url:
        return RemotePublishedReader(url, name=LIVE_FILE.name, model=LiveConfig)
    return PublishedReader(live_path(store), load_live)


_lock = threading.Lock()
_runtimes: dict[str, RoutingRuntime] = {}


def register_runtime(name: str, runtime: RoutingRuntime) -> None:
    """Make `runtime` the one called `name`; one it replaces has its background looks stopped."""
    with _lock:
        old, _runtimes[name] = _runtimes.get(name), runtime
    if old is not None and old is not runtime:
        old.close()


def unregister_runtime(name: str) -> None:
    """Forget the runtime called `name` and stop its background looks."""
    with _lock:
        runtime = _runtimes.pop(name, None)
    if runtime is not None:
        runtime.close()


def get_runtime(name: str) -> RoutingRuntime:
    """The runtime called `name`: registered in this process, else built from its RouterSettings block."""
    with _lock:
        runtime = _runtimes.get(name)
        if runtime is None:
            runtime = _runtimes[name] = _from_settings(name)
    runtime.refresh()
    return runtime


def _from_settings(name: str) -> RoutingRuntime:
    try:
        settings = RouterSettings.load(name)
    except ValueError as exc:
        hint = f"register one in this process or save an adaptive-router-settings block named {name!r}: {exc}"
        raise UnknownNameError("routing runtime", name, sorted(_runtimes), hint) from exc
    from prefect.blocks.core import Block

    targets = []
    for slug in settings.targets:
        block = Block.load(slug)
        if not isinstance(block, TargetBlock):
            raise TypeError(f"block {slug!r} in settings {name!r} is a {type(block).__name__}, not a target")
        targets.append(block)
    store = DuckDBStore.load(settings.store) if settings.store else DuckDBStore()
    names = [t.target_name for t in targets]
    options = dict(settings.strategy_options)
    if settings.strategy == "cost_aware":
        options.setdefault("objectives", load_objectives(store))
    strategy = build_strategy(settings.strategy, names, seed=settings.seed, **options)
    return RoutingRuntime.build(targets, store, strategy, budgets=load_budgets(store),
                                sampling=settings.sampling(), emit_events=settings.emit_events)
