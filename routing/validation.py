"""Small checks every configuration shares, written once so their messages read the same everywhere."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from pydantic import ValidationError


def repeated(values: Iterable[str]) -> list[str]:
    """The values that occur more than once, sorted."""
    return sorted(value for value, count in Counter(values).items() if count > 1)


def require_unique(values: Iterable[str], what: str) -> None:
    """Raise ValueError naming every repeated value: `what` says what they are, e.g. "target names"."""
    if duplicates := repeated(values):
        raise ValueError(f"duplicate {what}: {', '.join(duplicates)}")


def describe(exc: ValidationError, first_only: bool = False, top: str = "record") -> str:
    """A pydantic error as `field.path: message; ...` (`top` names a whole-object error)."""
    errors = exc.errors()[:1] if first_only else exc.errors()
    return "; ".join(f"{'.'.join(str(part) for part in e['loc']) or top}: {e['msg']}" for e in errors)
