"""Grading an answer against a task's expectation, 0-100.

Used for routed calls whose task says what a good answer looks like, and by benchmarks. The parts
weigh equally among those the expectation sets: the expected answer appears, the share of keywords
present, every required substring present (all or nothing), and the minimum length.
"""

from __future__ import annotations

import re

from routing.models import Expectation

PASSING_QUALITY = 60.0


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.casefold()).strip()


def grade(output: str | None, expected: Expectation) -> float:
    """Quality of `output` under `expected`, from 0 (nothing met) to 100 (everything met)."""
    text = _normalise(output or "")
    parts: list[float] = []
    if expected.answer is not None:
        answer = _normalise(expected.answer)
        parts.append(1.0 if re.search(rf"(?<![\w.]){re.escape(answer)}(?![\w])", text) else 0.0)
    if expected.keywords:
        parts.append(sum(_normalise(k) in text for k in expected.keywords) / len(expected.keywords))
    if expected.required:
        parts.append(float(all(_normalise(r) in text for r in expected.required)))
    if expected.min_length:
        parts.append(min(1.0, len(output or "") / expected.min_length))
    if not parts:
        return 100.0 if text else 0.0
    return 100.0 * sum(parts) / len(parts)


def passes(quality: float) -> bool:
    return quality >= PASSING_QUALITY
