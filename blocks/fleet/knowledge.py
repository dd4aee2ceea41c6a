"""What the fleet knows: a bank of short tasks with checkable answers, plus arithmetic made on the fly.

The fleet answers from here and the demo draws its tasks from here, so every answer the router judges
has a known right answer (and keywords) to score against; arithmetic keeps the supply of math unbounded.
"""

from __future__ import annotations

import json
import random
import re
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from routing.models import Category, Expectation

BANK_PATH = Path(__file__).with_name("bank.jsonl")
ARITHMETIC_SHARE = 0.25
ARITHMETIC_TASK_TYPE = "arithmetic"

_ARITHMETIC = re.compile(r"what\s+is\s+(-?\d+)\s*([-+*])\s*(-?\d+)\s*\?", re.IGNORECASE)
_OPERATIONS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
_CATEGORY_WORDS: dict[Category, frozenset[str]] = {
    Category.CODING: frozenset(
        ["code", "python", "function", "bug", "sql", "javascript", "algorithm", "compile", "api", "class", "regex", "git", "http"]
    ),
    Category.MATH: frozenset(["integral", "derivative", "equation", "solve", "sum", "prime", "probability", "calculate"]),
    Category.RESEARCH: frozenset(["study", "evidence", "paper", "scientist", "theory", "history", "experiment", "cite"]),
    Category.LANGUAGE: frozenset(["translate", "grammar", "synonym", "spelling", "word", "sentence", "french", "spanish"]),
    Category.EMPATHY: frozenset(["feel", "sad", "lonely", "anxious", "stressed", "upset", "worried", "grief", "nervous"]),
}
_UNSURE = "I am not certain about that one."


class BankEntry(BaseModel):
    """One task with its right answer; a correct reply contains `answer` and every keyword."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: Category
    task_type: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    keywords: tuple[str, ...] = ()

    @property
    def expectation(self) -> Expectation:
        return Expectation(answer=self.answer, keywords=self.keywords)


def normalize(text: str) -> str:
    return " ".join(text.lower().split())


def load_bank(path: str | Path = BANK_PATH) -> list[BankEntry]:
    """Parse a JSONL bank; a bad line or a repeated prompt raises ValueError naming file and line."""
    path = Path(path)
    entries: list[BankEntry] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = BankEntry.model_validate(json.loads(line))
        except (json.JSONDecodeError, ValidationError) as exc:
            raise ValueError(f"{path}:{number}: invalid bank entry: {exc}") from exc
        key = normalize(entry.prompt)
        if key in seen:
            raise ValueError(f"{path}:{number}: prompt repeats line {seen[key]}: {entry.prompt!r}")
        seen[key] = number
        entries.append(entry)
    return entries


@lru_cache(maxsize=1)
def _default_bank() -> tuple[dict[str, BankEntry], tuple[BankEntry, ...]]:
    entries = load_bank()
    return {normalize(e.prompt): e for e in entries}, tuple(entries)


def lookup(prompt: str) -> BankEntry | None:
    """The task a prompt asks, if known: an exact bank prompt, a bank prompt quoted inside it
    (agents wrap delegated tasks in context), or an arithmetic question."""
    text = normalize(prompt)
    by_prompt, _ = _default_bank()
    if text in by_prompt:
        return by_prompt[text]
    quoted = [key for key in by_prompt if key in text]
    if quoted:
        return by_prompt[max(quoted, key=len)]
    match = _ARITHMETIC.search(text)
    if match is None:
        return None
    a, op, b = int(match.group(1)), match.group(2), int(match.group(3))
    return _arithmetic_entry(a, op, b)


def _arithmetic_entry(a: int, op: str, b: int) -> BankEntry:
    return BankEntry(
        category=Category.MATH,
        task_type=ARITHMETIC_TASK_TYPE,
        prompt=f"What is {a} {op} {b}?",
        answer=str(_OPERATIONS[op](a, b)),
    )


def arithmetic_question(rng: random.Random) -> BankEntry:
    op = rng.choice(sorted(_OPERATIONS))
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    if op == "-" and b > a:
        a, b = b, a
    return _arithmetic_entry(a, op, b)


def generate_tasks(n: int, seed: int) -> list[BankEntry]:
    """A reproducible mix of bank entries and fresh arithmetic (about ARITHMETIC_SHARE of them)."""
    rng = random.Random(seed)
    _, entries = _default_bank()
    return [
        arithmetic_question(rng) if rng.random() < ARITHMETIC_SHARE else rng.choice(entries)
        for _ in range(n)
    ]


def detect_category(text: str) -> Category:
    """A crude guess for prompts the bank does not know: the category whose words occur most."""
    words = set(re.findall(r"[a-z]+", text.lower()))
    hits = {category: len(words & vocabulary) for category, vocabulary in _CATEGORY_WORDS.items()}
    best = max(hits, key=hits.__getitem__)
    return best if hits[best] else Category.GENERAL


def correct_reply(entry: BankEntry) -> str:
    reply = f"{entry.answer}."
    return f"{reply} Key points: {', '.join(entry.keywords)}." if entry.keywords else reply


def wrong_reply(entry: BankEntry, rng: random.Random) -> str:
    """A plausible wrong answer (a nearby number, or another task's answer of the same kind)
    that contains neither the right answer nor any keyword, so a judge cannot score it correct."""
    _, entries = _default_bank()
    candidates = [f"{near}." for near in _nearby_numbers(entry.answer, rng)]
    same_kind = [e.answer for e in entries if e.category == entry.category and e.answer != entry.answer]
    rng.shuffle(same_kind)
    candidates += [f"{answer}." for answer in same_kind] + [_UNSURE]
    forbidden = [entry.answer.lower(), *(k.lower() for k in entry.keywords)]
    return next(c for c in candidates if not any(f in c.lower() for f in forbidden))


def _nearby_numbers(answer: str, rng: random.Random) -> list[int]:
    try:
        value = int(answer)
    except ValueError:
        return []
    offsets = [d for d in range(-10, 11) if d]
    rng.shuffle(offsets)
    return [value + d for d in offsets]


def generic_reply(prompt: str, category: Category, helpful: bool) -> str:
    """For prompts outside the bank: a helpful model engages with the question, a weak one deflects."""
    if not helpful:
        return _UNSURE
    topic = " ".join(prompt.split()[:12]) or "your message"
    return f"Here is my take on your {category.value} question ({topic}): it depends on what matters to you."
