"""The benchmark suite: cases per category with what a good answer contains, loaded from TOML.

`suite.toml` ships six categories (coding, math, research, language, empathy, general), four cases
each. A suite is validated whole: unique case ids, a case sets at least one grading criterion, and
every category has a case, so capability scores never silently miss a category.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from routing.models import Category, Expectation, Task
from routing.validation import describe, repeated

DEFAULT_SUITE = Path(__file__).with_name("suite.toml")


class BenchmarkCase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9-]*$")
    category: Category
    task_type: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    expected: Expectation

    @field_validator("expected")
    @classmethod
    def _gradable(cls, value: Expectation) -> Expectation:
        if value.answer is None and not (value.keywords or value.required or value.min_length):
            raise ValueError("must set at least one of answer, keywords, required or min_length")
        return value

    def task(self) -> Task:
        """A fresh task (new id) asking this case."""
        return Task(
            task_type=self.task_type,
            category=self.category,
            payload=self.prompt,
            expected=self.expected,
            metadata={"benchmark_case": self.id},
        )


class BenchmarkSuite(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cases: tuple[BenchmarkCase, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _complete(self) -> BenchmarkSuite:
        ids = [c.id for c in self.cases]
        if duplicates := repeated(ids):
            raise ValueError(f"cases: duplicate case ids {', '.join(duplicates)}")
        missing = sorted(set(Category) - {c.category for c in self.cases})
        if missing:
            raise ValueError(f"cases: no case for categories {', '.join(missing)}")
        return self

    def select(
        self, categories: Iterable[Category] | None = None, per_category: PositiveInt | None = None
    ) -> list[BenchmarkCase]:
        """Cases of `categories` (default all), at most `per_category` of each, in suite order."""
        wanted = set(categories) if categories is not None else set(Category)
        counts: dict[Category, int] = {}
        chosen = []
        for case in self.cases:
            if case.category in wanted and (
                per_category is None or counts.get(case.category, 0) < per_category
            ):
                counts[case.category] = counts.get(case.category, 0) + 1
                chosen.append(case)
        return chosen


def load_suite(path: str | Path = DEFAULT_SUITE) -> BenchmarkSuite:
    """Parse and validate a suite file; errors name the file and the case at fault."""
    path = Path(path)
    try:
        return BenchmarkSuite.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc
    except ValidationError as exc:
        raise ValueError(f"{path}: {describe(exc, first_only=True)}") from exc
