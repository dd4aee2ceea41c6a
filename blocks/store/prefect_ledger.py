"""A budget ledger on the Prefect server's global concurrency limits: budgets across machines.

Every router process already talks to one Prefect server. Its global concurrency limits are counters in
the server's database with an atomic "occupy N slots of every named limit, or of none": `POST
/v2/concurrency_limits/increment` runs one `UPDATE ... WHERE active_slots + N <= limit` over all the
names in one transaction and rolls it back unless every row matched (prefect/server/models/
concurrency_limits_v2.py `bulk_increment_active_slots`), answering 423 (or 422 when N > limit). So:

- one limit per (budget, period start), e.g. `adaptive-router-budget:daily:target:gpt-4o:2026-12-01`, its
  `limit` the budget in units (micro-dollars by default, rounded down), slot decay 0 (nothing leaks);
- a reservation increments the limit of every budget that applies by the estimate (rounded up to a unit)
  in one request: the server admits it only if it fits them all. That is the admission check, made in
  the server's database, so it holds for every process on every machine;
- the outcome releases estimate - actual (actual rounded up) or, when the call cost more, charges the
  excess without blocking: all of it if it fits, else as much as each limit has room for;
- a new period is a new limit, created on first use (seeded with the store's spend by `load`), so a reset
  races with nothing; `prune` deletes the limits of periods over for a day (run by `apply-retention`).

Bound, as `BudgetLedger`'s: for every budget and period, the actual cost of the admitted calls exceeds the
limit by at most the sum of their overshoots (actual - estimate, where positive); with estimates that are
upper bounds, by nothing. Why: the server never lets the counter pass the limit; each charge is at least
the dollars it stands for (estimates and actuals rounded up, the limit down); what a refused overshoot
leaves uncharged is at most that overshoot; and a release is sent again only on an answer saying it was
not carried out (503, 429), never after a lost answer, as Prefect's client would: applied twice, it would
hand back room never freed. A reservation or charge retried that way can only count a call twice.

A process that dies with a call in flight leaves its estimate charged to that period: the budget is
under-used by it until the period ends, never exceeded. Prefect's leases (`/increment-with-lease`) give
slots back after a timeout, but only whole (`/decrement-with-lease`): nothing turns a lease into a charge
of the actual cost, which would then have to be reserved again after the release, when another process
may have taken the room.

Limits: the server keeps `limit` as a 32-bit INTEGER on PostgreSQL, so a budget can hold 2**31 - 1 units
($2,147.48 in micro-dollars; pick `unit=0.0001` for up to $214,748). A limit switched off on the server
would admit every call, so it is refused; one edited there is set back to the budget, with a warning.
Both are checked when a process first uses the limit and again every `RECHECK_SECONDS` it goes on using it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import httpx
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
from prefect.client.schemas.responses import GlobalConcurrencyLimitResponse
from prefect.context import SettingsContext, get_settings_context
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES

from blocks.store.ledger import DEFAULT_NAMESPACE, DEFAULT_UNIT, NAME_BANNED, check_namespace, check_unit
from blocks.store.remote_spool import display_url
from routing.errors import ConfigError, LedgerError
from routing.models import Target, Task
from routing.spend.budgets import (
    Bucket,
    Budget,
    BudgetCheck,
    BudgetExceededError,
    BudgetLedger,
    Period,
    Reservation,
    SpendRow,
    Violation,
    _spend_row,
    _utc,
    next_period_start,
    next_reset,
    period_start,
)
from routing.spend.cost import check_amount, usd

logger = logging.getLogger("adaptive_router.ledger")

MAX_UNITS = 2**31 - 1
"""The largest `limit` every Prefect database keeps (PostgreSQL's INTEGER)."""
REFUSED = (422, 423)  # 423: does not fit now; 422: more slots than the limit has
NOT_DONE = (429, 503)  # answers to a request the server did not carry out, safe to send again
ATTEMPTS = 3
PAGE = 200  # the API's largest page of limits
PRUNE_GRACE = timedelta(days=1)
RECHECK_SECONDS = 60.0
"""How long a process trusts its last look at a limit being on and set to the budget: a limit switched
off or edited on the server is caught within this, at one read per limit per period."""


def _safe(value: str | None) -> str:
    """A scope value as a name part: characters Prefect bans (or ':') replaced, a hash keeping it unique."""
    if value is None:
        return "*"
    if not NAME_BANNED.search(value):
        return value
    return NAME_BANNED.sub("_", value) + "~" + hashlib.sha1(value.encode()).hexdigest()[:8]


class PrefectBudgetLedger(BudgetLedger):
    """`BudgetLedger`'s contract over global concurrency limits on the Prefect server (see the module).

    In a refusal, `spent` is the server's counter: settled costs and the estimates of calls in flight
    together (one counter holds both), and `reserved` is 0.
    """

    def __init__(
        self, budgets: Iterable[Budget], unit: float = DEFAULT_UNIT, namespace: str = DEFAULT_NAMESPACE
    ) -> None:
        super().__init__(budgets)
        self.unit = check_unit(unit)
        self.namespace = check_namespace(namespace)
        self._unit = Decimal(repr(self.unit))
        if too_large := [str(b) for b in self.budgets if self._limit(b) > MAX_UNITS]:
            raise ConfigError(
                f"{', '.join(too_large)}: more than {MAX_UNITS} units of ${self.unit:g} (at most "
                f"{usd(MAX_UNITS * self.unit)} per budget); choose a coarser unit, e.g. 'prefect?unit=0.0001'"
            )
        if not PREFECT_API_URL.value():
            raise ConfigError(
                "the Prefect budget ledger needs PREFECT_API_URL: the Prefect server every router process uses"
            )
        self._ready: dict[str, float] = {}  # limit name -> when this process created or checked it (monotonic)
        self._no_retries: tuple[object, object] | None = None
        self._open: tuple[int, SyncPrefectClient] | None = None  # (pid, client): a fork opens its own

    # -- units and names ----------------------------------------------------------------------------

    def _units(self, dollars: float, rounding: str = ROUND_CEILING) -> int:
        return int((Decimal(repr(float(dollars))) / self._unit).to_integral_value(rounding))

    def _dollars(self, units: int) -> float:
        return float(units * self._unit)

    def _limit(self, budget: Budget) -> int:
        return self._units(budget.limit, ROUND_FLOOR)

    def limit_name(self, bucket: Bucket) -> str:
        """The name of the server's limit for one (budget, period start)."""
        (period, scope, value), start = bucket
        return f"{self.namespace}:{period}:{scope}:{_safe(value)}:{start:%Y-%m-%d}"

    def _period_end(self, name: str) -> datetime | None:
        """When the period of a limit of this namespace ended, or None for a name that is not ours."""
        if not name.startswith(self.namespace + ":"):
            return None
        parts = name[len(self.namespace) + 1 :].split(":")
        try:
            start = datetime.strptime(parts[-1], "%Y-%m-%d").replace(tzinfo=UTC)
            return next_period_start(Period(parts[0]), start) if len(parts) == 4 else None
        except ValueError:
            return None

    # -- the server ---------------------------------------------------------------------------------

    def _client(self) -> SyncPrefectClient:
        """This process's client, kept open: opening one costs ~20 ms, two thirds of a reservation."""
        with self._lock:
            if self._open is None or self._open[0] != os.getpid():
                client = get_client(httpx_settings={}, sync_client=True)  # {}: a client of its own, not a run's
                self._open = (os.getpid(), client.__enter__())
            return self._open[1]

    def close(self) -> None:
        """Close this process's client (a later call opens another)."""
        with self._lock:
            if self._open is not None and self._open[0] == os.getpid():
                self._open[1].__exit__(None, None, None)
            self._open = None

    @contextmanager
    def _api(self, doing: str) -> Iterator[SyncPrefectClient]:
        try:
            yield self._client()
        except (httpx.HTTPError, ObjectNotFound) as exc:  # ObjectNotFound: a limit deleted under us (prune)
            url = display_url(PREFECT_API_URL.value())
            raise LedgerError(f"budget ledger on the Prefect server {url}: {doing}: {exc}") from exc

    @contextmanager
    def _at_most_once(self) -> Iterator[None]:
        """Prefect's client without retries: a retried request whose first answer was lost applies twice."""
        context = get_settings_context()
        if self._no_retries is None or self._no_retries[0] is not context.settings:
            no_retries = context.settings.copy_with_update(updates={PREFECT_CLIENT_MAX_RETRIES: 0})
            self._no_retries = (context.settings, no_retries)
        with SettingsContext(profile=context.profile, settings=self._no_retries[1]):
            yield

    @staticmethod
    def _read(client: SyncPrefectClient, name: str) -> GlobalConcurrencyLimitResponse | None:
        try:
            return client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            return None

    def _ensure(self, client: SyncPrefectClient, budget: Budget, bucket: Bucket, seed: int = 0) -> str:
        """The bucket's limit, created (holding `seed` units) unless it exists; an existing one is checked."""
        name = self.limit_name(bucket)
        checked = self._ready.get(name)
        if checked is not None and time.monotonic() - checked < RECHECK_SECONDS:
            return name
        limit = self._limit(budget)
        found = self._read(client, name)
        if found is None:
            try:
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(
                        name=name, limit=limit, active=True, active_slots=seed, slot_decay_per_second=0.0
                    )
                )
            except ObjectAlreadyExists:  # another process created it first
                found = client.read_global_concurrency_limit_by_name(name)
        if found is not None:
            if not found.active:
                raise LedgerError(
                    f"the limit {name!r} of {budget} is switched off on the Prefect server, so it would admit "
                    f"every call: switch it on, or delete it to start the period from zero"
                )
            if found.limit != limit or found.slot_decay_per_second:
                logger.warning(
                    "limit %r on the Prefect server had limit %d and decay %g; set back to %d (%s), decay 0",
                    name, found.limit, found.slot_decay_per_second, limit, budget,
                )  # fmt: skip
                client.update_global_concurrency_limit(
                    name, GlobalConcurrencyLimitUpdate(limit=limit, slot_decay_per_second=0.0)
                )
        self._ready[name] = time.monotonic()
        return name

    def _forget(self, names: Iterable[str]) -> None:
        """Look at these limits again on their next use (deleted on the server)."""
        for name in names:
            self._ready.pop(name, None)

    def _increment(self, client: SyncPrefectClient, names: list[str], units: int) -> set[str] | None:
        """Occupy `units` of every limit in `names`, or of none (None); the names the server knew."""
        try:
            response = client.increment_concurrency_slots(names, units, "concurrency")
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code in REFUSED:
                return None
            raise
        return {limit["name"] for limit in response.json()}

    def _release(self, client: SyncPrefectClient, names: list[str], units: int) -> None:
        """Hand back `units`, retrying only answers that say nothing was done (503: e.g. the server's
        database was locked, 429: too many requests); a lost answer is never retried."""
        for attempt in range(ATTEMPTS):
            try:
                with self._at_most_once():
                    client.request("POST", "/v2/concurrency_limits/decrement", json={"names": names, "slots": units})
                return
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code not in NOT_DONE or attempt == ATTEMPTS - 1:
                    raise
                time.sleep(0.1 * 2**attempt)

    def _charge(self, client: SyncPrefectClient, applicable: Sequence[tuple[Budget, Bucket]], units: int) -> None:
        """Add `units` without blocking: to every limit if they all have room, else as much as each has."""
        names = [self._ensure(client, budget, bucket) for budget, bucket in applicable]
        if not units or self._increment(client, names, units) is not None:
            return
        for name in names:
            for _ in range(ATTEMPTS):  # room taken meanwhile: look again; what stays uncharged is within the bound
                found = self._read(client, name)
                room = min(units, found.limit - found.active_slots) if found else 0
                if room <= 0 or self._increment(client, [name], room) is not None:
                    break

    def _figures(
        self, client: SyncPrefectClient, applicable: Sequence[tuple[Budget, Bucket]], units: int, estimate: float,
        now: datetime,
    ) -> BudgetCheck:  # fmt: skip
        violations = []
        for budget, bucket in applicable:
            found = self._read(client, self.limit_name(bucket))
            charged, limit = (found.active_slots, found.limit) if found else (0, self._limit(budget))
            if charged + units > limit:
                violations.append(
                    Violation(budget, bucket[1], next_reset(budget, now), self._dollars(charged), 0.0, estimate)
                )
        return BudgetCheck(tuple(violations))

    def _admit(self, applicable: Sequence[tuple[Budget, Bucket]], units: int, estimate: float, now: datetime) -> None:
        with self._api("reserving") as client:
            for _ in range(ATTEMPTS):
                names = [self._ensure(client, budget, bucket) for budget, bucket in applicable]
                known = self._increment(client, names, units)
                if known is not None:
                    if not (gone := set(names) - known):
                        return
                    # Deleted meanwhile, so the others were charged without it: hand back, create, again.
                    if held := [n for n in names if n in known]:
                        self._release(client, held, units)
                    self._forget(gone)
                    continue
                check = self._figures(client, applicable, units, estimate, now)
                if not check.allowed:
                    raise BudgetExceededError(check)
                # Refused, yet every budget had room when read: another call settled meanwhile; try again.
        raise LedgerError(f"the Prefect server refused a reservation of {usd(estimate)} {ATTEMPTS} times, "
                          "though every budget had room each time it was read")  # fmt: skip

    # -- the ledger's contract ----------------------------------------------------------------------

    def reserve(self, task: Task, target: Target, estimate: float, now: datetime) -> Reservation:
        check_amount("estimate", estimate)
        now = _utc(now)
        applicable = self._applicable(task.task_type, target.name, now)
        if (units := self._units(estimate)) and applicable:
            self._admit(applicable, units, estimate, now)
        with self._lock:
            reservation = Reservation(next(self._ids), estimate, tuple(bucket for _, bucket in applicable))
            self._inflight[reservation.id] = reservation
        return reservation

    def reconcile(self, reservation: Reservation, actual: float) -> float:
        """Release what the call did not cost, or charge what it cost more; a server that cannot be
        reached (or a limit deleted meanwhile) leaves the estimate charged (the budget under-used) and is
        logged, never raised: the call was made."""
        check_amount("actual", actual)
        with self._lock:
            if self._inflight.pop(reservation.id, None) is None:
                raise ValueError(f"reservation {reservation.id} is not in flight (reconciled twice?)")
        held, cost = self._units(reservation.estimate), self._units(actual)
        by_key = {b.key: b for b in self.budgets}
        applicable = [(by_key[bucket[0]], bucket) for bucket in reservation.buckets]
        if applicable and cost != held:
            try:
                with self._api("settling a call") as client:
                    if cost < held:
                        self._release(client, [self.limit_name(b) for _, b in applicable], held - cost)
                    else:
                        self._charge(client, applicable, cost - held)
            except LedgerError as exc:
                logger.warning("%s (%s stays charged)", exc, usd(reservation.estimate))
        return max(0.0, actual - reservation.estimate)

    def record(self, task_type: str, target: str, cost: float, when: datetime) -> None:
        """Charge a cost made elsewhere; a ledger that cannot be used is logged, never raised: the call was made."""
        check_amount("cost", cost)
        applicable = self._applicable(task_type, target, _utc(when, "when"))
        if applicable and cost:
            try:
                with self._api("recording a cost") as client:
                    self._charge(client, applicable, self._units(cost))
            except LedgerError as exc:
                logger.warning("%s (%s not charged)", exc, usd(cost))

    def load(self, rows: Iterable[SpendRow | Sequence | Mapping]) -> None:
        """Seed the limits the server does not have yet with the rows' spend; existing ones are kept:
        the server's counter already holds every process's calls, newer than any aggregate."""
        by_key = {b.key: b for b in self.budgets}
        parsed = [r for r in map(_spend_row, rows) if r.budget_key in by_key]
        if parsed:
            with self._api("seeding budgets") as client:
                for row in parsed:
                    self._ensure(client, by_key[row.budget_key], (row.budget_key, row.period_start), self._units(row.spent))

    def check(self, task: Task, target: Target, estimate: float, now: datetime) -> BudgetCheck:
        check_amount("estimate", estimate)
        now = _utc(now)
        applicable = self._applicable(task.task_type, target.name, now)
        if not (units := self._units(estimate)) or not applicable:
            return BudgetCheck()
        with self._api("reading budgets") as client:
            return self._figures(client, applicable, units, estimate, now)

    def spent(self, budget: Budget, now: datetime) -> float:
        """Dollars charged to `budget` this period: settled costs and estimates in flight (one counter)."""
        bucket = (budget.key, period_start(budget.period, _utc(now)))
        with self._api("reading a budget") as client:
            found = self._read(client, self.limit_name(bucket))
        return self._dollars(found.active_slots) if found else 0.0

    def remaining(self, task: Task, target: Target, now: datetime) -> float | None:
        applicable = self._applicable(task.task_type, target.name, _utc(now))
        if not applicable:
            return None
        with self._api("reading budgets") as client:
            rooms = []
            for budget, bucket in applicable:
                found = self._read(client, self.limit_name(bucket))
                rooms.append(found.limit - found.active_slots if found else self._limit(budget))
        return max(0.0, self._dollars(min(rooms)))

    def prune(self, now: datetime, grace: timedelta = PRUNE_GRACE) -> list[str]:
        """Delete this namespace's limits whose period ended more than `grace` before `now`; their names."""
        cutoff = _utc(now) - grace
        with self._api("pruning budgets") as client:
            names, offset = [], 0
            while page := client.read_global_concurrency_limits(limit=PAGE, offset=offset):
                names += [limit.name for limit in page]
                offset += len(page)
            ended = [name for name in names if (end := self._period_end(name)) is not None and end <= cutoff]
            for name in ended:
                with suppress(ObjectNotFound):  # another pruner was first
                    client.delete_global_concurrency_limit_by_name(name)
        self._forget(ended)
        return ended
