"""Replay on the real RouterBench files (developers' copy in ../shared; skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from routing.evaluation.replay import load_routerbench, replay

DATA = Path(__file__).resolve().parents[2].parent / "shared/data/routerbench"

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def files() -> list[Path]:
    paths = sorted(DATA.glob("*.csv"))
    if not paths:
        pytest.skip(f"RouterBench data not found in {DATA}")
    return paths


def test_real_files_load_with_their_published_shape(files: list[Path]) -> None:
    data = load_routerbench(files)
    assert len(data.models) == 11 and "gpt-4-1106-preview" in data.models
    assert len(data) + len(data.skipped) >= 1900
    assert set(data.correct.ravel()) <= {0.0, 1.0} and (data.cost > 0).all()


def test_thompson_with_a_price_beats_the_average_model_and_costs_less_than_the_best(
    files: list[Path],
) -> None:
    data = load_routerbench(files)
    report = replay(data, "thompson", willingness_to_pay=[0.02, 0.05], shuffle_seed=0, seed=0)
    best = report.models[report.best_model]
    mean_accuracy = sum(m.accuracy for m in report.models.values()) / len(report.models)
    for run in report.runs:
        assert run.accuracy > mean_accuracy
        assert run.total_cost < 0.6 * best.total_cost
    assert report.oracle.accuracy > best.accuracy
    assert 0 < report.aiq <= 1 and 0 < report.zero_router_aiq <= 1
