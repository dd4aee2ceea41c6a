"""A bandit as a routing Strategy: one arm per target, one context per (task type, category), rewards
from outcomes, and the published priors a stationary bandit may be seeded with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING

from routing.models import Outcome, Target, Task
from routing.stats.book import StatsBook
from routing.strategies.bandits.learners import Bandit, GaussianThompsonSampling
from routing.strategies.base import Choice, candidate

if TYPE_CHECKING:
    from routing.published import PublishedState


def success_reward(outcome: Outcome) -> float:
    return 1.0 if outcome.success else 0.0


def quality_reward(outcome: Outcome) -> float:
    """Quality on a 0-1 scale when it was judged, else success."""
    if outcome.quality_score is not None:
        return outcome.quality_score / 100.0
    return success_reward(outcome)


_score = attrgetter("score")


def task_context(task_type: str, category: str) -> tuple[str, str]:
    return (task_type, str(category))


class BanditStrategy:
    """A bandit as a routing Strategy: one arm per target, one context per (task type, category).

    The pick is the bandit's own pick among the eligible targets (a real draw for Thompson sampling),
    logged with the probability the bandit had of making it. With `willingness_to_pay` L (dollars per
    unit of reward), each target's value is lowered by its mean cost per call on the task type (from the
    shared StatsBook; 0 until it has one) divided by L: the router maximises `L * reward - cost`.
    Candidates are ranked by that estimated value (an untried target scores 0); their details carry the
    mean reward and the cost penalty. The reward defaults to success (0/1), or quality/100 for
    `GaussianThompsonSampling`.
    """

    def __init__(
        self,
        bandit_cls: type[Bandit],
        targets: Sequence[str],
        seed: int | None = None,
        *,
        willingness_to_pay: float | None = None,
        reward: Callable[[Outcome], float] | None = None,
        name: str | None = None,
        **options,
    ) -> None:
        if willingness_to_pay is not None and not willingness_to_pay > 0:
            raise ValueError(f"willingness_to_pay must be > 0, got {willingness_to_pay}")
        self.bandit = bandit_cls(list(targets), seed, **options)
        self.name = name or bandit_cls.name
        self.willingness_to_pay = willingness_to_pay
        self.reward = reward or (quality_reward if bandit_cls is GaussianThompsonSampling else success_reward)
        self._latest: tuple | None = None  # (task type, category, names, book) of the latest decision
        self._repeated = False  # whether the decision before it had the same frame

    def distribution(self, task: Task, targets: Sequence[Target], book: StatsBook) -> dict[str, float]:
        """The probability of each eligible target being picked for `task` now."""
        names = self._names(targets)
        context, penalty = self._frame(task.task_type, task.category, names, book)
        return self.bandit.probabilities(context, names, penalty)

    def choose(self, task: Task, targets: Sequence[Target], book: StatsBook) -> Choice:
        names = self._names(targets)
        context, penalty = self._frame(task.task_type, task.category, names, book)
        latest = self._latest
        self._repeated = (
            latest is not None and latest[0] == task.task_type and latest[1] == task.category and latest[2] == names
        )
        self._latest = (task.task_type, task.category, names, book)
        bandit = self.bandit
        j, propensity, view = bandit.pick_in_view(context, names, penalty)
        candidates = self._ranking(view, names, task.task_type, penalty, book)
        pick, mean, count = names[j], bandit.estimate(view, j), view.n[j]
        estimate = "untried" if mean is None else f"mean reward {mean:.3f} over {count:.0f} calls"
        # The propensity is the decision's `probability`, possibly still Deferred: not repeated here.
        reason = f"{self.name}: drew {pick} for {task.task_type}/{task.category} ({estimate})"
        return Choice(candidates, pick, propensity, reason)

    def _ranking(self, view, names: list[str], task_type: str, penalty, book: StatsBook) -> tuple:
        """The candidates best first, kept with the view: only the rows whose view statistics or book
        entries changed since the last decision in this view are rebuilt (one or two after an update)."""
        kept = view.extra.get("ranking")
        if kept is not None and kept[0] is book and kept[1] == view.version and kept[2] == book.version:
            return kept[4]
        by_row = kept[3] if kept is not None else None
        if by_row is None or kept[0] is not book:
            rows = range(len(names))
            by_row = [None] * len(names)
        else:
            since = kept[1]
            if since == view.version:
                rows = set()
            elif since == view.version - 1:
                rows = set(view.last_rows)
            else:
                rows = {r for r, v in enumerate(view.row_version) if v > since}
            if book.version != kept[2]:
                if book.version == kept[2] + 1:
                    where = view.extra.get("rows") or view.extra.setdefault("rows", {n: r for r, n in enumerate(names)})
                    rows.update(where[name] for name, kind in book.last_changed if kind == task_type and name in where)
                else:
                    rows = range(len(names))
        bandit = self.bandit
        for row in rows:
            name = names[row]
            stats = book.get(name, task_type)
            mean = bandit.estimate(view, row)
            cost = penalty[row] if penalty is not None else 0.0
            details = {"cost_penalty": cost}
            if mean is not None:
                details["mean_reward"] = mean
            score = 0.0 if mean is None else mean - cost
            by_row[row] = candidate(name, score, stats, details, samples=round(view.n[row]))
        candidates = tuple(sorted(by_row, key=_score, reverse=True))
        view.extra["ranking"] = (book, view.version, book.version, by_row, candidates)
        return candidates

    def adopt(self, state: PublishedState, prior_cap: int) -> list[str]:
        """Seed a stationary success-reward bandit that has learned nothing yet with the published priors.

        Seeding goes through the bandit's public `update`, which under a discount or a window would decay
        or evict one arm's seeds while adding another's; seeding a bandit that already learned would count
        the published history twice.
        """
        bandit, name = self.bandit, self.name
        if self.reward is not success_reward:
            return [f"{name}: not seeded (its reward is not success, which is all the priors count)"]
        if bandit.options.discount is not None or bandit.options.window is not None:
            return [f"{name}: not seeded (it forgets by discount or window, and seeds would be forgotten unevenly)"]
        if any(bandit.counts().values()):
            return [f"{name}: not seeded (it has already learned from live calls)"]
        calls = 0
        for prior in state.priors:
            successes, failures = prior.capped(prior_cap)
            bandit.add_arm(prior.target)
            context = task_context(prior.task_type, prior.category)
            for reward, times in ((1.0, successes), (0.0, failures)):
                for _ in range(times):
                    bandit.update(prior.target, reward, context)
            calls += successes + failures
        return [f"{name}: seeded with {len(state.priors)} priors ({calls} calls, at most {prior_cap} each)"]

    def observe(self, outcome: Outcome) -> None:
        """Learn from `outcome`; if the latest two decisions were made in its context (a run of them),
        bring that view and ranking up to date now (see `Bandit.warm`): the next decision there, likely
        in the same context, then finds its work done; the work moves off the decision's path, it is not
        saved. Decisions in rotation over contexts are not warmed (each view would be stale again before
        its next use)."""
        self.bandit.add_arm(outcome.target)
        context = task_context(outcome.task_type, outcome.category)
        self.bandit.update(outcome.target, self.reward(outcome), context)
        latest = self._latest
        if self._repeated and latest[0] == outcome.task_type and latest[1] == outcome.category:
            task_type, category, names, book = latest
            context, penalty = self._frame(task_type, category, names, book)
            self._ranking(self.bandit.warm(context, names), names, task_type, penalty, book)

    def _names(self, targets: Sequence[Target]) -> list[str]:
        """The eligible targets' names, each an arm of the bandit (new ones added untried)."""
        names = [t.name for t in targets]
        known = self.bandit._index
        for name in names:
            if name not in known:
                self.bandit.add_arm(name)
        return names

    def _frame(self, task_type: str, category: str, names: list[str], book: StatsBook):
        """(bandit context, cost penalty per name or None) for one decision."""
        context = (task_type, str(category))
        if self.willingness_to_pay is None:
            return context, None
        penalty = []
        for name in names:
            stats = book.get(name, task_type)
            penalty.append((stats.mean_cost or 0.0) / self.willingness_to_pay if stats else 0.0)
        return context, penalty
