"""Every error this package raises, in one tree; each names the thing at fault so the caller can act on it.

    RoutingError                       root: `except RoutingError` catches everything below
    ├── ConfigError (ValueError)       a configuration, option or input file is invalid
    │   ├── UnknownNameError (KeyError)    a name that is not defined (target, strategy, runtime, ...)
    │   │   └── UnknownTargetError
    │   ├── FleetConfigError               the local fleet's TOML
    │   └── DataFormatError                a data file (e.g. RouterBench CSV) is not in the documented format
    ├── NoEligibleTargetError          no configured target can take the task
    │   └── InfeasibleConstraintsError     no target or mix meets its constraints (strategies.optimizer)
    ├── AllTargetsFailedError          every candidate was tried or skipped
    ├── BudgetExceededError            a budget refuses the call's upper-bound cost (spend.budgets)
    ├── EmbeddingError                 an embedder cannot turn texts into vectors
    │   └── EmbedderUnavailableError       its model or package is not installed (the message names it)
    ├── StoreError                     the DuckDB store or its spool cannot do what was asked
    │   ├── StoreLockedError               another process holds the file's lock
    │   └── StoreCorruptError              the file is not a readable DuckDB store
    ├── LedgerError                    a shared budget ledger is misconfigured or cannot be reached
    └── ServerError (RuntimeError)     the local Prefect server or worker did not start or stop

The two errors that carry domain objects live beside them (module in brackets); every other is here.
Built-in bases are kept where callers relied on them (ValueError for bad configuration, KeyError for an
unknown name), so `except ValueError` keeps working beside `except RoutingError`.
"""

from __future__ import annotations

from collections.abc import Iterable


class RoutingError(Exception):
    """Base of every error raised by this package."""


class ConfigError(RoutingError, ValueError):
    """A configuration, option or input is invalid; the message names the field and the value."""


class UnknownNameError(ConfigError, KeyError):
    """`name` names no `kind` that exists; `known` lists those that do."""

    def __init__(self, kind: str, name: str, known: Iterable[str], hint: str = "") -> None:
        self.kind = kind
        self.name = name
        self.known = list(known)
        kinds = f"{kind[:-1]}ies" if kind.endswith("y") else f"{kind}s"
        message = f"unknown {kind} {name!r}; known {kinds}: {', '.join(self.known) or 'none'}"
        super().__init__(f"{message} ({hint})" if hint else message)

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class UnknownTargetError(UnknownNameError):
    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__("target", name, known)


class FleetConfigError(ConfigError):
    """The local fleet's configuration is invalid; the message names the file and the field."""


class DataFormatError(ConfigError):
    """A data file is not in the documented format; the message names the file, row and column."""


class NoEligibleTargetError(RoutingError):
    """No configured target can take the task (capabilities, constraints or availability)."""


class AllTargetsFailedError(RoutingError):
    """Every candidate was tried or skipped; `failures` maps each target to why."""

    def __init__(self, task_id: str, failures: dict[str, str]) -> None:
        self.task_id = task_id
        self.failures = failures
        lines = "; ".join(f"{target}: {why}" for target, why in failures.items())
        super().__init__(f"task {task_id}: every target failed ({lines})")


class EmbeddingError(RoutingError):
    """An embedder could not turn texts into vectors (e.g. an endpoint sent back something malformed)."""


class EmbedderUnavailableError(EmbeddingError):
    """The embedder's model or package is not installed; the message names the package to install."""


class StoreError(RoutingError):
    """The store cannot do what was asked; the message names the file and what to do."""


class StoreLockedError(StoreError):
    """Another process holds the store's write lock."""


class StoreCorruptError(StoreError):
    """The file is not a readable DuckDB store (truncated, overwritten or not DuckDB at all)."""


class LedgerError(RoutingError):
    """A shared budget ledger cannot be used: its server is unreachable or holds a limit set otherwise."""


class ServerError(RoutingError, RuntimeError):
    """The local Prefect server or worker could not be started, reached or stopped."""
