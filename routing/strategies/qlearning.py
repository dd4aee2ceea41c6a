"""Tabular Q-learning over coarse task states, for routing where the recent past matters.

A state is (task type, complexity bucket, prompt-size bucket, recent-success bucket of the task type);
an action is a target. After an outcome, the next state is the same task's state with the recent-success
bucket moved by that outcome, so the discount values a target for keeping the router in a good regime
as well as for its immediate reward (`discount=0` makes it a contextual bandit). Actions are picked
epsilon-greedily (ties uniformly), so every propensity is exact.

The Q-table is kept as plain rows (`to_rows` / `from_rows`) so a store can save and load it.
"""

from __future__ import annotations

import json
import random
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from routing.models import FINITE, Candidate, Outcome, Target, Task, utcnow
from routing.stats.book import StatsBook
from routing.strategies.base import Choice, draw

Feedback = Literal["excellent", "good", "fair", "poor"]
FEEDBACK_MEMORY = 10_000  # decisions whose state is kept for feedback that comes later
State = tuple[str, str, str, str]


def reward(success: bool, quality_score: float | None = None, feedback: Feedback | None = None) -> float:
    """The reward of one outcome. Rules are tried in this order, the first that applies wins, so a
    warning sign (failure, poor or fair feedback, quality below 60) beats any praise:

    1. failure or "poor" feedback                      -> -1.0
    2. "fair" feedback or quality below 60             -> -0.3
    3. "excellent" feedback or quality above 80        -> +1.0
    4. "good" feedback                                  -> +0.5
    5. any other success (no feedback, quality 60-80)  -> +0.2
    """
    if feedback not in (None, "excellent", "good", "fair", "poor"):
        raise ValueError(f"feedback must be one of excellent, good, fair, poor or None, got {feedback!r}")
    if quality_score is not None and not 0 <= quality_score <= 100:
        raise ValueError(f"quality_score must be in [0, 100], got {quality_score}")
    if not success or feedback == "poor":
        return -1.0
    if feedback == "fair" or (quality_score is not None and quality_score < 60):
        return -0.3
    if feedback == "excellent" or (quality_score is not None and quality_score > 80):
        return 1.0
    if feedback == "good":
        return 0.5
    return 0.2


def outcome_reward(outcome: Outcome) -> float:
    return reward(outcome.success, outcome.quality_score)


def _net_value(willingness_to_pay: float) -> Callable[[Outcome], float]:
    def net_value(outcome: Outcome) -> float:
        return willingness_to_pay * outcome.success - outcome.cost

    return net_value


class QLearningConfig(BaseModel):
    """Learning constants and state buckets (each `*_edges` pair splits low / medium / high)."""

    model_config = ConfigDict(extra="forbid", **FINITE)

    learning_rate: float = Field(default=0.1, gt=0, le=1)
    discount: float = Field(default=0.9, ge=0, lt=1)
    epsilon: float = Field(default=0.1, ge=0, le=1, description="Share of picks made uniformly at random.")
    initial_q: float = 0.0
    recent_window: int = Field(default=20, ge=1, description="Outcomes per task type in the success bucket.")
    complexity_edges: tuple[float, float] = (0.33, 0.66)
    token_edges: tuple[float, float] = (500, 2000)
    success_edges: tuple[float, float] = (0.5, 0.8)

    @model_validator(mode="after")
    def _edges_increase(self) -> QLearningConfig:
        for field in ("complexity_edges", "token_edges", "success_edges"):
            low, high = getattr(self, field)
            if not low < high:
                raise ValueError(f"{field} must be increasing, got ({low}, {high})")
        return self


def bucket(value: float | None, edges: tuple[float, float]) -> str:
    if value is None:
        return "unknown"
    return "low" if value < edges[0] else "medium" if value < edges[1] else "high"


class QRow(BaseModel):
    """One Q-table entry as stored; `state` is the JSON list of the state's parts."""

    model_config = ConfigDict(extra="forbid", **FINITE)

    state: str
    action: str = Field(min_length=1)
    q_value: float
    visits: int = Field(ge=0)
    updated_at: datetime


class QTable:
    """Q(state, action) with visit counts; unvisited entries read as `initial_q`."""

    def __init__(self, initial_q: float = 0.0) -> None:
        self.initial_q = initial_q
        self._q: dict[State, dict[str, list]] = defaultdict(dict)

    def value(self, state: State, action: str) -> float:
        entry = self._q.get(state, {}).get(action)
        return self.initial_q if entry is None else entry[0]

    def visits(self, state: State, action: str) -> int:
        entry = self._q.get(state, {}).get(action)
        return 0 if entry is None else entry[1]

    def best(self, state: State, actions: Iterable[str]) -> float:
        """max_a Q(state, a) over `actions` and the actions already valued in `state`."""
        row = self._q.get(state, {})
        values = [entry[0] for entry in row.values()]
        if any(a not in row for a in actions):
            values.append(self.initial_q)
        return max(values, default=self.initial_q)

    def set(self, state: State, action: str, value: float) -> None:
        entry = self._q[state].setdefault(action, [self.initial_q, 0, None])
        entry[0] = value
        entry[1] += 1
        entry[2] = utcnow()

    def adjust(self, state: State, action: str, delta: float) -> None:
        """Move Q(state, action) by `delta` without counting a visit (a correction, not an outcome)."""
        entry = self._q[state].setdefault(action, [self.initial_q, 0, None])
        entry[0] += delta
        entry[2] = utcnow()

    def __len__(self) -> int:
        return sum(len(row) for row in self._q.values())

    def to_rows(self) -> list[dict]:
        return [
            QRow(state=json.dumps(list(state)), action=a, q_value=q, visits=n, updated_at=at).model_dump()
            for state, row in self._q.items()
            for a, (q, n, at) in row.items()
        ]

    @classmethod
    def from_rows(cls, rows: Iterable[dict], initial_q: float = 0.0) -> QTable:
        table = cls(initial_q)
        for position, raw in enumerate(rows):
            try:
                row = QRow.model_validate(raw)
                state = json.loads(row.state)
            except (ValidationError, json.JSONDecodeError) as error:
                raise ValueError(f"Q-table row {position}: {error}") from None
            if not (isinstance(state, list) and len(state) == 4 and all(isinstance(p, str) for p in state)):
                raise ValueError(
                    f"Q-table row {position}: state must be a JSON list of 4 strings: {row.state}"
                )
            table._q[tuple(state)][row.action] = [row.q_value, row.visits, row.updated_at]
        return table


class QLearner:
    """Q-learning proper: states from tasks, epsilon-greedy policy, one-step updates."""

    def __init__(
        self, config: QLearningConfig | None = None, seed: int | None = None, table: QTable | None = None
    ) -> None:
        self.config = config or QLearningConfig()
        self.table = table or QTable(self.config.initial_q)
        self._rng = random.Random(seed)
        self._recent: dict[str, deque[bool]] = {}
        self.actions: dict[str, None] = {}  # every action seen, in order: max_a' ranges over them

    def state(self, task: Task) -> State:
        cfg = self.config
        complexity = bucket(task.complexity, cfg.complexity_edges)
        return self._state(task.task_type, complexity, bucket(task.estimated_tokens, cfg.token_edges))

    def _state(self, task_type: str, complexity: str, tokens: str) -> State:
        recent = self._recent.get(task_type)
        rate = sum(recent) / len(recent) if recent else None
        return (task_type, complexity, tokens, bucket(rate, self.config.success_edges))

    def policy(self, state: State, actions: Sequence[str]) -> dict[str, float]:
        """Epsilon-greedy probabilities over `actions` (greedy ties share the greedy mass)."""
        self.actions.update(dict.fromkeys(actions))
        values = [self.table.value(state, a) for a in actions]
        best = max(values)
        greedy = [a for a, v in zip(actions, values) if v == best]
        explore = self.config.epsilon / len(actions)
        share = (1.0 - self.config.epsilon) / len(greedy)
        return {a: explore + (share if v == best else 0.0) for a, v in zip(actions, values)}

    def select(self, state: State, actions: Sequence[str]) -> str:
        return draw(self._rng, self.policy(state, actions))

    def learn(self, state: State, action: str, reward: float, next_state: State | None = None) -> float:
        """Q(s,a) += lr * (r + discount * max_a' Q(s',a') - Q(s,a)); no next state means terminal."""
        cfg = self.config
        self.actions[action] = None
        future = 0.0 if next_state is None else cfg.discount * self.table.best(next_state, self.actions)
        old = self.table.value(state, action)
        new = old + cfg.learning_rate * (reward + future - old)
        self.table.set(state, action, new)
        return new

    def record(self, task_type: str, success: bool) -> None:
        """Feed the recent-success bucket of `task_type`."""
        recent = self._recent.get(task_type)
        if recent is None:
            recent = self._recent[task_type] = deque(maxlen=self.config.recent_window)
        recent.append(success)

    def after(self, state: State) -> State:
        """`state` with its recent-success bucket brought up to date."""
        return self._state(*state[:3])


class QLearningStrategy:
    """Q-learning as a routing Strategy.

    An outcome carries no task id, so the states picks were made in are queued per (task type, target)
    and each outcome of that pair takes the oldest (outcomes of one target on one task type are assumed
    to arrive in decision order); an outcome nobody chose (a fallback attempt or imported history) is
    credited to the last state seen for its task type. `reward` maps an outcome to a reward (default:
    `reward()` on success and quality; outcomes carry no user feedback), or with `willingness_to_pay` L
    the net value `L * success - cost` in dollars. Save and load the table with `learner.table.to_rows()`
    and `QLearningStrategy(table=QTable.from_rows(rows))`.
    """

    name = "qlearning"

    def __init__(
        self,
        targets: Sequence[str] = (),
        seed: int | None = None,
        *,
        config: QLearningConfig | None = None,
        table: QTable | None = None,
        reward: Callable[[Outcome], float] | None = None,
        willingness_to_pay: float | None = None,
        **options,
    ) -> None:
        if config is not None and options:
            raise ValueError(f"give config or options ({', '.join(options)}), not both")
        if willingness_to_pay is not None:
            if reward is not None:
                raise ValueError("give reward or willingness_to_pay, not both")
            if not willingness_to_pay > 0:
                raise ValueError(f"willingness_to_pay must be > 0, got {willingness_to_pay}")
            reward = _net_value(willingness_to_pay)
        self.learner = QLearner(config or QLearningConfig(**options), seed, table)
        self.learner.actions.update(dict.fromkeys(targets))
        self.reward = reward or outcome_reward
        self._rng = random.Random(seed)
        self._pending: dict[tuple[str, str], deque[State]] = defaultdict(lambda: deque(maxlen=1024))
        self._last: dict[str, State] = {}
        self._chosen: OrderedDict[str, State] = OrderedDict()  # task id -> state, for late feedback

    def distribution(self, task: Task, targets: Sequence[Target], book: StatsBook) -> dict[str, float]:
        """The policy in `task`'s state, which becomes the last state seen for its task type (so an
        ensemble that draws from this distribution has its outcomes credited to that state) and the
        state feedback on this task will correct."""
        state = self._last[task.task_type] = self.learner.state(task)
        self._chosen[task.id] = state
        if len(self._chosen) > FEEDBACK_MEMORY:
            self._chosen.popitem(last=False)
        return self.learner.policy(state, [t.name for t in targets])

    def choose(self, task: Task, targets: Sequence[Target], book: StatsBook) -> Choice:
        probabilities = self.distribution(task, targets, book)
        names, state = list(probabilities), self._last[task.task_type]
        pick = draw(self._rng, probabilities)
        self._pending[(task.task_type, pick)].append(state)
        table = self.learner.table
        candidates = sorted(
            (
                Candidate(
                    target=name,
                    score=table.value(state, name),
                    samples=table.visits(state, name),
                    details={"propensity": probabilities[name]},
                )
                for name in names
            ),
            key=lambda c: c.score,
            reverse=True,
        )
        reason = (
            f"qlearning: drew {pick} with probability {probabilities[pick]:.3f} in state "
            f"{'/'.join(state)} (Q={table.value(state, pick):.3f}, best Q={candidates[0].score:.3f})"
        )
        return Choice(tuple(candidates), pick, probabilities[pick], reason)

    def observe(self, outcome: Outcome) -> None:
        pending = self._pending.get((outcome.task_type, outcome.target))
        if pending:
            state = pending.popleft()
        else:
            state = self._last.get(outcome.task_type, (outcome.task_type, "unknown", "unknown", "unknown"))
        self.learner.record(outcome.task_type, outcome.success)
        self.learner.learn(state, outcome.target, self.reward(outcome), self.learner.after(state))

    def feedback(self, task_id: str, target: str, success: bool, quality_score: float | None, verdict: Feedback) -> bool:
        """Correct Q(state, target) of a task this strategy chose for by the difference feedback makes to
        the reward: Q += lr * (reward(success, quality, verdict) - reward(success, quality)). Only with
        the seed's reward (not `willingness_to_pay`, whose reward is in dollars) and for tasks chosen in
        the last FEEDBACK_MEMORY decisions; False otherwise."""
        state = self._chosen.get(task_id)
        if state is None or self.reward is not outcome_reward:
            return False
        change = reward(success, quality_score, verdict) - reward(success, quality_score)
        self.learner.table.adjust(state, target, self.learner.config.learning_rate * change)
        return True
