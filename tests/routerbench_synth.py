"""Small synthetic RouterBench CSVs in the exact format of the real files, for tests (seeded).

Three models whose accuracy depends on the eval, so that routing per eval pays off: "big/premium" is
best everywhere and dear, "mid-model" is almost as good on ARC and poor on Winogrande, "small/chat-7b"
is cheap and better than "mid-model" on Winogrande. Costs scale with the prompt's length. Like the real
files, the cost columns come in another order than the correctness columns and an oracle column ends
each row.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

ACCURACY = {
    "big/premium": {"arc-challenge": 0.95, "winogrande": 0.90},
    "mid-model": {"arc-challenge": 0.90, "winogrande": 0.55},
    "small/chat-7b": {"arc-challenge": 0.60, "winogrande": 0.75},
}
PRICE_PER_CHAR = {"big/premium": 1e-5, "mid-model": 1e-6, "small/chat-7b": 2e-7}
MODELS = tuple(ACCURACY)
EVALS = ("arc-challenge", "winogrande")

_QUESTIONS = {
    "arc-challenge": "Which property of a mineral can be determined just by looking at it?\n"
    "A) luster\nB) mass\nC) weight\nD) hardness\n"
    'Print only a single choice from "A" or "B" or "C" or "D".\nAnswer:',
    "winogrande": "Please answer with the letter of the correct answer.\n\nThe trophy doesn't fit into the "
    "suitcase because _ is too large.\nA) trophy\nB) suitcase\nAnswer:",
}


def synth_rows(rows: int, seed: int = 0, evals: tuple[str, ...] = EVALS) -> list[dict[str, str]]:
    """`rows` rows alternating between `evals`, each model right with its per-eval accuracy."""
    rng = random.Random(seed)
    out = []
    for i in range(rows):
        eval_name = evals[i % len(evals)]
        prompt = "['" + _QUESTIONS[eval_name] + f" (item {i})" + "." * rng.randrange(50, 400) + "']"
        correct = {m: int(rng.random() < ACCURACY[m][eval_name]) for m in MODELS}
        cost = {m: PRICE_PER_CHAR[m] * len(prompt) for m in MODELS}
        right = [m for m in MODELS if correct[m]]
        row = {"sample_id": f"{eval_name}.synth.{seed}.{i}", "prompt": prompt, "eval_name": eval_name}
        row.update({m: str(correct[m]) for m in MODELS})
        row.update({f"{m}|total_cost": repr(cost[m]) for m in reversed(MODELS)})
        row["oracle_model_to_route_to"] = min(right, key=cost.get) if right else "no_model_correct"
        out.append(row)
    return out


def write_routerbench(path: Path, rows: int = 200, seed: int = 0, evals: tuple[str, ...] = EVALS) -> Path:
    data = synth_rows(rows, seed, evals)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(data[0]))
        writer.writeheader()
        writer.writerows(data)
    return path
