"""The validation every block of this package shares: unknown keys refused by name, numbers finite.

Prefect's `Block` allows extra keys (`extra="allow"`) because it threads its own bookkeeping through
the constructor and saved documents (`block_type_slug`, `_block_document_id`, `_block_document_name`,
`_is_anonymous`), so `extra="forbid"` would break `Block.load`. Instead a validator lets exactly those
through and refuses any other unknown key, naming it and the nearest field: `timeout_second=5` is an
error, not a silently ignored setting that leaves the call to time out at the default 60 s. Text with
NUL or a lone surrogate is refused too (DuckDB and JSON readers downstream would choke on it).
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from routing.models import FINITE, clean_text

PREFECT_KEYS = frozenset({"block_type_slug", "_block_document_id", "_block_document_name", "_is_anonymous"})


def unknown_keys_message(owner: str, unknown: list[str], known: list[str]) -> str:
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(key, known, n=1)
        parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(parts)} for {owner}; known: {', '.join(known)}"


class StrictBlock(BaseModel):
    """Mixed into this package's blocks (`class X(Block, StrictBlock)`): refuses unknown keys, naming
    them, and non-finite numbers. A mixin, not a Block, so Prefect never sees it as a block type."""

    model_config = ConfigDict(**FINITE, hide_input_in_errors=True)  # inputs may hold keys

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = {name for name in cls.model_fields} | {
                f.alias for f in cls.model_fields.values() if f.alias
            }
            unknown = sorted(str(k) for k in data if k not in known and k not in PREFECT_KEYS)
            if unknown:
                raise ValueError(unknown_keys_message(cls.__name__, unknown, sorted(cls.model_fields)))
            for key, value in data.items():
                if not _clean_text(value):
                    raise ValueError(f"{key}: text must not hold NUL or a lone UTF-16 surrogate")
        return data


def _clean_text(value: Any) -> bool:
    """Whether every string in `value` is free of NUL and lone surrogates (configuration is refused,
    not cleaned: a setting silently changed is worse than one refused)."""
    if isinstance(value, str):
        return "\x00" not in value and clean_text(value) == value
    if isinstance(value, dict):
        return all(_clean_text(k) and _clean_text(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return all(_clean_text(v) for v in value)
    return True
