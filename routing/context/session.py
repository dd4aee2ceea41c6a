"""Session continuity: a conversation stays on one target while its topic does.

Switching model mid-conversation changes tone and loses the target's context (caches, agent memory),
so a session keeps its target until one of these happens:

- the topic changes: the message's category is a specific one (not GENERAL) and differs from the
  session's, or the message has at least `min_keywords` keywords and fewer than `min_overlap` of them
  were seen in the session before. Short follow-ups ("why?", "make it faster") and GENERAL chatter
  inside a topic therefore continue it;
- the session's target is no longer among the candidates the strategy ranked (unavailable, broken
  circuit, or ineligible for this task);
- the session was idle longer than `ttl_seconds`.

A continued turn's pick is certain given the session state, so its logged propensity is 1.0; a re-routed
turn keeps the strategy's own pick and propensity. State is plain rows so the store can persist it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from routing.context.category import detect_category
from routing.errors import UnknownNameError
from routing.models import FINITE, Category, Decision, Task, utcnow

_TOKEN = re.compile(r"[a-z][a-z0-9_+#]{2,}")
_STOPWORDS = frozenset(
    ["about", "above", "after", "again", "also", "and", "any", "are", "because", "been", "before", "being", "below", "between", "both", "but", "can", "could", "did", "does", "doing", "done", "down", "during", "each", "few", "for", "from", "further", "had", "has", "have", "having", "her", "here", "hers", "him", "his", "how", "into", "its", "itself", "just", "more", "most", "myself", "nor", "not", "now", "off", "once", "only", "other", "our", "ours", "out", "over", "own", "same", "she", "should", "some", "such", "than", "that", "the", "their", "theirs", "them", "then", "there", "these", "they", "this", "those", "through", "too", "under", "until", "very", "was", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours", "yourself", "please", "thanks", "thank", "hello", "could", "would", "want", "need", "help", "like", "make", "let", "get", "use", "using", "give", "tell", "show", "know", "think", "really", "still", "one", "two", "way", "thing", "things", "something", "anything", "ok", "okay", "yes", "yeah", "sure"]
)


def keywords(text: str, limit: int = 8) -> tuple[str, ...]:
    """The `limit` most frequent content words (3+ letters, no stopwords, plural 's' dropped)."""
    words = []
    for token in _TOKEN.findall(text.lower()):
        if token in _STOPWORDS:
            continue
        if len(token) > 4 and token.endswith("s") and not token.endswith("ss"):
            token = token[:-1]
        words.append(token)
    return tuple(word for word, _ in Counter(words).most_common(limit))  # ties: first seen first


class SessionState(BaseModel):
    """One session as stored: its target and the topic it is on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    session_id: str = Field(min_length=1)
    target: str = Field(min_length=1)
    category: Category
    keywords: tuple[str, ...] = ()
    turns: PositiveInt = 1
    updated_at: datetime


class SessionConfig(BaseModel):
    """When a session is idle for good, and how much a message must share with it to stay on topic."""

    model_config = ConfigDict(extra="forbid", frozen=True, **FINITE)

    ttl_seconds: float = Field(default=1800, gt=0)
    min_overlap: float = Field(
        default=0.2, ge=0, le=1, description="Share of a message's keywords seen before."
    )
    min_keywords: PositiveInt = Field(default=3, description="Messages with fewer keywords are follow-ups.")
    keywords_per_turn: PositiveInt = 8
    max_keywords: PositiveInt = Field(default=32, description="Size of a session's keyword signature.")


class SessionTracker:
    """Keeps each session on its target while its topic holds; see the module docstring for the rule."""

    def __init__(
        self,
        config: SessionConfig | None = None,
        classify: Callable[[str], Category] = detect_category,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config or SessionConfig()
        self.classify = classify
        self.clock = clock
        self._sessions: dict[str, SessionState] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: str) -> SessionState | None:
        """The live state of a session; an idle one past its TTL is dropped and None returned."""
        state = self._sessions.get(session_id)
        if state is not None and self._expired(state, self.clock()):
            del self._sessions[session_id]
            return None
        return state

    def route(self, task: Task, choose: Callable[[Task], Decision]) -> Decision:
        """Route `task` with `choose` (e.g. `Router.choose`); keep the session's target if the topic holds."""
        decision = choose(task)
        if task.session_id is None:
            return decision
        category = task.category if "category" in task.model_fields_set else self.classify(task.payload)
        words = keywords(task.payload, self.config.keywords_per_turn)
        state = self.get(task.session_id)
        why = self._why_reroute(state, category, words, {c.target for c in decision.candidates})
        if why is None:
            merged = tuple(dict.fromkeys(words + state.keywords))[: self.config.max_keywords]
            self._save(state.model_copy(update={"keywords": merged, "turns": state.turns + 1}))
            return decision.model_copy(
                update={
                    "pick": state.target,
                    "probability": 1.0,
                    "reason": f"session {task.session_id}: same topic, staying on {state.target} "
                    f"(turn {state.turns + 1})",
                }
            )
        self._save(
            SessionState(
                session_id=task.session_id,
                target=decision.pick,
                category=category,
                keywords=words,
                turns=state.turns + 1 if state else 1,
                updated_at=self.clock(),
            )
        )
        return decision.model_copy(update={"reason": f"session {task.session_id}: {why}; {decision.reason}"})

    def set_target(self, session_id: str, target: str) -> None:
        """Record that another target served the session's turn (after a fallback), so it sticks."""
        state = self.get(session_id)
        if state is None:
            raise UnknownNameError("live session", session_id, [])
        self._save(state.model_copy(update={"target": target}))

    def expire(self) -> int:
        """Drop every session idle past its TTL; returns how many were dropped."""
        now = self.clock()
        stale = [sid for sid, state in self._sessions.items() if self._expired(state, now)]
        for sid in stale:
            del self._sessions[sid]
        return len(stale)

    def to_rows(self) -> list[dict[str, Any]]:
        """Plain rows: session_id, target, category, keywords (list), turns, updated_at."""
        return [
            {**state.model_dump(), "category": state.category.value, "keywords": list(state.keywords)}
            for state in self._sessions.values()
        ]

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]], **kwargs: Any) -> SessionTracker:
        """Rebuild from stored rows, validating each (naming the bad field) and dropping expired ones."""
        tracker = cls(**kwargs)
        for row in rows:
            tracker._save(SessionState.model_validate(row), touch=False)
        tracker.expire()
        return tracker

    def _why_reroute(
        self, state: SessionState | None, category: Category, words: tuple[str, ...], candidates: set[str]
    ) -> str | None:
        """Why this turn must be routed afresh, or None when the session continues."""
        if state is None:
            return "new session"
        if state.target not in candidates:
            return f"{state.target} is not available, re-routed"
        if category not in (Category.GENERAL, state.category):
            return f"topic changed from {state.category.value} to {category.value}, re-routed"
        if len(words) >= self.config.min_keywords:
            overlap = len(set(words) & set(state.keywords)) / len(words)
            if overlap < self.config.min_overlap:
                return f"topic changed (keyword overlap {overlap:.2f}), re-routed"
        return None

    def _expired(self, state: SessionState, now: datetime) -> bool:
        return now - state.updated_at > timedelta(seconds=self.config.ttl_seconds)

    def _save(self, state: SessionState, touch: bool = True) -> None:
        if touch:
            state = state.model_copy(update={"updated_at": self.clock()})
        self._sessions[state.session_id] = state
